package marathon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/signalman"
)

var _ signalman.Roller = (*Driver)(nil)

// Roll deploys version to t's app and follows Marathon's deployment (see
// signalman.Roller). It sends PUT /v2/apps/{id} with the instance count,
// the container with its Docker image set to Config.Images' template of
// the service (else the app's image with version as its tag), the args of
// Config.Args' template (if any), the labels with kplane.version set,
// and upgradeStrategy {minimumHealthCapacity: 1 − MaxUnavailable/N,
// maximumOverCapacity: MaxSurge/N}. A 409 (app locked by a deployment) is
// signalman.ErrBusy, unless Config.Force.
//
// Roll returns once the deployment is gone from /v2/deployments, every
// task runs the new app version (healthy, when the app has health
// checks) and the registry lists exactly N instances of t's env at
// version, each passed opts.Gate. When a gate fails or Config.Timeout runs
// out, Roll rolls back: DELETE /v2/deployments/{id} (Marathon cancels the
// deployment and deploys the previous definition) while the deployment
// runs, else PUT of the previous definition with force; it waits for that
// to run and returns an error wrapping signalman.ErrRolledBack.
func (d *Driver) Roll(ctx context.Context, t signalman.Target, to string, opts signalman.RollOptions, progress func(signalman.Step)) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if to == "" {
		return fmt.Errorf("%w: version is empty", signalman.ErrInvalid)
	}
	n := opts.Instances
	if n < 1 || opts.MaxSurge < 0 || opts.MaxUnavailable < 0 || opts.MaxSurge+opts.MaxUnavailable == 0 {
		return fmt.Errorf("%w: %d instances, max surge %d, max unavailable %d", signalman.ErrInvalid, n, opts.MaxSurge, opts.MaxUnavailable)
	}
	if progress == nil {
		progress = func(signalman.Step) {}
	}
	if !d.busy.TryLock(t) {
		return fmt.Errorf("%w: %s is being scaled or rolled", signalman.ErrBusy, t)
	}
	defer d.busy.Unlock(t)

	id := d.AppID(t)
	before, raw, err := d.api.appRaw(ctx, id)
	if err != nil {
		return err
	}
	next, err := d.rolledApp(t, raw, to, opts)
	if err != nil {
		return fmt.Errorf("marathon app %s: %w", id, err)
	}
	dep, err := d.api.update(ctx, id, next, d.cfg.Force)
	if err != nil {
		return err
	}
	from := before.version()
	d.log.Info("rolling", "target", t.String(), "app", id, "from", from, "to", to, "instances", n,
		"max_surge", opts.MaxSurge, "max_unavailable", opts.MaxUnavailable, "deployment", dep.DeploymentID)

	deploying := true
	err = signalman.Follow{
		Target: t, Version: to, N: n, Object: "marathon app " + id,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Gate: opts.Gate,
		Progress: progress,
		Check: func(ctx context.Context) (bool, string, error) {
			return d.deployed(ctx, id, dep.DeploymentID, &deploying, to, n)
		},
	}.Run(ctx)
	if err == nil {
		d.log.Info("rolled", "target", t.String(), "app", id, "version", to)
		return nil
	}
	if ctx.Err() != nil {
		return err // Marathon's deployment goes on by itself
	}
	d.log.Warn("rolling back", "target", t.String(), "app", id, "to", from, "err", err)
	progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Version: from,
		Outcome: signalman.OutcomeOK, Error: err.Error()})
	if rerr := d.rollBack(ctx, t, id, dep.DeploymentID, deploying, before, raw, progress); rerr != nil {
		progress(signalman.Step{Time: time.Now(), Action: signalman.ActionRollback, Version: from,
			Outcome: signalman.OutcomeFailed, Error: rerr.Error()})
		return fmt.Errorf("%w; rollback failed: %w", err, rerr)
	}
	return fmt.Errorf("%w to %s: %w", signalman.ErrRolledBack, from, err)
}

// upgradeStrategy is Marathon's bound of a rolling restart, as fractions
// of the instance count.
type upgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// appUpdate is the body of a deploy's PUT: only the fields it changes
// (Marathon keeps the others).
type appUpdate struct {
	Instances       int               `json:"instances"`
	Args            json.RawMessage   `json:"args,omitempty"`
	Container       map[string]any    `json:"container,omitempty"`
	Labels          map[string]string `json:"labels"`
	UpgradeStrategy json.RawMessage   `json:"upgradeStrategy,omitempty"`
}

// rolledApp is the update of raw (the app as Marathon returned it) to
// version within opts' bounds.
func (d *Driver) rolledApp(t signalman.Target, raw map[string]json.RawMessage, to string, opts signalman.RollOptions) (appUpdate, error) {
	var u appUpdate
	var container map[string]any
	if err := json.Unmarshal(raw["container"], &container); err != nil || container == nil {
		return u, fmt.Errorf("%w: the app has no container", signalman.ErrInvalid)
	}
	docker, _ := container["docker"].(map[string]any)
	image, _ := docker["image"].(string)
	if image == "" {
		return u, fmt.Errorf("%w: the app runs no Docker image", signalman.ErrInvalid)
	}
	r := strings.NewReplacer("{service}", t.Service, "{env}", t.Env, "{version}", to)
	image = withTag(image, to)
	if tmpl, ok := d.cfg.Images[t.Service]; ok {
		image = r.Replace(tmpl)
	}
	docker["image"] = image
	u.Container = container
	if tmpl, ok := d.cfg.Args[t.Service]; ok {
		args := make([]string, len(tmpl))
		for i, a := range tmpl {
			args[i] = r.Replace(a)
		}
		u.Args, _ = json.Marshal(args)
	}
	_ = json.Unmarshal(raw["labels"], &u.Labels)
	u.Labels = maps.Clone(u.Labels)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	u.Labels[labelVersion] = to
	n := float64(opts.Instances)
	u.UpgradeStrategy, _ = json.Marshal(upgradeStrategy{
		MinimumHealthCapacity: clamp(1 - float64(opts.MaxUnavailable)/n),
		MaximumOverCapacity:   clamp(float64(opts.MaxSurge) / n),
	})
	u.Instances = opts.Instances
	return u, nil
}

// previousApp is the update that restores raw, the app as it was.
func previousApp(before *app, raw map[string]json.RawMessage) appUpdate {
	u := appUpdate{Instances: before.Instances, UpgradeStrategy: raw["upgradeStrategy"], Args: raw["args"]}
	_ = json.Unmarshal(raw["container"], &u.Container)
	_ = json.Unmarshal(raw["labels"], &u.Labels)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	return u
}

func clamp(f float64) float64 { return min(max(f, 0), 1) }

const labelVersion = "kplane.version"

// withTag replaces the tag (and digest) of image by tag.
func withTag(image, tag string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image + ":" + tag
}

// deployed reads Marathon once: done when deployment depID is gone and
// the app, at kplane version to, runs exactly n tasks of its current
// definition (healthy, when it has health checks). *deploying turns false
// once the deployment is gone.
func (d *Driver) deployed(ctx context.Context, id, depID string, deploying *bool, to string, n int) (bool, string, error) {
	if *deploying {
		deps, err := d.api.deployments(ctx)
		if err != nil {
			return false, "", err
		}
		if slices.ContainsFunc(deps, func(x deployment) bool { return x.ID == depID }) {
			return false, "deployment " + depID + " did not finish", nil
		}
		*deploying = false
	}
	a, err := d.api.app(ctx, id)
	if err != nil {
		return false, "", err
	}
	if v := a.version(); v != to {
		// The deployment ended without our definition: cancelled, or
		// replaced by someone else's.
		return false, "", fmt.Errorf("marathon app %s runs version %q, not %s: its deployment %s was cancelled or replaced", id, v, to, depID)
	}
	if a.Instances != n {
		return false, "", fmt.Errorf("%w: marathon app %s: another change set %d instances while deploying %d",
			signalman.ErrSuperseded, id, a.Instances, n)
	}
	current := 0
	for _, tk := range a.running() {
		if tk.Version == a.Version {
			current++
		}
	}
	return a.converged() && current == n, fmt.Sprintf("%d tasks of %s were not running and healthy (%d of the new definition running, %d healthy)",
		n, to, current, a.TasksHealthy), nil
}

// rollBack cancels deployment depID while it runs (Marathon then deploys
// the previous definition), else puts the previous definition back with
// force, and waits for it to run.
func (d *Driver) rollBack(ctx context.Context, t signalman.Target, id, depID string, deploying bool, before *app, raw map[string]json.RawMessage, progress func(signalman.Step)) error {
	// The rollback outlives the deploy's cancellation, within its own
	// bound: a half-rolled app is worse than a late answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	defer cancel()
	var back deploymentRef
	err := errDeploymentGone
	if deploying {
		back, err = d.api.cancelDeployment(ctx, depID)
	}
	if errors.Is(err, errDeploymentGone) {
		back, err = d.api.update(ctx, id, previousApp(before, raw), true)
	}
	if err != nil {
		return err
	}
	from := before.version()
	backing := true
	return signalman.Follow{
		Target: t, Version: from, N: before.Instances, Object: "rollback of marathon app " + id,
		Timeout: d.cfg.Timeout, Poll: d.cfg.PollInterval, Confirmer: d.cfg.Confirmer, Progress: progress,
		Check: func(ctx context.Context) (bool, string, error) {
			return d.deployed(ctx, id, back.DeploymentID, &backing, from, before.Instances)
		},
	}.Run(ctx)
}
