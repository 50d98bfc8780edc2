package signalman

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"
)

// ActionInterrupt is the step a Sweeper adds to a deploy whose replica
// stopped while running it; its Error says which replica.
const ActionInterrupt = "interrupt"

// OwnedDeploy is a running deploy and the replica that runs it.
type OwnedDeploy struct {
	ID      string
	Owner   string
	Started time.Time
}

// SweepStore is what a Sweeper needs of a DeployStore; MemoryDeployStore
// and SQLDeployStore implement it.
type SweepStore interface {
	// Running lists the deploys that are running, oldest first.
	Running(ctx context.Context) ([]OwnedDeploy, error)
	// Abandon ends deploy id as failed at at, with reason as its error and
	// an ActionInterrupt step, provided it is still running and owner
	// runs it; it reports whether it did. The check and the writes are
	// one transaction, so of several replicas sweeping at once exactly
	// one records the interruption.
	Abandon(ctx context.Context, id, owner string, at time.Time, reason string) (bool, error)
}

var (
	_ SweepStore = (*MemoryDeployStore)(nil)
	_ SweepStore = (*SQLDeployStore)(nil)
)

// Replicas tells which replicas are gone; *Absence implements it.
type Replicas interface {
	Gone(ctx context.Context, names []string) (map[string]bool, error)
}

var _ Replicas = (*Absence)(nil)

// DefaultSweepInterval is how often a Sweeper looks for abandoned work.
const DefaultSweepInterval = 5 * time.Second

// SweeperConfig configures a Sweeper. Store and Replicas are required.
type SweeperConfig struct {
	Store    SweepStore
	Replicas Replicas
	// Self is this replica's name: its own deploys are never swept (it
	// ends them itself, even after a long etcd outage).
	Self string
	// Interval between sweeps; 0 is DefaultSweepInterval. Each wait is
	// jittered by up to a fifth, so replicas do not sweep in lockstep.
	Interval time.Duration
	Now      func() time.Time // nil is time.Now
	Logger   *slog.Logger     // nil discards
}

// Sweeper ends, as failed, the deploys left running by a replica that
// stopped and never came back (its machine is gone), which would
// otherwise show running for ever and keep its target busy. Every replica
// runs one: the store's Abandon makes concurrent sweeps safe, and no
// election is needed for work that any survivor can do.
//
// Deploys without an owner name (one process with its own store) are
// left alone.
type Sweeper struct {
	cfg SweeperConfig
	now func() time.Time
	log *slog.Logger
}

// NewSweeper returns a Sweeper; Run drives it.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if cfg.Store == nil || cfg.Replicas == nil {
		return nil, errors.New("signalman: SweeperConfig needs a Store and Replicas")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSweepInterval
	}
	s := &Sweeper{cfg: cfg, now: cfg.Now, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Run sweeps at once and then every Interval until ctx ends; it returns
// nil. A failed sweep is logged and tried again at the next one.
func (s *Sweeper) Run(ctx context.Context) error {
	RunSweeps(ctx, s.cfg.Interval, s.log, "sweep abandoned deploys", func(ctx context.Context) error {
		_, err := s.Sweep(ctx)
		return err
	})
	return nil
}

// Sweep ends the running deploys whose owner is gone, and returns their
// IDs.
func (s *Sweeper) Sweep(ctx context.Context) ([]string, error) {
	running, err := s.cfg.Store.Running(ctx)
	if err != nil {
		return nil, err
	}
	ended, err := SweepGone(ctx, s.cfg.Replicas, s.cfg.Self, running,
		func(d OwnedDeploy) string { return d.Owner },
		func(d OwnedDeploy) (bool, error) {
			ok, err := s.cfg.Store.Abandon(ctx, d.ID, d.Owner, s.now(), ReplicaGone(d.Owner))
			if ok {
				s.log.Warn("deploy of a replica that never came back marked failed", "deploy", d.ID, "replica", d.Owner)
			}
			return ok, err
		})
	ids := make([]string, len(ended))
	for i, d := range ended {
		ids[i] = d.ID
	}
	return ids, err
}

// SweepGone ends the work whose owner is gone: it asks replicas once
// about every owner but self (work without an owner is left alone), then
// calls end for each item of a gone owner, and returns the items end
// reported ending, with every error end returned.
func SweepGone[T any](ctx context.Context, replicas Replicas, self string, work []T,
	owner func(T) string, end func(T) (bool, error)) ([]T, error) {
	var owners []string
	for _, w := range work {
		if o := owner(w); o != "" && o != self && !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
	}
	if len(owners) == 0 {
		return nil, nil
	}
	gone, err := replicas.Gone(ctx, owners)
	if err != nil {
		return nil, err
	}
	var ended []T
	var errs []error
	for _, w := range work {
		if o := owner(w); o == "" || o == self || !gone[o] {
			continue
		}
		ok, err := end(w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			ended = append(ended, w)
		}
	}
	return ended, errors.Join(errs...)
}

// RunSweeps calls sweep at once and then every interval, each wait
// jittered by up to a fifth so that replicas do not sweep in lockstep,
// until ctx ends. A failed sweep is logged as what and tried again at the
// next one.
func RunSweeps(ctx context.Context, interval time.Duration, log *slog.Logger, what string, sweep func(context.Context) error) {
	for {
		if err := sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval + rand.N(interval/5+1)):
		}
	}
}
