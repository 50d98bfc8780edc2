package swarm

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// Environments.
//
// A deploy (Roll) into an environment that does not run the service yet
// creates its Swarm service from the service's templates (Config.Images,
// Args, Env) with the driver's network and stop grace period; DestroyEnv
// removes the services the driver created in an environment. This is
// what HAWAII's throwaway alpha environments need. Services someone else
// created are only scaled and rolled, never removed.

var _ signalman.EnvDestroyer = (*Driver)(nil)

// LabelManaged marks the Swarm services (and their containers) the driver
// created; DestroyEnv removes only those.
const LabelManaged = "kplane.managed"

// HostNetwork is the default Config.Network.
const HostNetwork = "host"

// creatable reports whether the driver can create service's Swarm
// service: Config.Images has an image template for it.
func (d *Driver) creatable(service string) bool {
	_, ok := d.cfg.Images[service]
	return ok
}

// newSpec is the spec of a new Swarm service for t at version, bounded as
// a Roll by opts.
func (d *Driver) newSpec(t signalman.Target, to string, opts signalman.RollOptions) (swarm.ServiceSpec, string) {
	labels := map[string]string{LabelManaged: "true", LabelService: t.Service, LabelEnv: t.Env}
	grace := d.cfg.StopGracePeriod
	zero := uint64(0)
	base := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: d.Name(t), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Labels: maps.Clone(labels), StopGracePeriod: &grace},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: d.cfg.Network}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
	}
	return d.rolledSpec(t, base, to, opts)
}

// create creates t's service at version with opts.Instances tasks and
// follows it as a Roll follows an update; if that fails (not cancelled),
// it removes the service again.
func (d *Driver) create(ctx context.Context, t signalman.Target, to string, opts signalman.RollOptions, progress func(signalman.Step)) error {
	spec, image := d.newSpec(t, to, opts)
	// No registry is asked: the image must be on the nodes, as the
	// deploy's images are.
	created, err := d.cfg.API.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		return fmt.Errorf("swarm: create service %s: %w", spec.Name, err)
	}
	id := created.ID
	d.log.Info("created service", "target", t.String(), "service", id, "name", spec.Name, "image", image, "instances", opts.Instances)
	err = signalman.Follow{
		Target: t, Version: to, N: opts.Instances, Object: "new swarm service " + spec.Name,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Gate: opts.Gate,
		Progress: progress,
		Check: func(ctx context.Context) (bool, string, error) {
			return d.rolled(ctx, id, image, opts.Instances, false)
		},
	}.Run(ctx)
	if err == nil || ctx.Err() != nil {
		// Cancelled: the service stays for DestroyEnv, as a cancelled
		// update stays for Swarm to finish.
		return err
	}
	d.log.Warn("removing the service it created", "target", t.String(), "service", id, "err", err)
	progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Outcome: signalman.OutcomeOK, Error: err.Error()})
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	defer cancel()
	if rerr := d.remove(rctx, []swarm.Service{{ID: id, Spec: spec}}, progress); rerr != nil {
		return fmt.Errorf("%w; removing the new service failed: %w", err, rerr)
	}
	return err
}

// DestroyEnv removes the Swarm services the driver created in env
// (labelled kplane.managed, kplane.env=env) and returns once their tasks
// are gone (each container stopped: Swarm signals it and waits its stop
// grace period) and, with a Confirmer, none of their instances is
// registered. A service of env someone else created is left running and
// named in an error wrapping signalman.ErrInvalid. signalman.ErrBusy
// while this driver scales or rolls one of them.
func (d *Driver) DestroyEnv(ctx context.Context, env string) error {
	if err := signalman.ValidEnv(env); err != nil {
		return err
	}
	f := filters.NewArgs(filters.Arg("label", LabelEnv+"="+env))
	svcs, err := d.cfg.API.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("swarm: list services: %w", err)
	}
	var mine []swarm.Service
	var foreign []string
	for _, s := range svcs {
		if s.Spec.Labels[LabelManaged] == "true" {
			mine = append(mine, s)
		} else {
			foreign = append(foreign, s.Spec.Name)
		}
	}
	for i, s := range mine {
		t := signalman.Target{Service: s.Spec.Labels[LabelService], Env: env}
		if !d.busy.TryLock(t) {
			for _, s := range mine[:i] {
				d.busy.Unlock(signalman.Target{Service: s.Spec.Labels[LabelService], Env: env})
			}
			return fmt.Errorf("%w: %s is being scaled or rolled", signalman.ErrBusy, t)
		}
	}
	defer func() {
		for _, s := range mine {
			d.busy.Unlock(signalman.Target{Service: s.Spec.Labels[LabelService], Env: env})
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	if err := d.remove(ctx, mine, nil); err != nil {
		return fmt.Errorf("destroy env %s: %w", env, err)
	}
	if len(mine) > 0 {
		d.log.Info("destroyed environment", "env", env, "services", len(mine))
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		return fmt.Errorf("%w: env %s: swarm services %s were not created by kplane and were left running",
			signalman.ErrInvalid, env, strings.Join(foreign, ", "))
	}
	return nil
}

// remove removes svcs and waits, until ctx ends, for their tasks to be
// gone and their instances deregistered; progress (if not nil) gets a
// stop step for each instance that deregistered.
func (d *Driver) remove(ctx context.Context, svcs []swarm.Service, progress func(signalman.Step)) error {
	if len(svcs) == 0 {
		return nil
	}
	type gone struct {
		t   signalman.Target
		ids []string // registered when removed
	}
	var wait []gone
	ids := map[string]bool{}
	for _, s := range svcs {
		t := signalman.Target{Service: s.Spec.Labels[LabelService], Env: s.Spec.Labels[LabelEnv]}
		g := gone{t: t}
		if d.cfg.Confirmer != nil {
			listed, err := signalman.Listed(ctx, d.cfg.Confirmer, t)
			if err != nil {
				return err
			}
			for _, in := range listed {
				g.ids = append(g.ids, in.ID)
			}
		}
		if err := d.cfg.API.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("swarm: remove service %s: %w", s.Spec.Name, err)
		}
		wait = append(wait, g)
		ids[s.ID] = true
	}
	// Swarm keeps a removed service's tasks (desired state "remove") until
	// their containers have stopped; a task filter by service no longer
	// resolves the removed service, so all tasks are listed.
	waiting := ""
	for {
		tasks, err := d.cfg.API.TaskList(ctx, swarm.TaskListOptions{})
		if err != nil {
			return fmt.Errorf("swarm: list tasks: %w", err)
		}
		left := 0
		for _, tk := range tasks {
			if ids[tk.ServiceID] {
				left++
			}
		}
		if left == 0 {
			break
		}
		waiting = fmt.Sprintf("%d tasks of the removed services are still stopping", left)
		if err := sleep(ctx, d.cfg.PollInterval); err != nil {
			return fmt.Errorf("%w: %s", err, waiting)
		}
	}
	if d.cfg.Confirmer == nil {
		return nil
	}
	for _, g := range wait {
		err := d.cfg.Confirmer.WaitInstances(ctx, g.t.Service, func(in []registry.Instance) bool {
			return !slices.ContainsFunc(in, func(i registry.Instance) bool { return i.Env == g.t.Env })
		})
		if err != nil {
			return fmt.Errorf("instances of %s still registered: %w", g.t, err)
		}
		if progress != nil {
			for _, id := range g.ids {
				progress(signalman.Step{Time: time.Now(), Action: signalman.ActionStop, Instance: id, Outcome: signalman.OutcomeOK})
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
