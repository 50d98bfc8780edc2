package process

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kplane/kplane/signalman"
)

// lockPoll is how often Start, Stop and DestroyEnv retry a target that a
// Scale or a crash restart holds. They wait rather than fail with ErrBusy:
// a rolling deploy must not abort because the autoscaler scaled the same
// target for a moment.
const lockPoll = 20 * time.Millisecond

// spec returns base with the version of the group's latest Start. Called
// with Driver.mu held.
func (g *group) spec(base Spec) Spec {
	if g.version != "" {
		base.Version = g.version
	}
	return base
}

// lock takes g.busy, waiting until ctx ends.
func lock(ctx context.Context, g *group) error {
	for !g.busy.TryLock() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(lockPoll):
		}
	}
	return nil
}

// Start starts one instance of t at version ("" means the Spec's) at the
// lowest free number, and returns once the registry lists it. Later Scale
// calls and crash restarts on t start that version. On failure nothing is
// left running and the version of later Scale calls is unchanged.
func (d *Driver) Start(ctx context.Context, t signalman.Target, version string) (signalman.Instance, error) {
	if err := t.Validate(); err != nil {
		return signalman.Instance{}, err
	}
	base, ok := d.cfg.Services[t.Service]
	if !ok {
		return signalman.Instance{}, fmt.Errorf("%w: %q (the process driver knows %v)", signalman.ErrUnknownService, t.Service, d.serviceNames())
	}
	g, err := d.group(t)
	if err != nil {
		return signalman.Instance{}, err
	}
	if err := lock(ctx, g); err != nil {
		return signalman.Instance{}, fmt.Errorf("process: starting %s: %w", t, err)
	}
	defer g.busy.Unlock()

	spec := base
	if version != "" {
		spec.Version = version
	}
	d.mu.Lock()
	g.desired++
	d.mu.Unlock()
	ids, err := d.start(ctx, t, g, spec, 1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		g.desired--
		return signalman.Instance{}, err
	}
	g.version = spec.Version
	for _, c := range g.children {
		if c.inst.ID == ids[0] {
			d.log.Info("started", "target", t.String(), "instance", ids[0], "version", spec.Version)
			return c.inst, nil
		}
	}
	// It exited right after registering; the restart loop replaces it.
	return signalman.Instance{}, fmt.Errorf("%w: %s exited right after registering", signalman.ErrNotConfirmed, ids[0])
}

// Stop drains one instance (SIGTERM: the child deregisters, keeps serving
// while callers' caches catch up, finishes its requests and exits; SIGKILL
// after StopTimeout) and returns once the registry no longer lists it.
func (d *Driver) Stop(ctx context.Context, t signalman.Target, id string) error {
	g, err := d.group(t)
	if err != nil {
		return err
	}
	if err := lock(ctx, g); err != nil {
		return fmt.Errorf("process: stopping %s: %w", id, err)
	}
	defer g.busy.Unlock()

	d.mu.Lock()
	var victim *child
	for _, c := range g.children {
		if c.inst.ID == id {
			victim = c
		}
	}
	if victim == nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s has no instance %q", signalman.ErrUnknownInstance, t, id)
	}
	victim.stopping = true
	g.desired = max(g.desired-1, 0)
	d.mu.Unlock()

	d.stopAll([]*child{victim})
	d.mu.Lock()
	if g.children[victim.n] == victim {
		delete(g.children, victim.n)
	}
	d.mu.Unlock()
	d.writeState()
	d.awaitDeregistered(ctx, t, []string{id})
	d.log.Info("stopped", "target", t.String(), "instance", id)
	return nil
}

// DestroyEnv drains and stops every instance of every service in env, in
// parallel. Their desired count is zero afterwards, so nothing restarts
// them.
func (d *Driver) DestroyEnv(ctx context.Context, env string) error {
	if env == "" {
		return fmt.Errorf("%w: environment name is empty", signalman.ErrInvalid)
	}
	d.mu.Lock()
	var targets []signalman.Target
	for t := range d.groups {
		if t.Env == env {
			targets = append(targets, t)
		}
	}
	d.mu.Unlock()
	sort.Slice(targets, func(i, j int) bool { return targets[i].Service < targets[j].Service })

	errc := make(chan error, len(targets))
	for _, t := range targets {
		go func() { errc <- d.destroy(ctx, t) }()
	}
	var first error
	for range targets {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	if first == nil && len(targets) > 0 {
		d.log.Info("environment destroyed", "env", env, "targets", len(targets))
	}
	return first
}

func (d *Driver) destroy(ctx context.Context, t signalman.Target) error {
	d.mu.Lock()
	g := d.groups[t]
	d.mu.Unlock()
	if g == nil {
		return nil
	}
	if err := lock(ctx, g); err != nil {
		return fmt.Errorf("process: destroying %s: %w", t, err)
	}
	defer g.busy.Unlock()
	d.mu.Lock()
	g.desired = 0
	n := len(g.children)
	d.mu.Unlock()
	d.stopHighest(ctx, t, g, n)
	return nil
}
