package scout_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fakeClock moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // signalled whenever After is called
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	}
	c.waiting <- struct{}{}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// staticRegistry is a fixed set of services.
type staticRegistry []registry.Service

func (r staticRegistry) Services() []registry.Service { return r }

func services(counts map[string]int) staticRegistry {
	var out staticRegistry
	for name, n := range counts {
		svc := registry.Service{Name: name}
		for i := range n {
			svc.Instances = append(svc.Instances, registry.Instance{ID: name + string(rune('a'+i)), Name: name, Addr: "127.0.0.1:1"})
		}
		out = append(out, svc)
	}
	return out
}

// fixedSource returns the same result every tick, timed at the tick.
type fixedSource struct {
	values map[string]map[scout.Metric]float64
	err    error
	age    time.Duration
	calls  int
}

func (f *fixedSource) Collect(ctx context.Context, _ []registry.Service, now time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]map[scout.Metric]scout.Sample{}
	for svc, ms := range f.values {
		out[svc] = map[scout.Metric]scout.Sample{}
		for m, v := range ms {
			out[svc][m] = scout.Value(v, now.Add(-f.age))
		}
	}
	return out, nil
}

func (f *fixedSource) String() string { return "fixed" }

func TestCollectMerge(t *testing.T) {
	reg := services(map[string]int{"inventory": 2, "checkpoint": 1})
	tests := []struct {
		name    string
		sources []scout.Source
		maxAge  time.Duration
		want    map[string]map[scout.Metric]string // value as %.4g, or "missing: <reason substring>"
	}{
		{
			name: "present values, absent metric missing",
			sources: []scout.Source{&fixedSource{values: map[string]map[scout.Metric]float64{
				"inventory":  {scout.QPS: 12.5, scout.CPU: 0.25},
				"checkpoint": {scout.QPS: 0, scout.CPU: 0.5, scout.Memory: 0.1},
				"stranger":   {scout.QPS: 99},
			}}},
			want: map[string]map[scout.Metric]string{
				"inventory":  {scout.QPS: "12.5", scout.CPU: "0.25", scout.Memory: "missing: no data from any source"},
				"checkpoint": {scout.QPS: "0", scout.CPU: "0.5", scout.Memory: "0.1"},
			},
		},
		{
			name:    "source error makes everything missing, never zero",
			sources: []scout.Source{&fixedSource{err: errors.New("connection refused")}},
			want: map[string]map[scout.Metric]string{
				"inventory":  {scout.QPS: "missing: fixed: connection refused", scout.CPU: "missing: connection refused", scout.Memory: "missing: connection refused"},
				"checkpoint": {scout.QPS: "missing: connection refused", scout.CPU: "missing: connection refused", scout.Memory: "missing: connection refused"},
			},
		},
		{
			name: "a second source fills what the first misses",
			sources: []scout.Source{
				&fixedSource{err: errors.New("down")},
				&fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 3}}},
			},
			want: map[string]map[scout.Metric]string{
				"inventory":  {scout.QPS: "3", scout.CPU: "missing: down"},
				"checkpoint": {scout.QPS: "missing: down"},
			},
		},
		{
			name: "first present sample wins",
			sources: []scout.Source{
				&fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 1}}},
				&fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 2, scout.CPU: 0.3}}},
			},
			want: map[string]map[scout.Metric]string{"inventory": {scout.QPS: "1", scout.CPU: "0.3"}},
		},
		{
			name:    "older than max age is missing",
			sources: []scout.Source{&fixedSource{age: 20 * time.Second, values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 7}}}},
			maxAge:  15 * time.Second,
			want:    map[string]map[scout.Metric]string{"inventory": {scout.QPS: "missing: stale: measured 20s ago, max age 15s"}},
		},
		{
			name:    "not a number is missing",
			sources: []scout.Source{&fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: math.NaN(), scout.CPU: math.Inf(1)}}}},
			want:    map[string]map[scout.Metric]string{"inventory": {scout.QPS: "missing: not a number", scout.CPU: "missing: not a number"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scout.New(scout.Config{Sources: tt.sources, Registry: reg, Clock: newFakeClock(t0), MaxAge: tt.maxAge})
			if err != nil {
				t.Fatal(err)
			}
			snap := s.Collect(t.Context())
			if len(snap.Services) != 2 {
				t.Fatalf("services = %v, want the 2 registered ones", keys(snap.Services))
			}
			if got := snap.Services["inventory"].Instances; got != 2 {
				t.Errorf("inventory instances = %d, want 2", got)
			}
			for svc, ss := range snap.Services {
				if len(ss.Metrics) != len(scout.Metrics) {
					t.Errorf("%s has %d metrics, want all %d", svc, len(ss.Metrics), len(scout.Metrics))
				}
			}
			for svc, ms := range tt.want {
				for m, want := range ms {
					got := snap.Services[svc].Metrics[m]
					if reason, ok := strings.CutPrefix(want, "missing: "); ok {
						if !got.Missing || !strings.Contains(got.Reason, reason) || got.Value != 0 {
							t.Errorf("%s %s = %+v, want missing with reason containing %q", svc, m, got, reason)
						}
						continue
					}
					if got.Missing || got.String() != want || got.Time.IsZero() {
						t.Errorf("%s %s = %+v, want %s", svc, m, got, want)
					}
				}
			}
			if !s.Latest().Time.Equal(t0) {
				t.Errorf("Latest().Time = %v, want %v", s.Latest().Time, t0)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNewRejectsUnusableConfig(t *testing.T) {
	reg := services(nil)
	for name, cfg := range map[string]scout.Config{
		"no sources":  {Registry: reg},
		"nil source":  {Registry: reg, Sources: []scout.Source{nil}},
		"no registry": {Sources: []scout.Source{&fixedSource{}}},
		"negative":    {Registry: reg, Sources: []scout.Source{&fixedSource{}}, Interval: -time.Second},
	} {
		if _, err := scout.New(cfg); !errors.Is(err, scout.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// Run ticks on its clock, publishes to subscribers, and stops quietly.
func TestRunTicksOnClockAndStopsQuietly(t *testing.T) {
	clock := newFakeClock(t0)
	src := &fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 4}}}
	var logs bytes.Buffer
	reg := prometheus.NewPedanticRegistry()
	s, err := scout.New(scout.Config{
		Sources: []scout.Source{src}, Registry: services(map[string]int{"inventory": 1}),
		Clock: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	snaps, cancelSub := s.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	for i := range 3 {
		snap := <-snaps
		if want := t0.Add(time.Duration(i) * 5 * time.Second); !snap.Time.Equal(want) {
			t.Fatalf("tick %d at %v, want %v", i, snap.Time, want)
		}
		<-clock.waiting // Run is waiting for the next tick
		clock.Advance(5 * time.Second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if src.calls < 3 {
		t.Errorf("source called %d times, want ≥ 3", src.calls)
	}
	if got := gathered(t, reg, "kplane_scout_ticks_total"); got < 3 {
		t.Errorf("ticks metric = %v, want ≥ 3", got)
	}
	if logs.Len() != 0 {
		t.Errorf("a clean run and stop logged:\n%s", logs.String())
	}
	if got := gathered(t, reg, "kplane_scout_missing_samples"); got != 2 {
		t.Errorf("missing samples gauges sum to %v, want 2 (CPU and memory; QPS is there)", got)
	}
}

// gathered sums every series of a metric.
func gathered(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}

// blockingSource answers only when its context ends, like a server that
// hangs.
type blockingSource struct{ started chan struct{} }

func (b blockingSource) Collect(ctx context.Context, _ []registry.Service, _ time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
	close(b.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// Stopping scout while a source hangs is not a source failure: nothing is
// logged and no all-missing snapshot is published.
func TestCancelDuringTickIsNotAFailure(t *testing.T) {
	var logs bytes.Buffer
	src := blockingSource{started: make(chan struct{})}
	s, err := scout.New(scout.Config{
		Sources: []scout.Source{src}, Registry: services(map[string]int{"inventory": 1}),
		Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-src.started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if logs.Len() != 0 {
		t.Errorf("own cancellation logged:\n%s", logs.String())
	}
	if got := s.Latest(); !got.Time.IsZero() || len(got.Services) != 0 {
		t.Errorf("Latest = %+v, want nothing published", got)
	}
}

// A source that hangs past the tick's deadline fails that tick: logged,
// and its metrics missing.
func TestHungSourceFailsTheTick(t *testing.T) {
	var logs bytes.Buffer
	src := blockingSource{started: make(chan struct{})}
	s, err := scout.New(scout.Config{
		Sources: []scout.Source{src}, Registry: services(map[string]int{"inventory": 1}),
		Interval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Collect(t.Context())
	q := snap.Services["inventory"].Metrics[scout.QPS]
	if !q.Missing || !strings.Contains(q.Reason, "deadline exceeded") {
		t.Errorf("QPS = %+v, want missing because of the deadline", q)
	}
	if !strings.Contains(logs.String(), "scout source failed") {
		t.Errorf("failure not logged: %q", logs.String())
	}
}

func TestHistoryKeepsTheWindow(t *testing.T) {
	clock := newFakeClock(t0)
	src := &fixedSource{values: map[string]map[scout.Metric]float64{"inventory": {scout.QPS: 1}}}
	reg := services(map[string]int{"inventory": 1})
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: reg, Clock: clock, HistoryWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // 150 s of ticks at 5 s
		src.values["inventory"][scout.QPS] = float64(i)
		s.Collect(t.Context())
		clock.Advance(5 * time.Second)
	}
	last := t0.Add(29 * 5 * time.Second)
	series := s.Series("inventory", scout.QPS, time.Time{})
	if len(series) != 13 { // last tick and the 12 before it, within one minute
		t.Fatalf("series has %d samples, want 13 (one minute at 5 s)", len(series))
	}
	if first := series[0]; first.Value != 17 || !first.Time.Equal(last.Add(-time.Minute)) {
		t.Errorf("oldest kept = %+v, want value 17 at %v", first, last.Add(-time.Minute))
	}
	recent := s.History("inventory", last.Add(-10*time.Second))
	if len(recent) != 3 || recent[2].Metrics[scout.QPS].Value != 29 || recent[2].Instances != 1 || !recent[2].Time.Equal(last) {
		t.Errorf("History since 10 s ago = %+v, want 3 ticks ending with QPS 29", recent)
	}
	if m := recent[0].Metrics[scout.CPU]; !m.Missing || m.Reason == "" {
		t.Errorf("history CPU = %+v, want missing with its reason", m)
	}
	if got := s.Series("nobody", scout.QPS, time.Time{}); got != nil {
		t.Errorf("unknown service series = %v, want nil", got)
	}
}

// A subscriber that does not read keeps only the newest snapshot and does
// not hold up the ticks.
func TestSlowSubscriberGetsNewest(t *testing.T) {
	clock := newFakeClock(t0)
	s, err := scout.New(scout.Config{Sources: []scout.Source{&fixedSource{}}, Registry: services(map[string]int{"a": 1}), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := s.Subscribe()
	for range 3 {
		s.Collect(t.Context())
		clock.Advance(time.Second)
	}
	if got := <-ch; !got.Time.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("subscriber got tick %v, want the newest %v", got.Time, t0.Add(2*time.Second))
	}
	cancel()
	s.Collect(t.Context())
	select {
	case got := <-ch:
		t.Errorf("received %v after unsubscribing", got.Time)
	default:
	}
}
