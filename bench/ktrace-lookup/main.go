// Command ktrace-lookup measures lookup by trace ID in the SQLite span
// store (ktrace/sqlite) with many spans stored: p50/p99 idle and during
// full-rate ingest, and freshness (how soon an acknowledged span can be
// found by ID). Results go in docs/benchmarks.md.
//
//	go run ./bench/ktrace-lookup [-spans 1000000] [-lookups 5000] [-ingest 20s]
//	go run ./bench/ktrace-lookup -spans 10000000   # the size; see docs for the time it takes
//
// It writes only to a temp dir (or -dir), touches no network, and is
// bounded by -spans and -ingest. It exits non-zero when a goal is missed:
// p99 ≤ 5 ms idle, p99 during ingest ≤ 2× idle, freshness ≤ 1 s.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/sqlite"
)

func main() {
	spans := flag.Int("spans", 1_000_000, "spans to load before measuring (the issue's goal is 10000000)")
	lookups := flag.Int("lookups", 5000, "lookups per phase")
	ingestFor := flag.Duration("ingest", 20*time.Second, "how long the ingest phase writes at full rate")
	dir := flag.String("dir", "", "directory for traces.db (default: a temp dir, removed at the end)")
	cacheMiB := flag.Int("cache", 256, "writer page cache, MiB")
	pageSize := flag.Int("pagesize", 0, "page size of a new traces.db (0: the store's default)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the ingest phase here")
	flag.StringVar(&traceFile, "trace", "", "write a runtime trace of the ingest phase's lookups here")
	flag.Parse()
	if err := run(*spans, *lookups, *ingestFor, *dir, *cacheMiB, *pageSize); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ktrace-lookup:", err)
		os.Exit(1)
	}
}

var cpuProfile, traceFile string

var services = []string{"gateway", "checkpoint", "inventory", "orders", "payments", "auth", "notify", "search"}

// gen produces realistic traces: 10–20 spans, a tree across services,
// HTTP and DB tags, an event, resource attributes.
type gen struct {
	rng *rand.Rand
	seq uint64
}

func (g *gen) trace(start time.Time) []ktrace.Span {
	g.seq++
	var tid ktrace.TraceID
	binary.BigEndian.PutUint64(tid[:8], g.rng.Uint64()|1<<63)
	binary.BigEndian.PutUint64(tid[8:], g.seq)
	n := 10 + g.rng.IntN(11)
	out := make([]ktrace.Span, n)
	for i := range out {
		svc := services[(i*3+int(g.seq))%len(services)]
		if i == 0 {
			svc = "gateway"
		}
		sp := ktrace.Span{
			TraceID: tid, SpanID: ktrace.SpanID{0: 0x5a, 6: byte(i >> 8), 7: byte(i + 1)},
			Service: svc, Name: fmt.Sprintf("%s /api/v1/%s/%d", []string{"GET", "POST"}[i%2], svc, i%6),
			Kind:  ktrace.KindServer,
			Start: start.Add(time.Duration(i) * 300 * time.Microsecond), Duration: time.Duration(1+g.rng.IntN(50)) * time.Millisecond,
			Tags: map[string]string{
				"http.method": "GET", "http.route": "/api/v1/tickets/{id}", "http.status_code": "200",
				"net.peer.ip": "10.0.3.17", "db.system": "mysql", "ticket.id": fmt.Sprint(g.rng.IntN(1e6)),
			},
			Annotations: []ktrace.Annotation{{Time: start, Value: "cache miss"}},
			Process:     map[string]string{"host.name": "node-" + fmt.Sprint(i%7), "service.version": "1.8.2", "telemetry.sdk.name": "opentelemetry"},
		}
		if i > 0 {
			sp.ParentSpanID = ktrace.SpanID{0: 0x5a, 7: byte(i/2 + 1)}
		}
		out[i] = sp
	}
	return out
}

func run(nSpans, nLookups int, ingestFor time.Duration, dir string, cacheMiB, pageSize int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	if dir == "" {
		d, err := os.MkdirTemp("", "kplane-bench-ktrace-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "traces.db"), CacheMiB: cacheMiB, PageSize: pageSize})
	if err != nil {
		return err
	}
	defer store.Close()

	// Load: spans spread over the last 24 h in batches of ~10k spans,
	// through WriteSpans itself (dedup, edges and all).
	g := &gen{rng: rand.New(rand.NewPCG(1, 2))}
	var ids []ktrace.TraceID
	now := time.Now()
	loadStart := time.Now()
	loaded := 0
	for loaded < nSpans {
		var batch []ktrace.Span
		for len(batch) < 10_000 && loaded+len(batch) < nSpans {
			age := time.Duration(float64(24*time.Hour) * float64(loaded+len(batch)) / float64(nSpans))
			tr := g.trace(now.Add(-24*time.Hour + age))
			ids = append(ids, tr[0].TraceID)
			batch = append(batch, tr...)
		}
		if err := store.WriteSpans(ctx, batch); err != nil {
			return err
		}
		loaded += len(batch)
		if loaded%500_000 < len(batch) {
			fmt.Fprintf(os.Stderr, "loaded %d spans in %s\n", loaded, time.Since(loadStart).Round(time.Second))
		}
	}
	load := time.Since(loadStart)
	info, _ := os.Stat(filepath.Join(dir, "traces.db"))
	fmt.Printf("load: %d spans (%d traces) in %s = %.0f spans/s, traces.db %d MiB\n",
		loaded, len(ids), load.Round(time.Millisecond), float64(loaded)/load.Seconds(), info.Size()>>20)

	lookup := func(rng *rand.Rand) (time.Duration, error) {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		tr, err := store.Trace(ctx, id)
		d := time.Since(t0)
		if err != nil {
			return d, err
		}
		if tr.Status != ktrace.Found || len(tr.Spans) < 10 {
			return d, fmt.Errorf("trace %s: %s with %d spans", id, tr.Status, len(tr.Spans))
		}
		return d, nil
	}

	// Idle.
	rng := rand.New(rand.NewPCG(3, 4))
	idle := make([]time.Duration, 0, nLookups)
	for range nLookups {
		d, err := lookup(rng)
		if err != nil {
			return err
		}
		idle = append(idle, d)
	}
	p50i, p99i := pct(idle, 50), pct(idle, 99)
	fmt.Printf("idle lookup: n=%d p50=%s p99=%s max=%s\n", len(idle), p50i, p99i, pct(idle, 100))

	// During full-rate ingest: one writer writes new traces as fast as the
	// store takes them (batches of ~1000 spans, as the ingest pipeline
	// sends); a reader looks up random loaded traces; a third goroutine
	// polls each batch's first trace from the moment its write was
	// acknowledged.
	ictx, stop := context.WithTimeout(ctx, ingestFor)
	defer stop()
	type acked struct {
		id ktrace.TraceID
		at time.Time
	}
	fresh := make(chan acked, 1)
	var wg sync.WaitGroup
	var written int
	var werr, ferr error
	var freshness []time.Duration
	ingestStart := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(fresh)
		wg := &gen{rng: rand.New(rand.NewPCG(5, 6)), seq: 1 << 40}
		for ictx.Err() == nil {
			var batch []ktrace.Span
			for len(batch) < 1000 {
				batch = append(batch, wg.trace(time.Now())...)
			}
			// Without cancellation, as ktrace.Ingester writes: a
			// cancellable context costs each statement a watcher
			// goroutine, which competes with the lookups for the CPU.
			if err := store.WriteSpans(context.WithoutCancel(ctx), batch); err != nil {
				werr = err
				return
			}
			written += len(batch)
			select {
			case fresh <- acked{batch[0].TraceID, time.Now()}:
			default: // the poller is busy with an earlier batch
			}
		}
	}()
	go func() {
		defer wg.Done()
		for a := range fresh {
			for {
				tr, err := store.Trace(ctx, a.id)
				if err != nil {
					ferr = err
					return
				}
				if tr.Status == ktrace.Found {
					freshness = append(freshness, time.Since(a.at))
					break
				}
				if time.Since(a.at) > 10*time.Second {
					ferr = fmt.Errorf("trace %s not findable 10 s after its write was acknowledged", a.id)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	stopProfiles, err := startProfiles()
	if err != nil {
		return err
	}
	busy := make([]time.Duration, 0, nLookups)
	rng = rand.New(rand.NewPCG(7, 8))
	for len(busy) < nLookups && ictx.Err() == nil {
		d, err := lookup(rng)
		if err != nil {
			return err
		}
		busy = append(busy, d)
	}
	stopProfiles()
	<-ictx.Done()
	wg.Wait()
	elapsed := time.Since(ingestStart)
	if werr != nil {
		return werr
	}
	if ferr != nil {
		return ferr
	}
	p50b, p99b := pct(busy, 50), pct(busy, 99)
	fmt.Printf("ingest: %d spans in %s = %.0f spans/s\n", written, elapsed.Round(time.Millisecond), float64(written)/elapsed.Seconds())
	fmt.Printf("lookup during ingest: n=%d p50=%s p99=%s max=%s\n", len(busy), p50b, p99b, pct(busy, 100))
	fmt.Printf("freshness (ack → found by ID): n=%d p50=%s p99=%s max=%s\n", len(freshness), pct(freshness, 50), pct(freshness, 99), pct(freshness, 100))

	var missed []string
	if p99i > 5*time.Millisecond {
		missed = append(missed, fmt.Sprintf("idle p99 %s > 5ms", p99i))
	}
	if p99b > 2*p99i {
		missed = append(missed, fmt.Sprintf("p99 during ingest %s > 2 × idle %s", p99b, p99i))
	}
	if len(freshness) == 0 || pct(freshness, 100) > time.Second {
		missed = append(missed, "freshness above 1 s (or not measured)")
	}
	if len(missed) > 0 {
		return fmt.Errorf("goals missed: %v", missed)
	}
	fmt.Println("all goals met")
	return nil
}

// startProfiles starts the -cpuprofile and -trace recordings; the
// returned function stops them.
func startProfiles() (func(), error) {
	var stops []func()
	stop := func() {
		for _, f := range stops {
			f()
		}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			stop()
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return stop, nil
}

// pct is the p-th percentile (nearest rank); 100 is the maximum.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s), i)-1)].Round(time.Microsecond)
}
