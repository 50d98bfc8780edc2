package headquarter

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
)

func TestMemoryStore(t *testing.T) { testStore(t, NewMemoryStore()) }

func TestSQLStore(t *testing.T) {
	db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	testStore(t, NewSQLStore(db, nil))
}

func TestSQLStoreMariaDB(t *testing.T) {
	srv := mariadbtest.Start(t)
	db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	testStore(t, NewSQLStore(db, nil))
}

// testStore is the conformance suite every Store passes.
func testStore(t *testing.T, s Store) {
	ctx := t.Context()
	t.Run("decisions newest first, by service, limited", func(t *testing.T) {
		var ds []Decision
		for i, svc := range []string{"inventory", "checkpoint", "inventory", "inventory"} {
			d, _ := Evaluate(testPolicy(), State{}, input(2, 1000, 0.95, 0.5), t0.Add(time.Duration(i)*time.Second))
			d.Service = svc
			ds = append(ds, d)
		}
		// Same time as the last one: ID breaks the tie.
		tie := ds[3]
		tie.Outcome, tie.Error, tie.Finished = OutcomeFailed, "driver exploded", t0.Add(time.Minute)
		if err := s.Record(ctx, ds...); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, tie); err != nil {
			t.Fatal(err)
		}
		all, err := s.Decisions(ctx, DecisionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 5 {
			t.Fatalf("%d decisions, want 5", len(all))
		}
		if all[0].Outcome != OutcomeFailed || all[0].Error != "driver exploded" || all[0].ID <= all[1].ID {
			t.Errorf("newest is %+v, want the tie recorded last", all[0])
		}
		for i := 1; i < len(all); i++ {
			if all[i].Time.After(all[i-1].Time) {
				t.Errorf("decision %d is newer than %d", i, i-1)
			}
		}
		inv, err := s.Decisions(ctx, DecisionQuery{Service: "inventory", Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(inv) != 2 || inv[0].Service != "inventory" || inv[1].Service != "inventory" || !inv[1].Time.Equal(t0.Add(3*time.Second)) {
			t.Errorf("inventory, limit 2: %+v", inv)
		}
		// The whole explanation survives the store.
		want := tie
		want.ID = all[0].ID
		if g, w := mustJSON(t, all[0]), mustJSON(t, want); g != w {
			t.Errorf("stored decision:\n got %s\nwant %s", g, w)
		}
		none, err := s.Decisions(ctx, DecisionQuery{Service: "nobody"})
		if err != nil || len(none) != 0 {
			t.Errorf("unknown service: %v, %v", none, err)
		}
	})
	t.Run("decisions in progress, finished and interrupted", func(t *testing.T) {
		start := func(svc string, term int64) Decision {
			t.Helper()
			d, _ := Evaluate(testPolicy(), State{}, input(2, 1000, 0.95, 0.5), t0.Add(time.Hour))
			d.Service, d.Term = svc, term
			stored, err := s.Start(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if stored.ID == 0 || stored.Outcome != OutcomeInProgress {
				t.Fatalf("started %+v, want an ID and outcome in_progress", stored)
			}
			return stored
		}
		listed := func(svc string) Decision {
			t.Helper()
			ds, err := s.Decisions(ctx, DecisionQuery{Service: svc})
			if err != nil || len(ds) != 1 {
				t.Fatalf("decisions of %s: %+v, %v", svc, ds, err)
			}
			return ds[0]
		}
		done := start("ip-done", 5)
		// The intent is on record, with its whole explanation.
		if g, w := mustJSON(t, listed("ip-done")), mustJSON(t, done); g != w {
			t.Errorf("in progress:\n got %s\nwant %s", g, w)
		}
		done.Outcome, done.Finished = OutcomeDone, t0.Add(time.Hour+time.Second)
		if err := s.Finish(ctx, done); err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, listed("ip-done")), mustJSON(t, done); g != w {
			t.Errorf("finished:\n got %s\nwant %s", g, w)
		}
		if err := s.Finish(ctx, done); !errors.Is(err, ErrEnded) {
			t.Errorf("finished twice: %v, want ErrEnded", err)
		}
		if err := s.Finish(ctx, Decision{ID: 1 << 40, Outcome: OutcomeDone}); !errors.Is(err, ErrNotFound) {
			t.Errorf("finish of an unknown decision: %v, want ErrNotFound", err)
		}

		old, mine := start("ip-old", 5), start("ip-mine", 7)
		at := t0.Add(2 * time.Hour)
		ended, err := s.Interrupt(ctx, 7, at)
		if err != nil {
			t.Fatal(err)
		}
		want := old
		want.Outcome, want.Error, want.Finished = OutcomeInterrupted, InterruptedReason, at
		if len(ended) != 1 || mustJSON(t, ended[0]) != mustJSON(t, want) {
			t.Errorf("interrupted %+v, want only the earlier term's %+v", ended, want)
		}
		if g, w := mustJSON(t, listed("ip-old")), mustJSON(t, want); g != w {
			t.Errorf("interrupted:\n got %s\nwant %s", g, w)
		}
		// The deposed leader's late outcome does not overwrite the mark.
		old.Outcome = OutcomeDone
		if err := s.Finish(ctx, old); !errors.Is(err, ErrEnded) {
			t.Errorf("finish of an interrupted decision: %v, want ErrEnded", err)
		}
		if got := listed("ip-mine"); got.Outcome != OutcomeInProgress {
			t.Errorf("this term's decision is %q, want still in progress", got.Outcome)
		}
		if again, err := s.Interrupt(ctx, 7, at); err != nil || len(again) != 0 {
			t.Errorf("second interrupt: %+v, %v", again, err)
		}
		// Term 0 (no election) ends every one.
		if ended, err := s.Interrupt(ctx, 0, at); err != nil || len(ended) != 1 || ended[0].ID != mine.ID {
			t.Errorf("interrupt without a term: %+v, %v", ended, err)
		}
	})
	t.Run("policies", func(t *testing.T) {
		if _, err := s.Policy(ctx, "inventory"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing policy: %v, want ErrNotFound", err)
		}
		if err := s.PutPolicy(ctx, Policy{Service: "bad", Min: 5, Max: 2}); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("invalid policy stored: %v", err)
		}
		p := testPolicy()
		p.DryRun = true
		if err := s.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPolicy(ctx, Policy{Service: "checkpoint"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Policy(ctx, "inventory")
		if err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, got), mustJSON(t, p.WithDefaults()); g != w {
			t.Errorf("policy:\n got %s\nwant %s", g, w)
		}
		if ps, err := s.Policies(ctx); err != nil || len(ps) != 2 || ps[1].Max != 40 {
			t.Fatalf("policies before the update: %+v, %v", ps, err)
		}
		p.Max = 12
		if err := s.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		ps, err := s.Policies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].Service != "checkpoint" || ps[1].Max != 12 || ps[0].Max != DefaultMax {
			t.Errorf("policies: %+v", ps)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
