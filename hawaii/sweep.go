package hawaii

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kplane/kplane/signalman"
)

// SweepStore is what a Sweeper needs of a Store; SQLStore and MemoryStore
// implement it.
type SweepStore interface {
	Promotions(ctx context.Context, q PromotionQuery) ([]Promotion, error)
	// InterruptPromotion ends promotion id as failed at at with reason,
	// provided it is still running and runner runs it. In the same
	// transaction it fails the promotion's stage of its build if that is
	// still running (and the stage's running steps, with reason), and
	// appends a stage.changed audit event by "pipeline" naming the runner.
	// It reports whether it ended the promotion: of several replicas
	// sweeping at once exactly one does, so the audit log holds one event.
	InterruptPromotion(ctx context.Context, id int64, runner string, at time.Time, reason string) (Promotion, bool, error)
}

var (
	_ SweepStore = (*SQLStore)(nil)
	_ SweepStore = (*MemoryStore)(nil)
)

// Replicas tells which kplane replicas are gone; signalman.Absence
// implements it.
type Replicas interface {
	Gone(ctx context.Context, names []string) (map[string]bool, error)
}

var _ Replicas = (*signalman.Absence)(nil)

// SweeperConfig configures a Sweeper. Store and Replicas are required.
type SweeperConfig struct {
	Store    SweepStore
	Replicas Replicas
	// Self is this replica's name: its own promotions are never swept.
	Self string
	// Interval between sweeps; 0 is signalman.DefaultSweepInterval,
	// jittered by up to a fifth.
	Interval time.Duration
	Now      func() time.Time // nil is time.Now
	Logger   *slog.Logger     // nil discards
}

// Sweeper ends, as failed, the promotions left running by a replica that
// stopped and never came back: a person's promotion or rollback into
// prod runs on the replica that served the request, and while it shows
// running it blocks every other promotion of the service. Every replica
// runs one; InterruptPromotion makes concurrent sweeps safe.
//
// The pipeline leader also fails, as its term starts, the automatic
// promotions a previous leader left (Pipeline.Run); whichever comes first
// records it. An alpha environment of a swept promotion is left to the
// leader's cleaner. Promotions without a runner name are left alone.
type Sweeper struct {
	cfg SweeperConfig
	now func() time.Time
	log *slog.Logger
}

// NewSweeper returns a Sweeper; Run drives it.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if cfg.Store == nil || cfg.Replicas == nil {
		return nil, errors.New("hawaii: SweeperConfig needs a Store and Replicas")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = signalman.DefaultSweepInterval
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
	signalman.RunSweeps(ctx, s.cfg.Interval, s.log, "sweep abandoned promotions", func(ctx context.Context) error {
		_, err := s.Sweep(ctx)
		return err
	})
	return nil
}

// Sweep ends the running promotions whose runner is gone and returns
// them as they were stored.
func (s *Sweeper) Sweep(ctx context.Context) ([]Promotion, error) {
	running, err := s.cfg.Store.Promotions(ctx, PromotionQuery{Running: true, Limit: MaxLimit})
	if err != nil {
		return nil, err
	}
	var ended []Promotion
	_, err = signalman.SweepGone(ctx, s.cfg.Replicas, s.cfg.Self, running,
		func(pr Promotion) string { return pr.Runner },
		func(pr Promotion) (bool, error) {
			got, ok, err := s.cfg.Store.InterruptPromotion(ctx, pr.ID, pr.Runner, s.now(), signalman.ReplicaGone(pr.Runner))
			if ok {
				ended = append(ended, got)
				s.log.Warn("promotion of a replica that never came back marked failed", "promotion", pr.ID,
					"build", pr.BuildID, "env", pr.Env, "replica", pr.Runner)
			}
			return ok, err
		})
	return ended, err
}
