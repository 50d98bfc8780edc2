package signalman

import (
	"context"
	"fmt"
	"regexp"
)

// Environments.
//
// An environment is a name (alpha, qa, prod, or a throwaway one such as
// alpha-b42) shared by the targets that run in it: the same service runs
// side by side in several environments, as separate targets. Drivers
// label each instance with its environment and the instance registers
// with it (registry.Instance.Env); a driver whose spec also passes the
// environment as a registry tag (the demo's `--tag {env}`) lets callers
// select with registry.Selector{Tag: env} so that calls stay inside it.

// envName is what an environment may be called: it becomes part of
// instance IDs, container names and registry keys.
var envName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidEnv reports what is wrong with an environment name.
func ValidEnv(env string) error {
	if !envName.MatchString(env) {
		return fmt.Errorf("%w: environment %q: use 1 to 40 lowercase letters, digits and inner dashes", ErrInvalid, env)
	}
	return nil
}

// EnvDestroyer tears a whole environment down. InstanceDriver includes
// it. A Roller implements it when its driver also creates the services an
// environment needs (swarm, from its specs): Roll on a target whose
// environment does not run the service yet then creates it, and Instances
// of such a target is empty rather than ErrUnknownService. A Roller
// without it (marathon) rolls only what its scheduler already runs, and
// the Deployer refuses environments on it (ErrUnsupported).
type EnvDestroyer interface {
	// DestroyEnv stops every instance of every service in env that the
	// driver runs or created, and returns once they are gone.
	DestroyEnv(ctx context.Context, env string) error
}

// EnvService is one service of an environment at a version.
type EnvService struct {
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instances int    `json:"instances,omitempty"` // 0 means 1
}

// CreateEnv deploys every service into env, one after the other, and
// returns their deploys. It stops at the first deploy that does not
// succeed (its record says why) and returns an error then; the services
// deployed so far keep running until DestroyEnv.
func (d *Deployer) CreateEnv(ctx context.Context, env string, services []EnvService) ([]Deploy, error) {
	if err := ValidEnv(env); err != nil {
		return nil, err
	}
	if len(services) == 0 {
		return nil, fmt.Errorf("%w: environment %s has no services", ErrInvalid, env)
	}
	if d.envs == nil {
		// This Roller only rolls services that already run in the
		// scheduler: it creates none, so an environment would be
		// left half-made with nothing to tear it down.
		return nil, fmt.Errorf("create environment %s: the driver rolls services its scheduler runs and creates or removes none: %w", env, ErrUnsupported)
	}
	var out []Deploy
	for _, s := range services {
		n := max(s.Instances, 1)
		dep, err := d.Deploy(ctx, DeployRequest{Target: Target{Service: s.Service, Env: env}, Version: s.Version, Instances: n})
		if err != nil {
			return out, fmt.Errorf("environment %s: %w", env, err)
		}
		out = append(out, dep)
		if dep.State != DeploySucceeded {
			return out, fmt.Errorf("environment %s: deploy %s of %s ended %s: %s", env, dep.ID, s.Service, dep.State, dep.Error)
		}
	}
	return out, nil
}

// DestroyEnv stops every instance of every service in env. It refuses
// (ErrBusy) while a deploy runs in env, since that deploy would start
// instances behind the teardown's back, and while env is already being
// destroyed; and while it runs, deploys into env are refused (ErrBusy) in
// turn. Refusing rather than waiting or cancelling keeps a teardown from
// silently undoing a deploy someone is watching: the caller retries once
// the deploy has ended (or cancels it itself).
func (d *Deployer) DestroyEnv(ctx context.Context, env string) error {
	if err := ValidEnv(env); err != nil {
		return err
	}
	d.mu.Lock()
	for t, id := range d.busy {
		if t.Env == env {
			d.mu.Unlock()
			return fmt.Errorf("%w: deploy %s of %s is running in environment %s", ErrBusy, id, t.Service, env)
		}
	}
	if d.razing[env] {
		d.mu.Unlock()
		return fmt.Errorf("%w: environment %s is already being destroyed", ErrBusy, env)
	}
	if d.razing == nil {
		d.razing = map[string]bool{}
	}
	d.razing[env] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.razing, env)
		d.mu.Unlock()
	}()
	if d.envs == nil {
		return fmt.Errorf("destroy environment %s: the driver rolls services its scheduler runs and creates or removes none: %w", env, ErrUnsupported)
	}
	if err := d.envs.DestroyEnv(ctx, env); err != nil {
		return fmt.Errorf("destroy environment %s: %w", env, err)
	}
	d.log.Info("environment destroyed", "env", env)
	return nil
}
