package signalman_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

// sweepStore is a store with the Sweeper's methods.
type sweepStore interface {
	signalman.DeployStore
	signalman.SweepStore
}

func TestMemorySweepStore(t *testing.T) {
	testSweepStore(t, func(testing.TB) sweepStore { return signalman.NewMemoryDeployStore(0) })
}

func TestSQLiteSweepStore(t *testing.T) {
	testSweepStore(t, func(t testing.TB) sweepStore { return signalman.NewSQLDeployStore(openSQLite(t)) })
}

func TestMariaDBSweepStore(t *testing.T) {
	srv := mariadbtest.Start(t)
	testSweepStore(t, func(t testing.TB) sweepStore {
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

// testSweepStore is the conformance suite of Running and Abandon.
func testSweepStore(t *testing.T, newStore func(testing.TB) sweepStore) {
	create := func(t *testing.T, s sweepStore, id, owner string, at time.Time) {
		t.Helper()
		if err := s.Create(t.Context(), sampleDeploy(id, signalman.Target{Service: id, Env: "qa"}, at), owner); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("running lists the running deploys with their owners, oldest first", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		create(t, s, "d-a", "replica-a", st0)
		create(t, s, "d-b", "replica-b", st0.Add(time.Second))
		create(t, s, "d-c", "replica-a", st0.Add(2*time.Second))
		done := sampleDeploy("d-b", signalman.Target{Service: "d-b", Env: "qa"}, st0)
		done.State, done.Ended = signalman.DeploySucceeded, st0.Add(time.Minute)
		if err := s.Finish(ctx, done); err != nil {
			t.Fatal(err)
		}
		got, err := s.Running(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []signalman.OwnedDeploy{{ID: "d-a", Owner: "replica-a", Started: st0}, {ID: "d-c", Owner: "replica-a", Started: st0.Add(2 * time.Second)}}
		if js(t, got) != js(t, want) {
			t.Errorf("Running = %s, want %s", js(t, got), js(t, want))
		}
	})

	t.Run("abandon ends a running deploy of its owner once, with a step saying why", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		create(t, s, "d-a", "replica-a", st0)
		if err := s.AddStep(ctx, "d-a", 0, signalman.Step{Time: st0, Action: signalman.ActionStart, Instance: "d-a-qa-1", Version: "2.0", Outcome: signalman.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
		at, reason := st0.Add(time.Hour), signalman.ReplicaGone("replica-a")
		if ok, err := s.Abandon(ctx, "d-a", "replica-b", at, reason); err != nil || ok {
			t.Fatalf("Abandon by the wrong owner = %v, %v; want false", ok, err)
		}
		if ok, err := s.Abandon(ctx, "d-missing", "replica-a", at, reason); err != nil || ok {
			t.Fatalf("Abandon of an unknown deploy = %v, %v; want false", ok, err)
		}
		if ok, err := s.Abandon(ctx, "d-a", "replica-a", at, reason); err != nil || !ok {
			t.Fatalf("Abandon = %v, %v; want true", ok, err)
		}
		d, err := s.Get(ctx, "d-a")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != signalman.DeployFailed || d.Error != reason || !d.Ended.Equal(at) {
			t.Errorf("abandoned deploy: %s", js(t, d))
		}
		want := signalman.Step{Time: at, Action: signalman.ActionInterrupt, Outcome: signalman.OutcomeFailed, Error: reason}
		if len(d.Steps) != 2 || d.Steps[0].Action != signalman.ActionStart || js(t, d.Steps[1]) != js(t, want) {
			t.Errorf("steps of the abandoned deploy: %s, want the start and %s", js(t, d.Steps), js(t, want))
		}
		if ok, err := s.Abandon(ctx, "d-a", "replica-a", at.Add(time.Minute), "again"); err != nil || ok {
			t.Errorf("second Abandon = %v, %v; want false", ok, err)
		}
		if running, err := s.Running(ctx); err != nil || len(running) != 0 {
			t.Errorf("Running after Abandon = %v, %v", running, err)
		}
	})

	t.Run("of replicas abandoning the same deploy at once, exactly one does", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		create(t, s, "d-a", "replica-a", st0)
		var won atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				ok, err := s.Abandon(ctx, "d-a", "replica-a", st0.Add(time.Hour), signalman.ReplicaGone("replica-a"))
				if err != nil {
					errs <- err
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		d, err := s.Get(ctx, "d-a")
		if err != nil {
			t.Fatal(err)
		}
		if won.Load() != 1 || len(d.Steps) != 1 {
			t.Errorf("%d sweepers ended it, %d steps; want exactly one of each", won.Load(), len(d.Steps))
		}
	})
}

// fakeLive is a LiveLister whose answer the test sets.
type fakeLive struct {
	mu   sync.Mutex
	live map[string]bool
	err  error
}

func (f *fakeLive) set(err error, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live, f.err = map[string]bool{}, err
	for _, n := range names {
		f.live[n] = true
	}
}

func (f *fakeLive) Live(context.Context) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.live, nil
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestAbsence(t *testing.T) {
	live, clock := &fakeLive{}, &fakeClock{now: st0}
	a, err := signalman.NewAbsence(signalman.AbsenceConfig{Replicas: live, Grace: 30 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	names := []string{"a", "b", "c"}
	step := func(name string, want ...string) {
		t.Helper()
		gone, err := a.Gone(ctx, names)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if g := keys(gone); !slices.Equal(g, want) {
			t.Errorf("%s: gone %v, want %v", name, g, want)
		}
	}

	live.set(nil, "a")
	step("b and c missing for the first time are not gone yet")
	clock.Add(29 * time.Second)
	step("nor just before the grace ends")
	clock.Add(time.Second)
	step("once missing for the whole grace, they are gone", "b", "c")

	live.set(nil, "a", "b")
	clock.Add(time.Second)
	step("b is back", "c")
	live.set(nil, "a")
	clock.Add(time.Second)
	step("b missing again starts a new grace", "c")
	clock.Add(30 * time.Second)
	step("and is gone after it", "b", "c")

	live.set(errors.New("etcd: no leader"))
	clock.Add(time.Hour)
	if gone, err := a.Gone(ctx, names); err == nil || len(gone) != 0 {
		t.Errorf("etcd unreachable: gone %v, %v; want an error and no name", gone, err)
	}

	live.set(nil, "a")
	if _, err := a.Gone(ctx, []string{"d"}); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second)
	// Another caller (the promotion sweeper) asks about other names: the
	// grace of d goes on.
	step("a caller asking about other names", "b", "c")
	clock.Add(20 * time.Second)
	if gone, err := a.Gone(ctx, []string{"d"}); err != nil || !gone["d"] {
		t.Errorf("d after its grace: %v, %v", gone, err)
	}
}

func TestSweeper(t *testing.T) {
	ctx := t.Context()
	store := signalman.NewMemoryDeployStore(0)
	for _, c := range []struct{ id, owner string }{
		{"d-gone-1", "replica-gone"}, {"d-live", "replica-live"}, {"d-self", "replica-self"},
		{"d-gone-2", "replica-gone"}, {"d-unowned", ""},
	} {
		if err := store.Create(ctx, sampleDeploy(c.id, signalman.Target{Service: c.id, Env: "prod"}, st0), c.owner); err != nil {
			t.Fatal(err)
		}
	}
	live, clock := &fakeLive{}, &fakeClock{now: st0}
	live.set(nil, "replica-live") // replica-self's own key is missing too: it never sweeps itself
	absence, err := signalman.NewAbsence(signalman.AbsenceConfig{Replicas: live, Grace: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signalman.NewSweeper(signalman.SweeperConfig{Store: store, Replicas: absence, Self: "replica-self", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{0, 30 * time.Second, 29 * time.Second} {
		clock.Add(wait)
		if ended, err := s.Sweep(ctx); err != nil || len(ended) != 0 {
			t.Fatalf("within the grace: ended %v, %v", ended, err)
		}
	}
	clock.Add(time.Second)
	ended, err := s.Sweep(ctx)
	if err != nil || !slices.Equal(ended, []string{"d-gone-1", "d-gone-2"}) {
		t.Fatalf("after the grace: ended %v, %v; want both deploys of replica-gone", ended, err)
	}
	for _, id := range []string{"d-gone-1", "d-gone-2"} {
		d, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		last := d.Steps[len(d.Steps)-1]
		if d.State != signalman.DeployFailed || d.Error != "interrupted: kplane replica replica-gone stopped while it was running" ||
			!d.Ended.Equal(clock.Now()) || last.Action != signalman.ActionInterrupt || last.Error != d.Error {
			t.Errorf("%s: %s", id, js(t, d))
		}
	}
	for _, id := range []string{"d-live", "d-self", "d-unowned"} {
		if d, err := store.Get(ctx, id); err != nil || d.State != signalman.DeployRunning || len(d.Steps) != 0 {
			t.Errorf("%s: %s (%v), want untouched", id, js(t, d), err)
		}
	}
	clock.Add(time.Hour)
	if ended, err := s.Sweep(ctx); err != nil || len(ended) != 0 {
		t.Errorf("next sweep: ended %v, %v; want nothing more", ended, err)
	}

	// When etcd cannot say who is live, nothing is swept.
	if err := store.Create(ctx, sampleDeploy("d-later", signalman.Target{Service: "x", Env: "qa"}, st0), "replica-gone"); err != nil {
		t.Fatal(err)
	}
	live.set(errors.New("etcd unreachable"))
	if ended, err := s.Sweep(ctx); err == nil || len(ended) != 0 {
		t.Errorf("etcd unreachable: ended %v, %v; want an error and nothing", ended, err)
	}
}
