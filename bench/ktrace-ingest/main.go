// Command ktrace-ingest measures span ingest end to end: OTLP/HTTP
// requests (protobuf or JSON) from concurrent senders on loopback, through
// kplane's real HTTP handler and ktrace.Ingester, into the SQLite span
// store. It reports spans/s and checks that every acknowledged span was
// stored. Results go in docs/benchmarks.md.
//
//	go run ./bench/ktrace-ingest [-format protobuf|json|both] [-duration 60s] [-senders 8] [-spans 500] [-pagesize 0]
//
// It is bounded (duration × formats, plus set-up and a count), writes only
// to a temp dir, and touches nothing but loopback.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/ktrace"
	ktracesqlite "github.com/kplane/kplane/ktrace/sqlite"
	"github.com/kplane/kplane/web"
)

// marker starts every template trace ID, so a sender can find the IDs in
// an encoded request and stamp its own counter into them.
var marker = [4]byte{0x6b, 0x74, 0x72, 0x63} // "ktrc"

const spansPerTrace = 10

func main() {
	format := flag.String("format", "both", "protobuf, json or both")
	duration := flag.Duration("duration", 60*time.Second, "how long each format is sent")
	senders := flag.Int("senders", 8, "concurrent senders (each waits for its answer, as an OTel SDK's exporter does)")
	spans := flag.Int("spans", 500, "spans per request (the OTel SDK's default batch is 512)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	pageSize := flag.Int("pagesize", 0, "page size of the new traces.db (0: the store's default)")
	flag.Parse()
	if *spans%spansPerTrace != 0 || *spans <= 0 {
		fmt.Fprintf(os.Stderr, "bench/ktrace-ingest: -spans must be a positive multiple of %d\n", spansPerTrace)
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	formats := []string{"protobuf", "json"}
	if *format != "both" {
		formats = []string{*format}
	}
	for _, f := range formats {
		if err := run(f, *duration, *senders, *spans, *pageSize); err != nil {
			fmt.Fprintln(os.Stderr, "bench/ktrace-ingest:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
	}
}

func run(format string, duration time.Duration, senders, spansPerReq, pageSize int) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ktrace-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	store, err := ktracesqlite.Open(ctx, ktracesqlite.Config{Path: filepath.Join(dir, "traces.db"), PageSize: pageSize})
	if err != nil {
		return err
	}
	defer store.Close()
	timed := &timedStore{Store: store}
	in, err := ktrace.NewIngester(ktrace.IngesterConfig{Store: timed})
	if err != nil {
		return err
	}
	ingCtx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	ingDone := make(chan error, 1)
	go func() { ingDone <- in.Run(ingCtx) }()

	// web.New needs an auth service; ingest itself is unauthenticated.
	db, err := sqldb.Open(ctx, filepath.Join(dir, "kplane.db"), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := sqldb.Migrate(ctx, db); err != nil {
		return err
	}
	authSvc, err := auth.New(db, auth.Config{BcryptCost: bcrypt.MinCost})
	if err != nil {
		return err
	}
	srv, err := web.New(web.Config{Auth: authSvc, Ingester: in, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler()}
	go httpSrv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/v1/traces"

	tmpl, contentType, offsets, err := template(format, spansPerReq)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: senders},
	}
	var (
		acked, requests, refused atomic.Int64
		counter                  atomic.Uint64
		wg                       sync.WaitGroup
		firstErr                 error
		errOnce                  sync.Once
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	written0, cpu0 := bytesWritten(), cpuTime()
	// A line every 10 s shows whether the rate is sustained as the store
	// grows.
	progressDone := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-progressDone:
				return
			case now := <-t.C:
				n := acked.Load()
				fmt.Fprintf(os.Stderr, "%-8s %3.0fs: %d spans acknowledged, %.0f spans/s in the last %s\n",
					format, now.Sub(start).Seconds(), n, float64(n-last)/now.Sub(lastAt).Seconds(), now.Sub(lastAt).Round(time.Second))
				last, lastAt = n, now
			}
		}
	}()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Clone(tmpl)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				stamp(body, format, offsets, counter.Add(1))
				status, err := post(ctx, client, url, contentType, body)
				switch {
				case err != nil:
					errOnce.Do(func() { firstErr = err })
					return
				case status == http.StatusOK:
					acked.Add(int64(spansPerReq))
					requests.Add(1)
				case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
					// Refused spans were never acknowledged; a real
					// exporter backs off, and so do we.
					refused.Add(int64(spansPerReq))
					time.Sleep(50 * time.Millisecond)
				default:
					errOnce.Do(func() { firstErr = fmt.Errorf("status %d", status) })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	written, cpu := bytesWritten()-written0, cpuTime()-cpu0
	_ = httpSrv.Shutdown(ctx)
	stopIngest()
	if err := <-ingDone; err != nil {
		return err
	}
	if firstErr != nil {
		return firstErr
	}

	stored, err := countSpans(ctx, filepath.Join(dir, "traces.db"))
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rate := float64(acked.Load()) / elapsed.Seconds()
	info, err := os.Stat(filepath.Join(dir, "traces.db"))
	if err != nil {
		return err
	}
	fmt.Printf("%-8s senders=%d spans/request=%d duration=%s requests=%d acknowledged=%d stored=%d refused(429/503)=%d  %.0f spans/s  (%.0f requests/s, %.1f MiB/request body, peak heap %.0f MiB, traces.db %d MiB, %.0f bytes written and %.1f µs of CPU per span)\n",
		format, senders, spansPerReq, elapsed.Round(time.Millisecond), requests.Load(), acked.Load(), stored, refused.Load(),
		rate, float64(requests.Load())/elapsed.Seconds(), float64(len(tmpl))/(1<<20), float64(ms.HeapSys)/(1<<20),
		info.Size()>>20, float64(written)/float64(max(1, acked.Load())), float64(cpu.Microseconds())/float64(max(1, acked.Load())))
	fmt.Printf("%-8s store: %s\n", format, timed.summary())
	if stored != acked.Load() {
		return fmt.Errorf("%s: %d spans acknowledged but %d stored", format, acked.Load(), stored)
	}
	return nil
}

func post(ctx context.Context, c *http.Client, url, contentType string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && len(b) > 2 {
		// Anything but an empty response is a partial success: spans
		// the benchmark counted as sent were rejected.
		return 0, fmt.Errorf("partial success: %s", b)
	}
	return resp.StatusCode, nil
}

// template encodes one request of n spans: n/10 traces of ten spans (a
// root and nine children), with realistic attributes and a resource. It
// returns where each trace ID sits in the encoding.
func template(format string, n int) (body []byte, contentType string, offsets []int, err error) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "checkpoint")
	ra.PutStr("service.version", "1.0.0")
	ra.PutStr("host.name", "gate-3")
	ra.PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("github.com/kplane/kplane/ktrace/sdk")
	now := time.Now()
	var ids [][16]byte
	for t := 0; t < n/spansPerTrace; t++ {
		var tid [16]byte
		copy(tid[:], marker[:])
		tid[4], tid[5] = byte(t>>8), byte(t)
		tid[6], tid[7] = 0xff, 0xfe // the counter goes in bytes 8..15
		ids = append(ids, tid)
		for s := 0; s < spansPerTrace; s++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID(tid))
			sp.SetSpanID(pcommon.SpanID{7: byte(s + 1)})
			if s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{7: 1})
				sp.SetKind(ptrace.SpanKindClient)
				sp.SetName("GET /stock")
			} else {
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetName("POST /scan")
			}
			start := now.Add(time.Duration(s) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(3 * time.Millisecond)))
			a := sp.Attributes()
			a.PutStr("http.method", "GET")
			a.PutStr("http.route", "/stock")
			a.PutInt("http.status_code", 200)
			a.PutStr("net.peer.name", "inventory")
			sp.Status().SetCode(ptrace.StatusCodeOk)
		}
	}
	req := ptraceotlp.NewExportRequestFromTraces(td)
	if format == "json" {
		body, err = req.MarshalJSON()
		contentType = "application/json"
	} else {
		body, err = req.MarshalProto()
		contentType = "application/x-protobuf"
	}
	if err != nil {
		return nil, "", nil, err
	}
	for _, id := range ids {
		needle := id[:8]
		var hexNeedle []byte
		if format == "json" {
			hexNeedle = []byte(hex.EncodeToString(needle))
		} else {
			hexNeedle = needle
		}
		for at := 0; ; {
			i := bytes.Index(body[at:], hexNeedle)
			if i < 0 {
				break
			}
			offsets = append(offsets, at+i+len(hexNeedle))
			at += i + len(hexNeedle)
		}
	}
	if len(offsets) != n {
		return nil, "", nil, fmt.Errorf("found %d trace IDs in the template, want %d", len(offsets), n)
	}
	return body, contentType, offsets, nil
}

// stamp writes counter into the low 8 bytes of every trace ID, making the
// request's spans new.
func stamp(body []byte, format string, offsets []int, counter uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(counter >> (56 - 8*i))
	}
	for _, off := range offsets {
		if format == "json" {
			hex.Encode(body[off:off+16], b[:])
		} else {
			copy(body[off:off+8], b[:])
		}
	}
}

// countSpans reads the span count straight from the span database (the
// store's API has no count): the sum of the chunks' span counts.
func countSpans(ctx context.Context, path string) (int64, error) {
	db, err := sqldb.Open(ctx, path, nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT IFNULL(SUM(n), 0) FROM chunks`).Scan(&n); err != nil {
		return 0, errors.Join(errors.New("count stored spans"), err)
	}
	return n, nil
}

// bytesWritten is what this process has written through write syscalls so
// far (Linux /proc/self/io wchar: WAL, checkpoints and the HTTP responses),
// or 0 where that is not available.
func bytesWritten() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the CPU time (user and system) this process has used so far:
// unlike spans/s it hardly depends on what else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timedStore records the size and duration of each batch the ingester
// commits.
type timedStore struct {
	ktrace.Store
	mu      sync.Mutex
	sizes   []int
	commits []time.Duration
}

func (t *timedStore) WriteSpans(ctx context.Context, spans []ktrace.Span) error {
	start := time.Now()
	err := t.Store.WriteSpans(ctx, spans)
	d := time.Since(start)
	t.mu.Lock()
	t.sizes = append(t.sizes, len(spans))
	t.commits = append(t.commits, d)
	t.mu.Unlock()
	return err
}

func (t *timedStore) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sizes) == 0 {
		return "no batches"
	}
	total := 0
	var busy time.Duration
	for i, n := range t.sizes {
		total += n
		busy += t.commits[i]
	}
	c := slices.Clone(t.commits)
	slices.Sort(c)
	pct := func(p int) time.Duration { return c[min(len(c)-1, len(c)*p/100)].Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d batches of %d spans on average; WriteSpans p50 %s, p99 %s, max %s, %.1f µs per span",
		len(t.sizes), total/len(t.sizes), pct(50), pct(99), c[len(c)-1].Round(10*time.Microsecond),
		float64(busy.Microseconds())/float64(total))
}
