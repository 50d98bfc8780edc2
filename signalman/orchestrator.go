package signalman

import (
	"context"
	"fmt"
	"time"
)

// Target names a group of instances: one service in one environment.
type Target struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

func (t Target) String() string {
	if t.Env == "" {
		return t.Service
	}
	return t.Service + "@" + t.Env
}

// Validate reports what is wrong with the target.
func (t Target) Validate() error {
	if t.Service == "" {
		return fmt.Errorf("%w: service name is empty", ErrInvalid)
	}
	return nil
}

// Instance is one instance as the orchestrator sees it. The registry view
// of the same instance (address, tags) is registry.Instance.
type Instance struct {
	ID      string    `json:"id"`
	Target  Target    `json:"target"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
}

// Result is the outcome of a Scale call.
type Result struct {
	Target  Target   `json:"target"`
	From    int      `json:"from"`
	To      int      `json:"to"`
	Started []string `json:"started,omitempty"` // instance IDs started
	Stopped []string `json:"stopped,omitempty"` // instance IDs stopped
}

// NoOp reports whether the call changed nothing. A no-op must not start a
// scaling cooldown.
func (r Result) NoOp() bool { return len(r.Started) == 0 && len(r.Stopped) == 0 }

// Orchestrator runs instances of services. It is the contract every driver
// (process, docker, swarm, marathon) implements.
//
// Concurrency: all methods are safe for concurrent use. Two Scale calls on
// the same target do not interleave: the second either waits or returns
// ErrBusy (drivers document which).
//
// Cancellation: cancelling ctx abandons waiting; instances already started
// are either confirmed or stopped again, never left half-recorded.
//
// Ownership: returned slices belong to the caller.
type Orchestrator interface {
	// Scale converges target to n instances. It returns once new instances
	// are registered (confirmed through the registry) and stopped ones are
	// gone. Scale-down stops the highest-numbered instances first. Errors:
	// ErrInvalid, ErrUnknownService, ErrBusy, ErrNotConfirmed, or a
	// driver-specific failure.
	Scale(ctx context.Context, target Target, n int) (Result, error)
	// Instances lists the instances the orchestrator runs for target,
	// ordered by instance number.
	Instances(ctx context.Context, target Target) ([]Instance, error)
}

// InstanceDriver is what rolling deploys by kplane and environments need
// from a driver beyond Scale: instances of a given version, started and
// stopped one at a time, and a whole environment torn down at once. The
// process and docker drivers implement it; drivers of schedulers that
// roll out themselves (swarm, marathon) implement Roller instead.
//
// The same concurrency, cancellation and ownership rules as Orchestrator
// apply. A Start that fails leaves nothing running.
type InstanceDriver interface {
	Orchestrator
	// Start starts one instance of target at version and returns once it
	// is registered (confirmed through the registry). Later Scale calls
	// on target start the version of the most recent Start.
	Start(ctx context.Context, target Target, version string) (Instance, error)
	// Stop drains one instance (deregister, let in-flight requests
	// finish) and stops it. ErrUnknownInstance if target has no such
	// instance.
	Stop(ctx context.Context, target Target, id string) error
	// DestroyEnv stops every instance of every service in env.
	DestroyEnv(ctx context.Context, env string) error
}
