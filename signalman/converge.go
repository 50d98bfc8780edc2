package signalman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kplane/kplane/registry"
)

// RevertTimeout bounds Converge's revert, which runs even after the
// caller's ctx ended.
const RevertTimeout = 15 * time.Second

// Converge is the end of a Scale on a scheduler that converges by itself
// (Swarm, Marathon): the driver has asked the scheduler for N instances
// (from From) and now waits, within Timeout, until Check says the
// scheduler runs them and then, with a Confirmer, until the registry lists
// N instances of Target's environment. If that fails, the count is set
// back through Revert, so that no half-done scale outlives the call.
//
// The registry check is a count: scheduler task IDs are not registry IDs,
// so a target run by such a driver must be the only one registering
// instances of its service in its environment.
type Converge struct {
	Target Target
	// Object names the target in the scheduler, for errors and logs:
	// "swarm service 3x9k…", "marathon app /qa/inventory".
	Object  string
	From, N int
	// Timeout bounds the whole wait; Poll is the pause between Checks.
	Timeout, Poll time.Duration
	// Confirmer, if not nil, must list N instances before Run succeeds.
	Confirmer Confirmer
	// Check reads the scheduler once and reports whether it runs N
	// instances; if not, waiting says what is still missing ("3 tasks
	// running of 4"), for the error should Timeout run out. An error
	// ends the wait (and is reverted), unless it is ErrSuperseded: then
	// someone else's change stands and is returned as is.
	Check func(ctx context.Context) (done bool, waiting string, err error)
	// Revert sets the scheduler back to From. Its ctx outlives the
	// caller's cancellation, bounded by RevertTimeout.
	Revert func(ctx context.Context) error
	// Logger; nil discards.
	Logger *slog.Logger
}

// Run waits as described on Converge. Errors: ErrNotConfirmed when Timeout
// ran out (reverted), ctx's error when ctx ended (reverted), ErrSuperseded
// (not reverted), or Check's error (reverted).
func (c Converge) Run(ctx context.Context) error {
	err := c.wait(ctx)
	if err == nil || errors.Is(err, ErrSuperseded) {
		return err
	}
	c.revert(ctx)
	return err
}

func (c Converge) wait(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	waiting := fmt.Sprintf("%d instances were not running", c.N)
	fail := func(err error) error {
		switch {
		case errors.Is(err, ErrSuperseded):
			return err
		case ctx.Err() != nil:
			return fmt.Errorf("scaling %s: %w", c.Object, ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("%w: %s: %s within %s", ErrNotConfirmed, c.Object, waiting, c.Timeout)
		}
		return err
	}
	for {
		done, w, err := c.Check(wctx)
		if err != nil {
			return fail(err)
		}
		if done {
			break
		}
		if w != "" {
			waiting = w
		}
		t := time.NewTimer(c.Poll)
		select {
		case <-wctx.Done():
			t.Stop()
			return fail(wctx.Err())
		case <-t.C:
		}
	}
	if c.Confirmer == nil {
		return nil
	}
	waiting = fmt.Sprintf("%d instances of %s were not registered", c.N, c.Target)
	err := c.Confirmer.WaitInstances(wctx, c.Target.Service, func(in []registry.Instance) bool {
		n := 0
		for _, i := range in {
			if i.Env == c.Target.Env {
				n++
			}
		}
		return n == c.N
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

func (c Converge) revert(ctx context.Context) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RevertTimeout)
	defer cancel()
	if err := c.Revert(rctx); err != nil {
		log.Error("revert failed", "target", c.Target.String(), "object", c.Object, "instances", c.From, "err", err)
		return
	}
	log.Warn("scale reverted", "target", c.Target.String(), "object", c.Object, "instances", c.From)
}
