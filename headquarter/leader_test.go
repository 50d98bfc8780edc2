package headquarter

import (
	"context"
	"errors"
	"testing"
	"time"

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
