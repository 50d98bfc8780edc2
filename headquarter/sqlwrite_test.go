package headquarter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/sqldb"
)

// Writes made together share transactions; each caller still gets its
// own outcome, and one that fails (here: finishing a decision another
// leader interrupted, or one that does not exist) fails alone.
func TestSQLStoreConcurrentWrites(t *testing.T) {
	ctx := t.Context()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	s := NewSQLStore(db, nil)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	const n = 300 // more than one batch
	started := make([]Decision, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			d := Decision{Service: fmt.Sprintf("svc-%03d", i), Time: at, Action: Up, From: 2, To: 4, Term: 7}
			started[i], errs[i] = s.Start(ctx, d)
		})
	}
	wg.Go(func() {
		if err := s.Record(ctx, Decision{Service: "held", Time: at, Action: Hold, Guard: GuardMissingData}); err != nil {
			t.Errorf("record: %v", err)
		}
	})
	wg.Wait()
	ids := map[int64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if started[i].ID == 0 || ids[started[i].ID] || started[i].Outcome != OutcomeInProgress {
			t.Fatalf("start %d: %+v", i, started[i])
		}
		ids[started[i].ID] = true
	}

	// Another leader interrupts the first half.
	interrupted, err := s.Interrupt(ctx, 0, at.Add(time.Second))
	if err != nil || len(interrupted) != n {
		t.Fatalf("interrupt: %d, %v", len(interrupted), err)
	}
	for i := n / 2; i < n; i++ { // put the second half back in progress
		d := started[i]
		d.ID = 0
		if started[i], err = s.Start(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		wg.Go(func() {
			d := started[i]
			d.Outcome, d.Finished = OutcomeDone, at.Add(2*time.Second)
			errs[i] = s.Finish(ctx, d)
		})
	}
	var missing error
	wg.Go(func() { missing = s.Finish(ctx, Decision{ID: 1 << 40, Outcome: OutcomeDone}) })
	wg.Wait()
	if !errors.Is(missing, ErrNotFound) {
		t.Errorf("finish of an unknown decision: %v, want ErrNotFound", missing)
	}
	for i, err := range errs {
		if want := i < n/2; errors.Is(err, ErrEnded) != want || (!want && err != nil) {
			t.Errorf("finish %d: %v (interrupted: %v)", i, err, want)
		}
	}
	ds, err := s.Decisions(ctx, DecisionQuery{Limit: MaxDecisionLimit})
	if err != nil {
		t.Fatal(err)
	}
	count := map[Outcome]int{}
	for _, d := range ds {
		count[d.Outcome]++
	}
	if count[OutcomeDone] != n/2 || count[OutcomeInterrupted] != n {
		t.Errorf("stored outcomes %v, want %d done and %d interrupted", count, n/2, n)
	}

	// A write whose context ended is not stored.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Start(cctx, Decision{Service: "late", Time: at, Action: Up}); !errors.Is(err, context.Canceled) {
		t.Errorf("start with a cancelled context: %v", err)
	}
}
