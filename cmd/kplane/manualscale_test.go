package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
)

// heldOrchestrator runs 1 instance and holds every Scale until released,
// as a slow engine does while containers start.
type heldOrchestrator struct {
	entered chan signalman.Target
	release chan struct{}
}

func newHeldOrchestrator() *heldOrchestrator {
	return &heldOrchestrator{entered: make(chan signalman.Target, 1), release: make(chan struct{})}
}

func (o *heldOrchestrator) Scale(ctx context.Context, t signalman.Target, n int) (signalman.Result, error) {
	o.entered <- t
	select {
	case <-o.release:
	case <-ctx.Done():
		return signalman.Result{}, ctx.Err()
	}
	res := signalman.Result{Target: t, From: 1, To: n}
	for i := 1; i < n; i++ {
		res.Started = append(res.Started, fmt.Sprintf("%s-%d", t.Service, i+1))
	}
	return res, nil
}

func (o *heldOrchestrator) Instances(context.Context, signalman.Target) ([]signalman.Instance, error) {
	return make([]signalman.Instance, 1), nil
}

func sqlDecisionStore(t *testing.T) (*headquarter.SQLStore, *sql.DB) {
	t.Helper()
	db, err := sqldb.Open(t.Context(), filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return headquarter.NewSQLStore(db, nil), db
}

func onlyDecision(t *testing.T, store headquarter.DecisionStore) headquarter.Decision {
	t.Helper()
	ds, err := store.Decisions(t.Context(), headquarter.DecisionQuery{Service: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("%d decisions stored, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

type scaleReturn struct {
	res signalman.Result
	err error
}

func scaleInBackground(m manualScaler, n int) <-chan scaleReturn {
	done := make(chan scaleReturn, 1)
	go func() {
		res, err := m.ScaleManually(context.Background(), "inventory", n, "alice")
		done <- scaleReturn{res, err}
	}()
	return done
}

// A manual scale is on record, in progress, while the orchestrator acts,
// and gets its outcome when it returns: a kplane killed in between leaves
// the intent, as the autoscaler's Loop does (the autoscaler off: no term).
func TestManualScaleStoresIntentFirst(t *testing.T) {
	store, _ := sqlDecisionStore(t)
	orch := newHeldOrchestrator()
	m := manualScaler{scaler: orchestratorScaler{orch: orch, defaultEnv: "dev"}, policies: store, decisions: store,
		log: slog.New(slog.DiscardHandler), now: time.Now}
	done := scaleInBackground(m, 3)

	<-orch.entered
	d := onlyDecision(t, store)
	if d.Outcome != headquarter.OutcomeInProgress || d.Action != actionManual || d.From != 1 || d.To != 3 || d.Term != 0 {
		t.Fatalf("while scaling: %+v, want manual 1 → 3 in progress", d)
	}
	close(orch.release)
	if r := <-done; r.err != nil || r.res.To != 3 {
		t.Fatalf("scale: %+v", r)
	}
	d = onlyDecision(t, store)
	if d.Outcome != headquarter.OutcomeDone || d.From != 1 || d.To != 3 || d.Finished.IsZero() || d.Reason != "manual scale to 3 by alice" {
		t.Fatalf("after the scale: %+v, want manual 1 → 3 done", d)
	}

	// A store that refuses the intent (its database closed): nothing is
	// scaled.
	closed, db := sqlDecisionStore(t)
	db.Close()
	m.decisions = closed
	if _, err := m.ScaleManually(t.Context(), "inventory", 2, "alice"); err == nil {
		t.Fatal("scaled without storing the decision first")
	}
	select {
	case tgt := <-orch.entered:
		t.Fatalf("the orchestrator was called for %v without the intent on record", tgt)
	default:
	}
}

// With the autoscaler on, a manual scale runs on the leader, through its
// fenced store, stamped with its term. The leader stops mid-scale (its
// replica killed, or deposed): the next leader's Loop marks the scale
// interrupted, and the old leader's late outcome is refused.
func TestManualScaleInterruptedByNextLeader(t *testing.T) {
	srv := etcdtest.Start(t)
	store, _ := sqlDecisionStore(t)
	a := runLeader(t, srv, "a", func(ctx context.Context) error { <-ctx.Done(); return nil })
	fa := waitFence(t, a.leader)

	orch := newHeldOrchestrator()
	m := manualScaler{scaler: orchestratorScaler{orch: orch, defaultEnv: "dev"}, leader: a.leader, policies: store,
		decisions: a.leader.FencedDecisions(store), log: slog.New(slog.DiscardHandler), now: time.Now}
	done := scaleInBackground(m, 3)
	<-orch.entered
	if d := onlyDecision(t, store); d.Outcome != headquarter.OutcomeInProgress || d.Term != fa.Revision {
		t.Fatalf("while scaling: %+v, want in progress in term %d", d, fa.Revision)
	}

	a.stop() // a's term ends; b is elected and runs the headquarter loop
	b := runLeader(t, srv, "b", nil)
	loop, err := headquarter.NewLoop(headquarter.LoopConfig{
		Observer: emptyObserver{}, Scaler: orchestratorScaler{orch: orch, defaultEnv: "dev"}, Policies: store,
		Decisions: b.leader.FencedDecisions(store), Fence: b.leader.Fence, Interval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.lead <- loop.Run
	deadline := time.Now().Add(20 * time.Second)
	for d := onlyDecision(t, store); d.Outcome != headquarter.OutcomeInterrupted; d = onlyDecision(t, store) {
		if time.Now().After(deadline) {
			t.Fatalf("decision %+v, want interrupted by the next leader", d)
		}
		time.Sleep(50 * time.Millisecond)
	}

	close(orch.release)
	<-done
	if d := onlyDecision(t, store); d.Outcome != headquarter.OutcomeInterrupted || d.Error != headquarter.InterruptedReason {
		t.Fatalf("after the old leader's scale returned: %+v, want it still interrupted", d)
	}
}

type emptyObserver struct{}

func (emptyObserver) Observe(context.Context) (map[string]headquarter.Input, error) {
	return map[string]headquarter.Input{}, nil
}

type testLeader struct {
	leader *headquarter.Leader
	lead   chan func(context.Context) error
	stop   func()
}

// runLeader campaigns with its own etcd client; lead runs while it leads,
// or the first function sent on the returned lead channel when nil.
func runLeader(t *testing.T, srv *etcdtest.Server, id string, lead func(context.Context) error) *testLeader {
	t.Helper()
	l, err := headquarter.NewLeader(headquarter.LeaderConfig{Client: srv.Client(t), ID: id, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	tl := &testLeader{leader: l, lead: make(chan func(context.Context) error, 1)}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		l.Run(ctx, func(ctx context.Context) error {
			f := lead
			if f == nil {
				select {
				case f = <-tl.lead:
				case <-ctx.Done():
					return nil
				}
			}
			return f(ctx)
		})
	}()
	var once sync.Once
	tl.stop = func() { once.Do(func() { cancel(); <-ended }) }
	t.Cleanup(tl.stop)
	return tl
}

func waitFence(t *testing.T, l *headquarter.Leader) headquarter.Fence {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := l.Fence(); err == nil {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatal("not elected within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
