// Command headquarter measures the autoscaler loop's lag: how long after a
// tick is due every one of 10,000 services has been evaluated and its scale
// dispatched. The goal is p99 ≤ 50 ms. Results go in docs/benchmarks.md.
//
//	go run ./bench/headquarter [-services 10000] [-ticks 60] [-interval 1s] [-store memory|sqlite]
//
// It runs the real headquarter.Loop with an in-process observer and scaler:
// every tick a rotating 1% of services is in a tenfold spike, 1% have no
// metrics, and the rest are steady. The scaler takes -scale-latency per
// call, as a driver waiting for registration would. It writes only to a
// temp dir (the SQLite store) and is bounded by ticks × interval.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/sqldb"
)

func main() {
	services := flag.Int("services", 10_000, "services with a policy")
	ticks := flag.Int("ticks", 60, "ticks to measure (after one warm-up tick)")
	interval := flag.Duration("interval", time.Second, "loop interval")
	storeKind := flag.String("store", "memory", "policy and decision store: memory or sqlite")
	latency := flag.Duration("scale-latency", 2*time.Second, "time each Scale call takes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/headquarter:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench/headquarter:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*services, *ticks, *interval, *storeKind, *latency); err != nil {
		fmt.Fprintln(os.Stderr, "bench/headquarter:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type store interface {
	headquarter.PolicyStore
	headquarter.DecisionStore
}

func run(services, ticks int, interval time.Duration, storeKind string, latency time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var st store
	switch storeKind {
	case "memory":
		st = headquarter.NewMemoryStore()
	case "sqlite":
		dir, err := os.MkdirTemp("", "bench-hq")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		db, err := sqldb.Open(ctx, filepath.Join(dir, "kplane.db"), nil)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := sqldb.Migrate(ctx, db); err != nil {
			return err
		}
		st = headquarter.NewSQLStore(db, nil)
	default:
		return fmt.Errorf("-store %q: want memory or sqlite", storeKind)
	}
	names := make([]string, services)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%05d", i)
		if err := st.PutPolicy(ctx, headquarter.Policy{Service: names[i], Min: 2, Max: 40}); err != nil {
			return err
		}
	}
	obs := &observer{names: names, counts: make([]atomic.Int64, services)}
	for i := range obs.counts {
		obs.counts[i].Store(2)
	}
	sc := &scaler{obs: obs, latency: latency}

	var mu sync.Mutex
	var lags, works []time.Duration
	var dispatched, recorded, evaluated int
	done := make(chan struct{})
	n := 0
	reg := prometheus.NewRegistry()
	pl := &timedPolicies{next: st}
	loop, err := headquarter.NewLoop(headquarter.LoopConfig{
		Observer: obs, Scaler: sc, Policies: pl, Decisions: st, Interval: interval, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnTick: func(r headquarter.TickReport) {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n == 1 {
				return // warm-up: first allocation of every map
			}
			lags = append(lags, r.Lag)
			works = append(works, r.Work)
			dispatched += r.Dispatched
			recorded += r.Recorded
			evaluated += r.Evaluated
			if len(lags) == ticks {
				close(done)
			}
		},
	})
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- loop.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(time.Duration(ticks+5)*interval + time.Minute):
		return fmt.Errorf("timed out after %d ticks", len(lags))
	}
	// Counted before stopping: stopping cancels the scales of the last
	// ticks, whose intents are then not stored (and not acted on).
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	var nDropped float64
	for _, mf := range mfs {
		if mf.GetName() == "kplane_headquarter_decisions_dropped_total" {
			nDropped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	slices.Sort(works)
	q := func(p float64) time.Duration { return lags[int(math.Ceil(p*float64(len(lags))))-1] }
	w := func(p float64) time.Duration { return works[int(math.Ceil(p*float64(len(works))))-1] }
	fmt.Printf("services=%d ticks=%d interval=%s store=%s scale-latency=%s\n", services, len(lags), interval, storeKind, latency)
	fmt.Printf("evaluated %d, scales dispatched %d, held decisions recorded %d\n", evaluated, dispatched, recorded)
	fmt.Printf("loop lag p50 %s  p90 %s  p99 %s  max %s\n", q(.5), q(.9), q(.99), lags[len(lags)-1])
	fmt.Printf("tick work p50 %s  p90 %s  p99 %s  max %s\n", w(.5), w(.9), w(.99), works[len(works)-1])
	fmt.Printf("policy list p50 %s  p90 %s  max %s\n", pl.pct(.5), pl.pct(.9), pl.pct(1))
	fmt.Printf("decisions dropped (not stored) %.0f\n", nDropped)
	var missed []string
	if p99 := q(.99); p99 > 50*time.Millisecond {
		missed = append(missed, fmt.Sprintf("p99 loop lag %s > 50ms", p99))
	}
	if nDropped > 0 {
		missed = append(missed, fmt.Sprintf("%.0f decisions dropped", nDropped))
	}
	if len(missed) > 0 {
		return fmt.Errorf("goals missed: %v", missed)
	}
	fmt.Println("goal met")
	return nil
}

// observer reports every service; the tick number picks which 1% spikes
// and which 1% have lost their metrics.
type observer struct {
	names  []string
	counts []atomic.Int64
	tick   atomic.Int64
}

func (o *observer) Observe(ctx context.Context) (map[string]headquarter.Input, error) {
	t := int(o.tick.Add(1))
	now := time.Now()
	out := make(map[string]headquarter.Input, len(o.names))
	hundredth := max(len(o.names)/100, 1)
	for i, name := range o.names {
		n := int(o.counts[i].Load())
		in := headquarter.Input{Service: name, Instances: n}
		switch {
		case (i+t*hundredth)%len(o.names) < hundredth: // spiking: tenfold
			in.QPS = headquarter.Value(1000*2, now)
			in.CPU = headquarter.Value(0.95, now)
			in.Memory = headquarter.Value(0.6, now)
		case (i+t*hundredth+hundredth)%len(o.names) < hundredth: // metrics lost
			in.QPS = headquarter.MissingSample("query failed")
			in.CPU = headquarter.MissingSample("query failed")
			in.Memory = headquarter.MissingSample("query failed")
		default:
			in.QPS = headquarter.Value(60*float64(n), now)
			in.CPU = headquarter.Value(0.5, now)
			in.Memory = headquarter.Value(0.6, now)
		}
		out[name] = in
	}
	return out, nil
}

type scaler struct {
	obs     *observer
	latency time.Duration
}

func (s *scaler) Scale(ctx context.Context, req headquarter.ScaleRequest) (headquarter.Outcome, error) {
	select {
	case <-time.After(s.latency):
	case <-ctx.Done():
		return headquarter.OutcomeFailed, ctx.Err()
	}
	var i int
	fmt.Sscanf(req.Service, "svc-%d", &i)
	s.obs.counts[i].Store(int64(req.Instances))
	return headquarter.OutcomeDone, nil
}

// timedPolicies times the Loop's policy list, which waits for the store's
// connection behind decision writes.
type timedPolicies struct {
	next  headquarter.PolicyLister
	mu    sync.Mutex
	calls int
	ds    []time.Duration
}

func (t *timedPolicies) Policies(ctx context.Context) ([]headquarter.Policy, error) {
	start := time.Now()
	ps, err := t.next.Policies(ctx)
	t.mu.Lock()
	if t.calls++; t.calls > 2 { // after the warm-up ticks' first decode
		t.ds = append(t.ds, time.Since(start))
	}
	t.mu.Unlock()
	return ps, err
}

func (t *timedPolicies) pct(p float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := slices.Clone(t.ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[int(math.Ceil(p*float64(len(s))))-1]
}
