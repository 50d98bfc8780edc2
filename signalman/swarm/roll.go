package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/signalman"
)

var _ signalman.Roller = (*Driver)(nil)

// errSelfRolledBack means Swarm rolled the update back by itself (its
// FailureAction): the driver waits for that rollback instead of asking
// for one.
var errSelfRolledBack = errors.New("swarm rolled the update back")

// Roll updates t's Swarm service to version and follows Swarm's rolling
// update (see signalman.Roller): the image becomes Config.Images' template
// of the service, else the service's image with version as its tag; the
// arguments Config.Args' template, if any; the label kplane.version
// version; the replicas opts.Instances. UpdateConfig takes the bounds:
// start-first with parallelism MaxSurge when MaxSurge > 0, else stop-first
// with parallelism MaxUnavailable; failure action rollback, monitor
// Config.Monitor. RollbackConfig gets the same parallelism and order.
//
// Roll returns once Swarm completed the update and the registry lists
// exactly opts.Instances instances of t's env at version, each passed
// opts.Gate. When a gate fails, Swarm pauses or rolls back by itself, or
// Config.Timeout runs out, Roll makes Swarm roll back to the previous spec
// (ServiceUpdate with rollback "previous") unless it already does, waits
// for the previous tasks to run and returns an error wrapping
// signalman.ErrRolledBack.
func (d *Driver) Roll(ctx context.Context, t signalman.Target, to string, opts signalman.RollOptions, progress func(signalman.Step)) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if to == "" {
		return fmt.Errorf("%w: version is empty", signalman.ErrInvalid)
	}
	if opts.Instances < 1 || opts.MaxSurge < 0 || opts.MaxUnavailable < 0 || opts.MaxSurge+opts.MaxUnavailable == 0 {
		return fmt.Errorf("%w: %d instances, max surge %d, max unavailable %d", signalman.ErrInvalid, opts.Instances, opts.MaxSurge, opts.MaxUnavailable)
	}
	if progress == nil {
		progress = func(signalman.Step) {}
	}
	if !d.busy.TryLock(t) {
		return fmt.Errorf("%w: %s is being scaled or rolled", signalman.ErrBusy, t)
	}
	defer d.busy.Unlock(t)

	id, err := d.find(ctx, t)
	if errors.Is(err, signalman.ErrUnknownService) && d.creatable(t.Service) {
		return d.create(ctx, t, to, opts, progress)
	}
	if err != nil {
		return err
	}
	before, image, changed, err := d.update(ctx, t, id, to, opts)
	if err != nil {
		return err
	}
	from := version(before.Spec)
	d.log.Info("rolling", "target", t.String(), "service", id, "from", from, "to", to, "image", image,
		"instances", opts.Instances, "max_surge", opts.MaxSurge, "max_unavailable", opts.MaxUnavailable, "changed", changed)

	err = signalman.Follow{
		Target: t, Version: to, N: opts.Instances, Object: "swarm service " + before.Spec.Name,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Gate: opts.Gate,
		Progress: progress,
		Check: func(ctx context.Context) (bool, string, error) {
			return d.rolled(ctx, id, image, opts.Instances, false)
		},
	}.Run(ctx)
	if err == nil {
		d.log.Info("rolled", "target", t.String(), "service", id, "version", to)
		return nil
	}
	if ctx.Err() != nil || !changed {
		// Cancelled: Swarm finishes (or rolls back) by itself. Unchanged:
		// the previous spec is not this deploy's to go back to.
		return err
	}
	d.log.Warn("rolling back", "target", t.String(), "service", id, "to", from, "err", err)
	progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Version: from,
		Outcome: signalman.OutcomeOK, Error: err.Error()})
	if rerr := d.rollBack(ctx, t, id, before, errors.Is(err, errSelfRolledBack), progress); rerr != nil {
		progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Version: from,
			Outcome: signalman.OutcomeFailed, Error: rerr.Error()})
		return fmt.Errorf("%w; rollback failed: %w", err, rerr)
	}
	return fmt.Errorf("%w to %s: %w", signalman.ErrRolledBack, from, err)
}

// update writes the new spec under the version it read, re-reading and
// retrying on "update out of sequence". It returns the service as it was,
// the new image and whether the spec changed (an unchanged spec is not
// written: Swarm would start no update and keep an older PreviousSpec).
func (d *Driver) update(ctx context.Context, t signalman.Target, id, to string, opts signalman.RollOptions) (swarm.Service, string, bool, error) {
	for attempt := 0; ; attempt++ {
		svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			return svc, "", false, fmt.Errorf("swarm: inspect service %s: %w", id, err)
		}
		if svc.Spec.Mode.Replicated == nil || svc.Spec.Mode.Replicated.Replicas == nil {
			return svc, "", false, fmt.Errorf("%w: service %s is not replicated (global or job mode)", signalman.ErrInvalid, svc.Spec.Name)
		}
		if svc.Spec.TaskTemplate.ContainerSpec == nil {
			return svc, "", false, fmt.Errorf("%w: service %s runs no container", signalman.ErrInvalid, svc.Spec.Name)
		}
		if us := svc.UpdateStatus; us != nil && (us.State == swarm.UpdateStateUpdating || us.State == swarm.UpdateStateRollbackStarted) {
			return svc, "", false, fmt.Errorf("%w: service %s: %s in progress", signalman.ErrBusy, svc.Spec.Name, us.State)
		}
		spec, image := d.rolledSpec(t, svc.Spec, to, opts)
		if specEqual(svc.Spec, spec) {
			return svc, image, false, nil
		}
		_, err = d.cfg.API.ServiceUpdate(ctx, id, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
		if err == nil {
			return svc, image, true, nil
		}
		if !outOfSequence(err) || attempt >= d.cfg.Retries {
			return svc, "", false, fmt.Errorf("swarm: update service %s: %w", svc.Spec.Name, err)
		}
		if err := pause(ctx, attempt); err != nil {
			return svc, "", false, fmt.Errorf("swarm: update service %s: %w", svc.Spec.Name, err)
		}
	}
}

// rolledSpec is spec at version with opts' bounds, and its image.
func (d *Driver) rolledSpec(t signalman.Target, spec swarm.ServiceSpec, to string, opts signalman.RollOptions) (swarm.ServiceSpec, string) {
	r := strings.NewReplacer("{service}", t.Service, "{env}", t.Env, "{version}", to)
	cs := *spec.TaskTemplate.ContainerSpec
	image := withTag(cs.Image, to)
	if tmpl, ok := d.cfg.Images[t.Service]; ok {
		image = r.Replace(tmpl)
	}
	cs.Image = image
	if tmpl, ok := d.cfg.Args[t.Service]; ok {
		cs.Args = make([]string, len(tmpl))
		for i, a := range tmpl {
			cs.Args[i] = r.Replace(a)
		}
	}
	if tmpl, ok := d.cfg.Env[t.Service]; ok {
		cs.Env = make([]string, len(tmpl))
		for i, e := range tmpl {
			cs.Env[i] = r.Replace(e)
		}
	}
	spec.TaskTemplate.ContainerSpec = &cs
	spec.Labels = maps.Clone(spec.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[LabelVersion] = to
	n := uint64(opts.Instances)
	spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &n}
	order, par := swarm.UpdateOrderStopFirst, opts.MaxUnavailable
	if opts.MaxSurge > 0 {
		order, par = swarm.UpdateOrderStartFirst, opts.MaxSurge
	}
	spec.UpdateConfig = &swarm.UpdateConfig{Parallelism: uint64(par), Order: order, Delay: d.cfg.Delay,
		FailureAction: swarm.UpdateFailureActionRollback, Monitor: d.cfg.Monitor}
	spec.RollbackConfig = &swarm.UpdateConfig{Parallelism: uint64(par), Order: order,
		FailureAction: swarm.UpdateFailureActionPause, Monitor: d.cfg.Monitor}
	return spec, image
}

// specEqual reports whether b changes nothing a task runs or the driver
// reads: image, arguments, environment, replicas and version label.
func specEqual(a, b swarm.ServiceSpec) bool {
	ca, cb := a.TaskTemplate.ContainerSpec, b.TaskTemplate.ContainerSpec
	return ca.Image == cb.Image && slices.Equal(ca.Args, cb.Args) && slices.Equal(ca.Env, cb.Env) &&
		*a.Mode.Replicated.Replicas == *b.Mode.Replicated.Replicas && a.Labels[LabelVersion] == b.Labels[LabelVersion]
}

// withTag replaces the tag (and digest) of image by tag.
func withTag(image, tag string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image + ":" + tag
}

// noDigest is image without its @digest, which Swarm may pin.
func noDigest(image string) string {
	image, _, _ = strings.Cut(image, "@")
	return image
}

// rolled reads the service once: done when Swarm's update (or, back, its
// rollback) is over and exactly n tasks of image run and nothing else is
// starting or stopping. During the update a rollback Swarm started itself
// is errSelfRolledBack and a pause an error; during a rollback, a paused
// rollback is an error.
func (d *Driver) rolled(ctx context.Context, id, image string, n int, back bool) (bool, string, error) {
	svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		return false, "", fmt.Errorf("swarm: inspect service %s: %w", id, err)
	}
	state, msg := swarm.UpdateState(""), ""
	if us := svc.UpdateStatus; us != nil {
		state, msg = us.State, us.Message
	}
	switch {
	case !back && (state == swarm.UpdateStateRollbackStarted || state == swarm.UpdateStateRollbackCompleted || state == swarm.UpdateStateRollbackPaused):
		return false, "", fmt.Errorf("%w: %s", errSelfRolledBack, msg)
	case !back && state == swarm.UpdateStatePaused:
		return false, "", fmt.Errorf("swarm paused the update of %s: %s", svc.Spec.Name, msg)
	case back && state == swarm.UpdateStateRollbackPaused:
		return false, "", fmt.Errorf("swarm paused the rollback of %s: %s", svc.Spec.Name, msg)
	}
	tasks, err := d.tasks(ctx, id)
	if err != nil {
		return false, "", err
	}
	at, other, settled := 0, 0, true
	for _, tk := range tasks {
		running := tk.Status.State == swarm.TaskStateRunning
		wanted := tk.DesiredState == swarm.TaskStateRunning
		if running != wanted {
			settled = false
		}
		if !running || !wanted {
			continue
		}
		if tk.Spec.ContainerSpec != nil && noDigest(tk.Spec.ContainerSpec.Image) == noDigest(image) {
			at++
		} else {
			other++
		}
	}
	over := state != swarm.UpdateStateUpdating && state != swarm.UpdateStateRollbackStarted
	return over && settled && at == n && other == 0,
		fmt.Sprintf("%d tasks of %s were not running (%d are, %d others; update %s)", n, image, at, other, orNone(state)), nil
}

func orNone(s swarm.UpdateState) string {
	if s == "" {
		return "not started"
	}
	return string(s)
}

// rollBack makes Swarm go back to the spec before the update, unless it
// already does (self), and waits for its tasks to run and, with a
// Confirmer, to be registered.
func (d *Driver) rollBack(ctx context.Context, t signalman.Target, id string, before swarm.Service, self bool, progress func(signalman.Step)) error {
	// The rollback outlives the deploy's cancellation, within its own
	// bound: a half-rolled service is worse than a late answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	defer cancel()
	if !self {
		if err := d.askRollback(ctx, id); err != nil {
			return err
		}
	}
	n := int(*before.Spec.Mode.Replicated.Replicas)
	image := before.Spec.TaskTemplate.ContainerSpec.Image
	return signalman.Follow{
		Target: t, Version: version(before.Spec), N: n, Object: "rollback of swarm service " + before.Spec.Name,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Progress: progress,
		Check: func(ctx context.Context) (bool, string, error) {
			return d.rolled(ctx, id, image, n, true)
		},
	}.Run(ctx)
}

// askRollback is `docker service rollback`: an update of the current spec
// with rollback "previous", retried on "update out of sequence".
func (d *Driver) askRollback(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		svc, _, err := d.cfg.API.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("swarm: inspect service %s: %w", id, err)
		}
		if us := svc.UpdateStatus; us != nil && (us.State == swarm.UpdateStateRollbackStarted || us.State == swarm.UpdateStateRollbackCompleted) {
			return nil // Swarm got there first
		}
		_, err = d.cfg.API.ServiceUpdate(ctx, id, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"})
		if err == nil {
			return nil
		}
		if !outOfSequence(err) || attempt >= d.cfg.Retries {
			return fmt.Errorf("swarm: roll back service %s: %w", svc.Spec.Name, err)
		}
		if err := pause(ctx, attempt); err != nil {
			return fmt.Errorf("swarm: roll back service %s: %w", svc.Spec.Name, err)
		}
	}
}

// pause is the jittered wait before retrying an update out of sequence.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(10+rand.IntN(40*(attempt+1))) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
