package signalman_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

var st0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func TestMemoryDeployStore(t *testing.T) {
	testDeployStore(t, func(testing.TB) signalman.DeployStore { return signalman.NewMemoryDeployStore(0) })
}

func TestSQLiteDeployStore(t *testing.T) {
	testDeployStore(t, func(t testing.TB) signalman.DeployStore { return signalman.NewSQLDeployStore(openSQLite(t)) })
}

func TestMariaDBDeployStore(t *testing.T) {
	srv := mariadbtest.Start(t)
	testDeployStore(t, func(t testing.TB) signalman.DeployStore {
		db, err := sqldb.OpenMySQL(t.Context(), srv.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := sqldb.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		return signalman.NewSQLDeployStore(db)
	})
}

func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sampleDeploy(id string, target signalman.Target, at time.Time) signalman.Deploy {
	return signalman.Deploy{ID: id, Target: target, Version: "2.0", FromVersion: "1.0", Instances: 3,
		MaxSurge: 1, MaxUnavailable: 0, By: "alice", State: signalman.DeployRunning, Started: at, Steps: []signalman.Step{}}
}

// testDeployStore is the conformance suite every DeployStore passes.
func testDeployStore(t *testing.T, newStore func(testing.TB) signalman.DeployStore) {
	qa := signalman.Target{Service: "inventory", Env: "qa"}
	prod := signalman.Target{Service: "inventory", Env: "prod"}
	cp := signalman.Target{Service: "checkpoint", Env: "qa"}

	t.Run("a deploy round-trips with its steps, in order, to the nanosecond", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		// A zone other than UTC comes back as the same instant in UTC.
		d := sampleDeploy("d-1", qa, st0.In(time.FixedZone("CET", 3600)))
		if err := s.Create(ctx, d, "replica-a"); err != nil {
			t.Fatal(err)
		}
		steps := []signalman.Step{
			{Time: st0.Add(time.Millisecond), Action: signalman.ActionStart, Instance: "inventory-qa-4", Version: "2.0", Outcome: signalman.OutcomeOK, Took: 1500 * time.Millisecond},
			{Time: st0.Add(2 * time.Second), Action: signalman.ActionHealth, Instance: "inventory-qa-4", Version: "2.0", Outcome: signalman.OutcomeFailed, Error: "GET /healthz: 503", Took: time.Second},
			{Time: st0.Add(3 * time.Second), Action: signalman.ActionRollback, Version: "1.0", Outcome: signalman.OutcomeOK},
		}
		for i, st := range steps {
			if err := s.AddStep(ctx, "d-1", i, st); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		d.State, d.Error, d.Ended = signalman.DeployRolledBack, "instance failed its health check", st0.Add(4*time.Second)
		if err := s.Finish(ctx, d); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "d-1")
		if err != nil {
			t.Fatal(err)
		}
		want := d
		want.Started = st0
		want.Steps = steps
		if g, w := js(t, got), js(t, want); g != w {
			t.Errorf("round trip\n got %s\nwant %s", g, w)
		}
		if got.Started.Location() != time.UTC || !got.Steps[0].Time.Equal(steps[0].Time) {
			t.Errorf("times: started %v, first step %v", got.Started, got.Steps[0].Time)
		}
	})

	t.Run("a step stored twice under one number is replaced", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		if err := s.Create(ctx, sampleDeploy("d-1", qa, st0), ""); err != nil {
			t.Fatal(err)
		}
		first := signalman.Step{Time: st0, Action: signalman.ActionStart, Outcome: signalman.OutcomeFailed}
		second := signalman.Step{Time: st0, Action: signalman.ActionStart, Outcome: signalman.OutcomeOK}
		for _, st := range []signalman.Step{first, second} {
			if err := s.AddStep(ctx, "d-1", 0, st); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Get(ctx, "d-1")
		if err != nil || len(got.Steps) != 1 || got.Steps[0].Outcome != signalman.OutcomeOK {
			t.Fatalf("steps %+v, %v", got.Steps, err)
		}
	})

	t.Run("unknown deploys", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		if _, err := s.Get(ctx, "d-nope"); !errors.Is(err, signalman.ErrUnknownDeploy) {
			t.Errorf("Get: %v, want ErrUnknownDeploy", err)
		}
		if err := s.AddStep(ctx, "d-nope", 0, signalman.Step{Time: st0, Action: signalman.ActionStart, Outcome: "ok"}); !errors.Is(err, signalman.ErrUnknownDeploy) {
			t.Errorf("AddStep: %v, want ErrUnknownDeploy", err)
		}
		if err := s.Finish(ctx, sampleDeploy("d-nope", qa, st0)); !errors.Is(err, signalman.ErrUnknownDeploy) {
			t.Errorf("Finish: %v, want ErrUnknownDeploy", err)
		}
		if err := s.Create(ctx, sampleDeploy("d-1", qa, st0), ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, sampleDeploy("d-1", qa, st0), ""); err == nil {
			t.Error("a second deploy with the same ID was stored")
		}
	})

	t.Run("list newest first, filtered, limited, with steps", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		targets := []signalman.Target{qa, prod, cp, qa}
		for i, tg := range targets {
			id := "d-" + string(rune('a'+i))
			// Same start time for all: the order is the order of creation.
			if err := s.Create(ctx, sampleDeploy(id, tg, st0), ""); err != nil {
				t.Fatal(err)
			}
			if err := s.AddStep(ctx, id, 0, signalman.Step{Time: st0, Action: signalman.ActionStart, Instance: id, Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(ds []signalman.Deploy) []string {
			var out []string
			for _, d := range ds {
				if len(d.Steps) != 1 || d.Steps[0].Instance != d.ID {
					t.Errorf("deploy %s listed with steps %+v", d.ID, d.Steps)
				}
				out = append(out, d.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name  string
			t     signalman.Target
			limit int
			want  string
		}{
			{"all", signalman.Target{}, 0, "[d-d d-c d-b d-a]"},
			{"limit", signalman.Target{}, 2, "[d-d d-c]"},
			{"service", signalman.Target{Service: "inventory"}, 0, "[d-d d-b d-a]"},
			{"env", signalman.Target{Env: "qa"}, 0, "[d-d d-c d-a]"},
			{"target", qa, 1, "[d-d]"},
			{"nothing", signalman.Target{Service: "nobody"}, 0, "[]"},
		} {
			got, err := s.List(ctx, tc.t, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if g := "[" + strings.Join(ids(got), " ") + "]"; g != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, g, tc.want)
			}
		}
	})

	t.Run("interrupt ends only the owner's running deploys", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		for _, c := range []struct{ id, owner string }{{"d-a", "replica-a"}, {"d-b", "replica-b"}, {"d-c", "replica-a"}} {
			if err := s.Create(ctx, sampleDeploy(c.id, signalman.Target{Service: c.id, Env: "qa"}, st0), c.owner); err != nil {
				t.Fatal(err)
			}
		}
		done := sampleDeploy("d-c", signalman.Target{Service: "d-c", Env: "qa"}, st0)
		done.State, done.Ended = signalman.DeploySucceeded, st0.Add(time.Second)
		if err := s.Finish(ctx, done); err != nil {
			t.Fatal(err)
		}
		at := st0.Add(time.Hour)
		got, err := s.Interrupt(ctx, "replica-a", at, signalman.InterruptedReason)
		if err != nil || js(t, got) != `["d-a"]` {
			t.Fatalf("Interrupt = %v, %v; want [d-a]", got, err)
		}
		a, _ := s.Get(ctx, "d-a")
		if a.State != signalman.DeployFailed || a.Error != signalman.InterruptedReason || !a.Ended.Equal(at) {
			t.Errorf("interrupted deploy: %+v", a)
		}
		if b, _ := s.Get(ctx, "d-b"); b.State != signalman.DeployRunning {
			t.Errorf("another replica's deploy: %s, want still running", b.State)
		}
		if c, _ := s.Get(ctx, "d-c"); c.State != signalman.DeploySucceeded {
			t.Errorf("a finished deploy: %s, want succeeded", c.State)
		}
		if again, err := s.Interrupt(ctx, "replica-a", at, "x"); err != nil || len(again) != 0 {
			t.Errorf("second Interrupt = %v, %v", again, err)
		}
	})
}

// A restarted kplane finds the deploys of its previous life with their
// steps, and the one it was running shows as failed, not running for
// ever.
func TestDeploysSurviveRestart(t *testing.T) {
	db := openSQLite(t)
	store := signalman.NewSQLDeployStore(db)
	f := newFleet()
	ctx := context.Background()
	if _, err := f.Scale(ctx, inventory, 2); err != nil {
		t.Fatal(err)
	}
	first, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: f, Gate: f, Store: store, Owner: "replica-a"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := first.Deploy(ctx, signalman.DeployRequest{Target: inventory, Version: "2.0"})
	if err != nil || done.State != signalman.DeploySucceeded {
		t.Fatalf("deploy: %+v, %v", done, err)
	}
	// The process dies in the middle of a second deploy: its record stays
	// running in the store.
	crashed := sampleDeploy("d-crashed", signalman.Target{Service: "checkpoint", Env: "qa"}, st0)
	if err := store.Create(ctx, crashed, "replica-a"); err != nil {
		t.Fatal(err)
	}
	if err := store.AddStep(ctx, crashed.ID, 0, signalman.Step{Time: st0, Action: signalman.ActionStart, Instance: "checkpoint-qa-1", Version: "2.0", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	// Another replica's running deploy is not this replica's to end.
	other := sampleDeploy("d-other", signalman.Target{Service: "checkpoint", Env: "prod"}, st0)
	if err := store.Create(ctx, other, "replica-b"); err != nil {
		t.Fatal(err)
	}

	second, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: f, Gate: f,
		Store: signalman.NewSQLDeployStore(db), Owner: "replica-a"})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- second.Run(runCtx) }()
	defer func() { cancel(); <-runDone }()

	var list []signalman.Deploy
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		list, err = second.List(ctx, signalman.Target{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 3 && list[1].State.Done() || time.Now().After(deadline) {
			break
		}
	}
	if len(list) != 3 || list[0].ID != "d-other" || list[1].ID != "d-crashed" || list[2].ID != done.ID {
		t.Fatalf("after restart: %s", js(t, list))
	}
	if g, w := js(t, list[2]), js(t, done); g != w {
		t.Errorf("finished deploy after restart\n got %s\nwant %s", g, w)
	}
	if c := list[1]; c.State != signalman.DeployFailed || c.Error != signalman.InterruptedReason || len(c.Steps) != 1 || c.Ended.IsZero() {
		t.Errorf("interrupted deploy after restart: %s", js(t, c))
	}
	if list[0].State != signalman.DeployRunning {
		t.Errorf("replica-b's deploy: %s, want running", list[0].State)
	}
	got, err := second.Get(ctx, done.ID)
	if err != nil || len(got.Steps) != len(done.Steps) {
		t.Errorf("Get after restart: %d steps, %v", len(got.Steps), err)
	}
	// Following a deploy that ended before the restart: Subscribe works,
	// and the first Get says it is done.
	ch, unsub, err := second.Subscribe(ctx, done.ID)
	if err != nil || ch == nil {
		t.Fatalf("Subscribe to a stored deploy: %v", err)
	}
	unsub()
	if _, _, err := second.Subscribe(ctx, "d-nope"); !errors.Is(err, signalman.ErrUnknownDeploy) {
		t.Errorf("Subscribe unknown: %v", err)
	}
}
