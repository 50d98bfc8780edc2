package headquarter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/internal/etcdtest"
)

// candidate runs one Leader whose lead function reports its term and
// blocks until the term ends.
type candidate struct {
	leader *Leader
	terms  chan Fence
	ended  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func campaign(t *testing.T, l *Leader) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &candidate{leader: l, terms: make(chan Fence, 4), ended: make(chan struct{}, 4), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		l.Run(ctx, func(ctx context.Context) error {
			f, err := l.Fence()
			if err != nil {
				t.Errorf("leading without a fence: %v", err)
			}
			c.terms <- f
			<-ctx.Done()
			c.ended <- struct{}{}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func newLeader(t *testing.T, cfg LeaderConfig) *Leader {
	t.Helper()
	l, err := NewLeader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func TestLeaderElection(t *testing.T) {
	srv := etcdtest.Start(t)
	a := campaign(t, newLeader(t, LeaderConfig{Client: srv.Client(t), ID: "a", TTL: time.Second}))
	fa := wait(t, a.terms, "a to lead")
	// b's client goes through its own proxy so that the test can cut it off.
	bp := srv.Proxy(t)
	b := campaign(t, newLeader(t, LeaderConfig{Client: bp.Client(t), ID: "b", TTL: time.Second}))

	select {
	case <-b.terms:
		t.Fatal("b leads while a does")
	case <-time.After(500 * time.Millisecond):
	}
	if id, err := b.leader.Current(t.Context()); err != nil || id != "a" {
		t.Errorf("current leader %q, %v; want a", id, err)
	}
	if err := a.leader.Check(t.Context(), fa); err != nil {
		t.Errorf("leader's own fence refused: %v", err)
	}

	// a resigns (its process stops): b takes over, and a's fence is dead.
	a.cancel()
	wait(t, a.ended, "a's term to end")
	fb := wait(t, b.terms, "b to lead after a resigned")
	if fb.Revision <= fa.Revision {
		t.Errorf("b's fence %d not after a's %d", fb.Revision, fa.Revision)
	}
	if err := b.leader.Check(t.Context(), fa); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed fence accepted: %v", err)
	}
	if a.leader.IsLeader() {
		t.Error("a still believes it leads")
	}
	scaler := &countingScaler{}
	if out, err := a.leader.Fenced(scaler).Scale(t.Context(), ScaleRequest{Service: "inventory", Instances: 3}); out != OutcomeFailed || !errors.Is(err, ErrNotLeader) || scaler.calls != 0 {
		t.Errorf("deposed leader scaled: %s, %v, %d calls", out, err, scaler.calls)
	}
	if out, err := b.leader.Fenced(scaler).Scale(t.Context(), ScaleRequest{Service: "inventory", Instances: 3}); out != OutcomeDone || err != nil || scaler.calls != 1 {
		t.Errorf("leader's fenced scale: %s, %v, %d calls", out, err, scaler.calls)
	}

	// b is cut off from etcd (a partition or a crash): its session expires,
	// it stops acting, and a third candidate takes over.
	c := campaign(t, newLeader(t, LeaderConfig{Client: srv.Client(t), ID: "c", TTL: time.Second}))
	bp.Cut()
	wait(t, b.ended, "b to stop acting once cut off")
	fc := wait(t, c.terms, "c to lead after b was cut off")
	if err := c.leader.Check(t.Context(), fb); !errors.Is(err, ErrNotLeader) {
		t.Errorf("partitioned leader's fence accepted: %v", err)
	}
	if err := c.leader.Check(t.Context(), fc); err != nil {
		t.Errorf("new leader's fence refused: %v", err)
	}
}

type countingScaler struct{ calls int }

func (s *countingScaler) Scale(context.Context, ScaleRequest) (Outcome, error) {
	s.calls++
	return OutcomeDone, nil
}

// TestLeaderLostMidAction: the leader's etcd session ends while its Loop
// is scaling. Its intent is on record; its later writes (the outcome, any
// decision) are refused although the process lives on; the next leader
// marks the action interrupted and acts on what it observes.
func TestLeaderLostMidAction(t *testing.T) {
	srv := etcdtest.Start(t)
	store := NewMemoryStore()
	if err := store.PutPolicy(t.Context(), testPolicy()); err != nil {
		t.Fatal(err)
	}
	obs := &fakeObserver{qps: map[string]float64{}, n: map[string]int{}}
	obs.set("inventory", 2, 1000)
	started := make(chan ScaleRequest, 4)
	scaler := &hangFirstScaler{obs: obs, started: started}
	run := func(id string) (*Leader, chan Fence) {
		l := newLeader(t, LeaderConfig{Client: srv.Client(t), ID: id, TTL: time.Second})
		loop, err := NewLoop(LoopConfig{Observer: obs, Scaler: l.Fenced(scaler), Policies: store,
			Decisions: l.FencedDecisions(store), Fence: l.Fence, Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		terms := make(chan Fence, 4)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Run(ctx, func(ctx context.Context) error {
				f, _ := l.Fence()
				terms <- f
				return loop.Run(ctx)
			})
		}()
		t.Cleanup(func() { cancel(); <-done })
		return l, terms
	}
	a, aTerms := run("a")
	fa := wait(t, aTerms, "a to lead")
	wait(t, started, "a's scale to start")
	ds, _ := store.Decisions(t.Context(), DecisionQuery{Service: "inventory"})
	if len(ds) == 0 || ds[0].Outcome != OutcomeInProgress || ds[0].Term != fa.Revision {
		t.Fatalf("while a scales: %+v, want its decision in progress in term %d", ds, fa.Revision)
	}
	intent := ds[0]

	b, bTerms := run("b")
	for { // b campaigns before a's session ends, so that b is next
		resp, err := srv.Client(t).Get(t.Context(), DefaultLeaderPrefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a's session ends (its lease revoked, as when etcd expires it): a
	// stops leading and its Scale's context ends.
	get, err := srv.Client(t).Get(t.Context(), fa.Key)
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("a's election key: %v, %v", get, err)
	}
	if _, err := srv.Client(t).Revoke(t.Context(), clientv3.LeaseID(get.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	fb := wait(t, bTerms, "b to lead")

	// a lives on, but every write it tries is refused and writes nothing.
	late := intent
	late.Outcome = OutcomeDone
	if err := a.FencedDecisions(store).Finish(t.Context(), late); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's outcome: %v, want ErrNotLeader", err)
	}
	if err := a.FencedDecisions(store).Record(t.Context(), Decision{Service: "inventory", Action: Up, Reason: "late"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's decision: %v, want ErrNotLeader", err)
	}
	if _, err := a.FencedDecisions(store).Start(t.Context(), Decision{Service: "inventory", Action: Up, Reason: "late"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's intent: %v, want ErrNotLeader", err)
	}
	if _, err := a.FencedDecisions(store).Interrupt(t.Context(), fa.Revision, time.Now()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's interrupt: %v, want ErrNotLeader", err)
	}

	// b marks a's action interrupted, then scales on its own observation.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err = store.Decisions(t.Context(), DecisionQuery{Service: "inventory"})
		if err != nil {
			t.Fatal(err)
		}
		var mine, old []Decision
		for _, d := range ds {
			switch d.Term {
			case fb.Revision:
				mine = append(mine, d)
			case fa.Revision:
				old = append(old, d)
			}
		}
		if len(old) == 1 && old[0].Outcome == OutcomeInterrupted && len(mine) > 0 && mine[len(mine)-1].Outcome == OutcomeDone {
			if old[0].ID != intent.ID || old[0].Error != InterruptedReason {
				t.Errorf("a's action: %+v", old[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decisions %+v: want a's action interrupted and b's scale done", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, d := range ds {
		if d.Reason == "late" {
			t.Errorf("a deposed leader's decision was stored: %+v", d)
		}
	}
	if err := b.Leading(t.Context()); err != nil {
		t.Errorf("b's fence: %v", err)
	}
}

// hangFirstScaler's first Scale hangs until its context ends, as a call
// does when its leader is cut off in the middle of it; later calls scale.
type hangFirstScaler struct {
	obs     *fakeObserver
	started chan ScaleRequest
	calls   atomic.Int32
}

func (s *hangFirstScaler) Scale(ctx context.Context, req ScaleRequest) (Outcome, error) {
	s.started <- req
	if s.calls.Add(1) == 1 {
		<-ctx.Done()
		return OutcomeFailed, ctx.Err()
	}
	s.obs.set(req.Service, req.Instances, 0)
	return OutcomeDone, nil
}
