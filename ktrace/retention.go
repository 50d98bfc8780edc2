package ktrace

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// RetainerConfig configures a Retainer. Store is required; the other zero
// values are safe.
type RetainerConfig struct {
	Store Store
	// TTL is how long spans are kept after their start. 0 means 7 days.
	TTL time.Duration
	// Interval between sweeps. 0 means 10 minutes: a sweep is cheap when
	// little is due, and frequent small sweeps hold the SQLite write lock
	// for less time than rare large ones.
	Interval time.Duration
	// Logger: nil discards.
	Logger *slog.Logger
}

// Retainer applies the retention TTL to a store.
type Retainer struct {
	store    Store
	ttl      time.Duration
	interval time.Duration
	log      *slog.Logger
}

// NewRetainer returns a Retainer; Run starts it.
func NewRetainer(cfg RetainerConfig) *Retainer {
	if cfg.TTL <= 0 {
		cfg.TTL = 7 * 24 * time.Hour
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Retainer{store: cfg.Store, ttl: cfg.TTL, interval: cfg.Interval, log: cfg.Logger}
}

// Run expires spans older than TTL at once and then every Interval, until
// ctx is done; it then returns nil. A failed sweep is logged and retried at
// the next tick: retention falling behind for a while loses nothing.
func (r *Retainer) Run(ctx context.Context) error {
	if r.store == nil {
		return errors.New("retainer: no store")
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-r.ttl)
		n, err := r.store.Expire(ctx, cutoff)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.log.Warn("span retention failed", "cutoff", cutoff, "err", err)
		case n > 0:
			r.log.Debug("span retention", "cutoff", cutoff, "spans", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
