package headquarter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeObserver reports every service with fresh samples at the current
// (bubble) time. Total QPS stays put when the instance count changes, so
// per-instance load falls as the service scales.
type fakeObserver struct {
	mu  sync.Mutex
	qps map[string]float64 // total QPS
	n   map[string]int
	err error
}

func (o *fakeObserver) set(svc string, n int, qps float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[svc], o.qps[svc] = n, qps*float64(n)
}

func (o *fakeObserver) Observe(ctx context.Context) (map[string]Input, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	now := time.Now()
	out := map[string]Input{}
	for svc, n := range o.n {
		q := o.qps[svc] / float64(n)
		out[svc] = Input{Service: svc, Instances: n, QPS: Value(o.qps[svc], now),
			CPU: Value(min(1, q/150), now), Memory: Value(0.5, now)}
	}
	return out, nil
}

// fakeScaler answers each service with a scripted outcome; a service in
// block waits until its channel is closed.
type fakeScaler struct {
	mu      sync.Mutex
	outcome map[string]Outcome
	block   map[string]chan struct{}
	calls   []ScaleRequest
	obs     *fakeObserver
	// during, if set, is called at the start of each Scale.
	during func(ScaleRequest)
}

func (s *fakeScaler) Scale(ctx context.Context, req ScaleRequest) (Outcome, error) {
	s.mu.Lock()
	s.calls = append(s.calls, req)
	out, ok := s.outcome[req.Service]
	block := s.block[req.Service]
	during := s.during
	s.mu.Unlock()
	if during != nil {
		during(req)
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return OutcomeFailed, ctx.Err()
		}
	}
	if !ok {
		out = OutcomeDone
	}
	if out == OutcomeDone {
		s.obs.mu.Lock()
		s.obs.n[req.Service] = req.Instances
		s.obs.mu.Unlock()
	}
	if out == OutcomeFailed {
		return out, errors.New("driver failed")
	}
	return out, nil
}

func (s *fakeScaler) callsFor(svc string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Service == svc {
			n++
		}
	}
	return n
}

type loopRig struct {
	obs     *fakeObserver
	scaler  *fakeScaler
	store   *MemoryStore
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	reports chan TickReport
}

func startLoop(t *testing.T, services ...string) *loopRig {
	t.Helper()
	return startLoopWith(t, nil, services...)
}

// startLoopWith starts a loop whose config configure may change.
func startLoopWith(t *testing.T, configure func(r *loopRig, c *LoopConfig), services ...string) *loopRig {
	t.Helper()
	r := &loopRig{
		obs:     &fakeObserver{qps: map[string]float64{}, n: map[string]int{}},
		store:   NewMemoryStore(),
		reg:     prometheus.NewRegistry(),
		done:    make(chan error, 1),
		reports: make(chan TickReport, 100),
	}
	r.scaler = &fakeScaler{outcome: map[string]Outcome{}, block: map[string]chan struct{}{}, obs: r.obs}
	for _, svc := range services {
		p := testPolicy()
		p.Service = svc
		if err := r.store.PutPolicy(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		r.obs.set(svc, 2, 50)
	}
	cfg := LoopConfig{Observer: r.obs, Scaler: r.scaler, Policies: r.store, Decisions: r.store,
		Registerer: r.reg, OnTick: func(rep TickReport) { r.reports <- rep }}
	if configure != nil {
		configure(r, &cfg)
	}
	loop, err := NewLoop(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	go func() { r.done <- loop.Run(ctx) }()
	return r
}

// next waits for the next tick and for everything it started to settle.
func (r *loopRig) next(t *testing.T) TickReport {
	t.Helper()
	time.Sleep(DefaultInterval)
	synctest.Wait()
	var rep TickReport
	for {
		select {
		case rep = <-r.reports:
			continue
		default:
		}
		return rep
	}
}

func (r *loopRig) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (r *loopRig) decisions(t *testing.T, svc string) []Decision {
	t.Helper()
	ds, err := r.store.Decisions(context.Background(), DecisionQuery{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestLoopSlowScaleDelaysNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startLoop(t, "slow", "fast")
		release := make(chan struct{})
		r.scaler.block["slow"] = release
		synctest.Wait()
		r.obs.set("slow", 2, 1000)
		r.obs.set("fast", 2, 1000)

		r.next(t)
		if r.scaler.callsFor("fast") != 1 || r.scaler.callsFor("slow") != 1 {
			t.Fatalf("calls after the spike: fast %d slow %d", r.scaler.callsFor("fast"), r.scaler.callsFor("slow"))
		}
		if ds := r.decisions(t, "fast"); len(ds) != 1 || ds[0].Outcome != OutcomeDone || ds[0].To != 20 {
			t.Errorf("fast decisions: %+v", ds)
		}
		r.next(t)
		ds := r.decisions(t, "slow")
		if len(ds) != 2 || ds[0].Guard != GuardBusy || ds[1].Outcome != OutcomeInProgress {
			t.Fatalf("slow in flight: decisions %+v, want one held as busy and the scale in progress", ds)
		}
		close(release)
		synctest.Wait()
		ds = r.decisions(t, "slow")
		if len(ds) != 2 || ds[1].Outcome != OutcomeDone || !ds[1].Finished.After(ds[1].Time) {
			t.Errorf("slow after release: %+v", ds)
		}
		r.next(t) // scaled and in cooldown: nothing to say
		if n := len(r.decisions(t, "slow")); n != 2 {
			t.Errorf("%d slow decisions after the release, want 2", n)
		}
		r.stop(t)
		if got := gathered(t, r.reg, "kplane_headquarter_desired_instances"); got["slow"] != 20 || got["fast"] != 20 {
			t.Errorf("desired instances %v, want 20 each", got)
		}
	})
}

// gathered sums the values of a metric family by its service label.
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" {
					out[l.GetValue()] += v
				}
			}
		}
	}
	return out
}

func TestLoopOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		outcome Outcome
		// calls is how many Scale calls two ticks of a spike make.
		calls int
	}{
		{name: "done starts a cooldown", outcome: OutcomeDone, calls: 1},
		{name: "no-op starts no cooldown", outcome: OutcomeNoOp, calls: 2},
		{name: "busy is retried on the next tick", outcome: OutcomeBusy, calls: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := startLoop(t, "inventory")
				r.scaler.outcome["inventory"] = c.outcome
				synctest.Wait()
				r.obs.set("inventory", 2, 1000)
				r.next(t)
				r.next(t)
				if got := r.scaler.callsFor("inventory"); got != c.calls {
					t.Errorf("%d Scale calls, want %d", got, c.calls)
				}
				if ds := r.decisions(t, "inventory"); ds[0].Outcome != c.outcome {
					t.Errorf("outcome %q, want %q", ds[0].Outcome, c.outcome)
				}
				r.stop(t)
			})
		})
	}
}

func TestLoopObserveFailureHoldsWithMissingData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startLoop(t, "inventory")
		synctest.Wait()
		r.obs.mu.Lock()
		r.obs.err = errors.New("prometheus: connection refused")
		r.obs.mu.Unlock()
		rep := r.next(t)
		if rep.ObserveError == nil || rep.Dispatched != 0 {
			t.Errorf("report %+v", rep)
		}
		ds := r.decisions(t, "inventory")
		if len(ds) != 1 || ds[0].Guard != GuardMissingData || !strings.Contains(ds[0].Reason, "connection refused") {
			t.Errorf("decisions %+v", ds)
		}
		if r.scaler.callsFor("inventory") != 0 {
			t.Errorf("scaled without data")
		}
		r.stop(t)
		if got := gathered(t, r.reg, "kplane_headquarter_decisions_total"); got["inventory"] != 1 {
			t.Errorf("decisions_total %v, want 1 for inventory", got)
		}
	})
}

func TestLoopStopCancelsScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startLoop(t, "inventory")
		r.scaler.block["inventory"] = make(chan struct{}) // never released
		synctest.Wait()
		r.obs.set("inventory", 2, 1000)
		r.next(t)
		r.stop(t) // returns only once the Scale saw its context end
		ds := r.decisions(t, "inventory")
		if len(ds) != 1 || ds[0].Outcome != OutcomeFailed || !strings.Contains(ds[0].Error, "context canceled") {
			t.Errorf("decisions %+v", ds)
		}
	})
}

func TestLoopStoresIntentBeforeScaling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startLoopWith(t, func(_ *loopRig, c *LoopConfig) {
			c.Fence = func() (Fence, error) { return Fence{Key: "/kplane/headquarter/leader/1", Revision: 9}, nil }
		}, "inventory")
		var during []Decision
		r.scaler.during = func(ScaleRequest) { during = r.decisions(t, "inventory") }
		synctest.Wait()
		r.obs.set("inventory", 2, 1000)
		r.next(t)

		if len(during) != 1 {
			t.Fatalf("while scaling the store held %+v, want the decision", during)
		}
		intent := during[0]
		if intent.Outcome != OutcomeInProgress || intent.ID == 0 || intent.Term != 9 || intent.Action != Up || intent.To != 20 ||
			intent.Reason == "" || len(intent.Votes) == 0 || !intent.Finished.IsZero() {
			t.Errorf("intent stored before Scale: %+v, want up to 20, in progress, term 9, explained", intent)
		}
		ds := r.decisions(t, "inventory")
		if len(ds) != 1 || ds[0].ID != intent.ID || ds[0].Outcome != OutcomeDone || ds[0].Reason != intent.Reason ||
			ds[0].Finished.Before(intent.Time) || ds[0].Term != 9 {
			t.Errorf("after Scale: %+v, want the same decision done", ds)
		}
		r.stop(t)
	})
}

func TestLoopInterruptsEarlierTermsOnTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		// The previous leader (term 4) was killed while scaling 2 → 5.
		left, err := store.Start(t.Context(), Decision{Time: time.Now().Add(-20 * time.Second), Service: "inventory",
			Action: Up, Reason: "qps 200/instance above 40", From: 2, To: 5, Term: 4})
		if err != nil {
			t.Fatal(err)
		}
		takeover := time.Now()
		r := startLoopWith(t, func(r *loopRig, c *LoopConfig) {
			r.store = store
			c.Policies, c.Decisions = store, store
			c.Fence = func() (Fence, error) { return Fence{Key: "/kplane/headquarter/leader/2", Revision: 11}, nil }
		})
		p := testPolicy()
		if err := store.PutPolicy(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		// The new leader observes 3 registered instances (the old one's
		// action started one) and moderate load: nothing to do.
		r.obs.set("inventory", 3, 50)
		synctest.Wait()
		ds := r.decisions(t, "inventory")
		if len(ds) != 1 || ds[0].ID != left.ID || ds[0].Outcome != OutcomeInterrupted || ds[0].Error != InterruptedReason ||
			!ds[0].Finished.Equal(takeover) || ds[0].Reason != left.Reason || ds[0].Term != 4 {
			t.Fatalf("after takeover: %+v, want the earlier term's action interrupted at %v", ds, takeover)
		}
		if got := gathered(t, r.reg, "kplane_headquarter_scale_outcomes_total"); got["inventory"] != 1 {
			t.Errorf("scale outcomes %v, want the interrupted one counted", got)
		}
		// Then its own observation decides: a spike at 3 instances.
		r.obs.set("inventory", 3, 1000)
		r.next(t)
		ds = r.decisions(t, "inventory")
		if len(ds) != 2 || ds[0].From != 3 || ds[0].Outcome != OutcomeDone || ds[0].Term != 11 || ds[1].Outcome != OutcomeInterrupted {
			t.Errorf("after the spike: %+v", ds)
		}
		r.stop(t)
	})
}

// refusingStore refuses writes as a fenced store does once leadership is
// lost.
type refusingStore struct {
	*MemoryStore
	mu      sync.Mutex
	refuse  bool
	refused int
}

func (s *refusingStore) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		s.refused++
		return ErrNotLeader
	}
	return nil
}

func (s *refusingStore) Start(ctx context.Context, d Decision) (Decision, error) {
	if err := s.check(); err != nil {
		return Decision{}, err
	}
	return s.MemoryStore.Start(ctx, d)
}

func (s *refusingStore) Finish(ctx context.Context, d Decision) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.MemoryStore.Finish(ctx, d)
}

func TestLoopDoesNotActWithoutIntent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var store *refusingStore
		r := startLoopWith(t, func(r *loopRig, c *LoopConfig) {
			store = &refusingStore{MemoryStore: r.store}
			c.Decisions = store
		}, "inventory")
		synctest.Wait()
		store.mu.Lock()
		store.refuse = true
		store.mu.Unlock()
		r.obs.set("inventory", 2, 1000)
		rep := r.next(t)
		if rep.Dispatched != 1 || r.scaler.callsFor("inventory") != 0 {
			t.Errorf("dispatched %d, %d Scale calls: want the decision refused before acting", rep.Dispatched, r.scaler.callsFor("inventory"))
		}
		// Leadership lost while scaling: the outcome is refused too, and
		// the decision stays in progress for the next leader to interrupt.
		store.mu.Lock()
		store.refuse = false
		store.mu.Unlock()
		r.scaler.mu.Lock()
		r.scaler.during = func(ScaleRequest) {
			store.mu.Lock()
			store.refuse = true
			store.mu.Unlock()
		}
		r.scaler.mu.Unlock()
		r.next(t)
		if r.scaler.callsFor("inventory") != 1 {
			t.Fatalf("%d Scale calls, want 1", r.scaler.callsFor("inventory"))
		}
		ds := r.decisions(t, "inventory")
		if len(ds) != 1 || ds[0].Outcome != OutcomeInProgress {
			t.Errorf("decisions %+v, want one left in progress", ds)
		}
		r.stop(t)
	})
}
