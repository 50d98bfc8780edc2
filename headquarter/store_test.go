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
