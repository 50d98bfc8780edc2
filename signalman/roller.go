package signalman

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kplane/kplane/registry"
)

// Rolling deploys on schedulers that roll by themselves.
//
// Swarm (a service update) and Marathon (an app deployment) replace a
// service's instances themselves, within bounds they are given; kplane
// cannot start and stop their instances one at a time. Their drivers
// implement Roller instead of InstanceDriver, and the Deployer hands them
// the whole deploy: the same request, record, steps, states and events,
// with the steps observed rather than taken.

// RollOptions are the bounds and gate of one Roll.
type RollOptions struct {
	// Instances is how many instances of the new version must run at the
	// end (the scheduler's count is set to it); at least 1.
	Instances int
	// MaxSurge and MaxUnavailable bound the rollout as in DeployRequest:
	// instances above Instances, and instances of Instances missing. One
	// of them is above 0. Schedulers that take fractions (Marathon) get
	// MaxSurge/Instances and 1 − MaxUnavailable/Instances.
	MaxSurge, MaxUnavailable int
	// Gate, if not nil, must pass for every new instance the registry
	// lists at the new version before the rollout counts as done.
	Gate HealthGate
}

// Roller is a driver of a scheduler that rolls a service to a new version
// by itself (swarm, marathon). The Deployer uses it, when a driver
// implements it, instead of InstanceDriver.
//
// The same concurrency, cancellation and ownership rules as Orchestrator
// apply; a Roll and a Scale on the same target do not interleave (the
// second returns ErrBusy).
type Roller interface {
	Orchestrator
	// Roll asks the scheduler to replace target's instances by
	// opts.Instances instances of version within opts' bounds, and
	// follows the rollout until the scheduler reports it over and the
	// registry lists exactly opts.Instances instances of target's
	// environment, all at version, each of which passed opts.Gate.
	//
	// progress is called, from Roll's goroutine, with each step Roll
	// observes or takes: ActionStart when a new instance registered,
	// ActionHealth for its gate, ActionStop when an old one
	// deregistered, ActionRollback when Roll turns back. It must not
	// block for long.
	//
	// Rollback: when a new instance fails its gate, the scheduler reports
	// the rollout failed, paused or rolled back by itself, or it does not
	// end within the driver's timeout, Roll makes the scheduler go back to
	// the definition the service had before Roll (Swarm's rollback to the
	// previous spec, Marathon's rollback of its deployment) and waits for
	// that to run again. It returns an error wrapping ErrRolledBack and
	// the cause when the previous definition runs again, or the cause and
	// the rollback's own failure when it does not.
	//
	// Cancellation: when ctx ends, Roll returns ctx's error at once and
	// leaves the scheduler's rollout to finish by itself (the scheduler's
	// own failure action still applies); nothing is rolled back.
	//
	// A Roller that is also an EnvDestroyer creates the service when
	// target's environment does not run it yet, with opts.Instances
	// instances of version; if that creation fails its gate or times out,
	// Roll removes the service again and returns the cause (there is no
	// previous definition to roll back to).
	//
	// Errors before anything changed: ErrInvalid, ErrUnknownService,
	// ErrBusy (an update of the service is already running).
	Roll(ctx context.Context, target Target, version string, opts RollOptions, progress func(Step)) error
}

// Follow is the wait of a Roller, shared by the swarm and marathon
// drivers as Converge is for Scale: it polls the scheduler (Check) and
// the registry until the scheduler reports the rollout over and the
// registry lists exactly N instances of Target's environment, all at
// Version and gated, reporting each registration, gate and
// deregistration it sees as a Step (instances already at Version when it
// begins are gated but not reported started). It does not roll back: the driver
// does, with what it knows of the scheduler.
type Follow struct {
	Target  Target
	Version string
	N       int
	// Object names the rollout in the scheduler, for errors: "swarm
	// service 3x9k…", "marathon app /qa/inventory".
	Object string
	// Timeout bounds the whole wait; Poll is the pause between reads.
	Timeout, Poll time.Duration
	// Confirmer lists the registry; nil means the scheduler's word
	// alone (no steps, no gate).
	Confirmer Confirmer
	// Gate, if not nil, gates every new-version instance once.
	Gate HealthGate
	// Check reads the scheduler once: done when its rollout is over and N
	// instances of Version run; else waiting says what is missing ("2 of
	// 3 tasks at 1.5.0 running"). An error ends the wait: the scheduler
	// failed, paused or rolled back by itself.
	Check func(ctx context.Context) (done bool, waiting string, err error)
	// Progress receives the steps; nil drops them.
	Progress func(Step)
	// Now is the clock of the steps; nil is time.Now.
	Now func() time.Time
}

// Run waits as described on Follow. Errors: ErrNotConfirmed when Timeout
// ran out, ErrUnhealthy (from the Gate) when a new instance failed its
// gate, ctx's error when ctx ended, or Check's error.
func (f Follow) Run(ctx context.Context) error {
	now := f.Now
	if now == nil {
		now = time.Now
	}
	progress := f.Progress
	if progress == nil {
		progress = func(Step) {}
	}
	wctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	gated := map[string]bool{}
	there := map[string]bool{} // at Version when the wait began: not started by this rollout
	var old []string           // registered at another version when the wait began
	first := true
	waiting := fmt.Sprintf("%d instances at %s were not running", f.N, f.Version)
	fail := func(err error) error {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("rolling %s: %w", f.Object, ctx.Err())
		case errors.Is(err, context.DeadlineExceeded) && wctx.Err() != nil:
			return fmt.Errorf("%w: %s: %s within %s", ErrNotConfirmed, f.Object, waiting, f.Timeout)
		}
		return err
	}
	for {
		done, w, err := f.Check(wctx)
		if err != nil {
			return fail(err)
		}
		if w != "" {
			waiting = w
		}
		ready := done
		if f.Confirmer != nil {
			listed, err := Listed(wctx, f.Confirmer, f.Target)
			if err != nil {
				return fail(err)
			}
			if first {
				for _, in := range listed {
					if in.Version != f.Version {
						old = append(old, in.ID)
					} else {
						there[in.ID] = true
					}
				}
				first = false
			}
			still := old[:0]
			for _, id := range old {
				if slices.ContainsFunc(listed, func(in registry.Instance) bool { return in.ID == id }) {
					still = append(still, id)
				} else {
					progress(Step{Time: now(), Action: ActionStop, Instance: id, Outcome: OutcomeOK})
				}
			}
			old = still
			atVersion := 0
			for _, in := range listed {
				if in.Version != f.Version {
					continue
				}
				atVersion++
				if gated[in.ID] {
					continue
				}
				inst := Instance{ID: in.ID, Target: f.Target, Version: in.Version, Started: in.Started}
				if !there[in.ID] {
					progress(Step{Time: in.Started, Action: ActionStart, Instance: in.ID, Version: f.Version, Outcome: OutcomeOK})
				}
				if f.Gate != nil {
					start := now()
					err := f.Gate.Healthy(wctx, inst)
					s := Step{Time: start, Action: ActionHealth, Instance: in.ID, Version: f.Version, Outcome: OutcomeOK, Took: now().Sub(start)}
					if err != nil {
						s.Outcome, s.Error = OutcomeFailed, err.Error()
					}
					progress(s)
					if err != nil {
						return fail(err)
					}
				}
				gated[in.ID] = true
			}
			if ready && (atVersion != f.N || len(listed) != f.N) {
				ready = false
				waiting = fmt.Sprintf("%d instances of %s at %s were not registered (%d of %d registered are)",
					f.N, f.Target, f.Version, atVersion, len(listed))
			}
		}
		if ready {
			return nil
		}
		t := time.NewTimer(f.Poll)
		select {
		case <-wctx.Done():
			t.Stop()
			return fail(wctx.Err())
		case <-t.C:
		}
	}
}

// Listed returns the instances the registry lists for t: its service's,
// in its environment.
func Listed(ctx context.Context, c Confirmer, t Target) ([]registry.Instance, error) {
	var out []registry.Instance
	err := c.WaitInstances(ctx, t.Service, func(in []registry.Instance) bool {
		out = out[:0]
		for _, i := range in {
			if i.Env == t.Env {
				out = append(out, i)
			}
		}
		return true
	})
	return out, err
}
