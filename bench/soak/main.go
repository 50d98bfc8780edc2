// Command soak runs kplane for a long, bounded time under the load it is
// built for and reports whether it stays healthy: its memory and goroutine
// count over time (flat, not growing), failed requests (zero), autoscaler
// decisions, builds promoted and spans ingested. Results go in
// docs/reliability.md under "Soak".
//
//	go run ./bench/soak [-duration 30m] [-cycle 5m] [-promote-every 5m] [-sample 30s] [-out report.md]
//
// It builds kplane and starts `kplane dev` on free loopback ports in a temp
// dir, as a user runs it: the process driver, the scrape source,
// autoscaling on, the ticketing demo, HAWAII's demo pipeline for
// inventory. Then, until -duration is up:
//
//   - load: inventory gets repeating cycles of steady, ramp, spike and quiet
//     traffic (the sale mix), checkpoint a steady scan load, both through
//     the registry client on the load generator's loopback-only transport;
//     the demo services trace every request into kplane;
//   - spans: the soak adds its own client spans, a Zipkin v2 batch and an
//     OTLP/HTTP JSON batch every 2 s;
//   - builds: every -promote-every, a new inventory build is reported with
//     the dev admin token, HAWAII runs its alpha and qa jobs, and the soak
//     promotes it to prod and waits for the prod deploy;
//   - samples: every -sample, kplane's /metrics (process_resident_memory_bytes,
//     go_goroutines, decisions, spans) and the inventory instance count.
//
// It exits non-zero when a request failed, a promotion did not reach prod,
// or the Go heap or the goroutine count grew (last third of the samples
// against the first third, by more than -growth). RSS is reported the same
// way but does not fail the run: it includes SQLite's page caches, which
// fill (up to their bound) as the span store grows.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kplane/kplane/bench/internal/devproc"
	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/registry"
)

const token = "soak-admin-token-0123456789"

type options struct {
	duration, cycle, promoteEvery, sample time.Duration
	base, peak, checkpointRate            float64
	growth                                float64
	kplane, out                           string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to soak")
	flag.DurationVar(&o.cycle, "cycle", 5*time.Minute, "one load cycle on inventory: steady, ramp, spike, quiet")
	flag.DurationVar(&o.promoteEvery, "promote-every", 5*time.Minute, "report and promote a new inventory build this often")
	flag.DurationVar(&o.sample, "sample", 30*time.Second, "sample kplane's /metrics this often")
	flag.Float64Var(&o.base, "base", 20, "inventory requests per second when steady")
	flag.Float64Var(&o.peak, "peak", 300, "inventory requests per second at the top of a ramp or spike")
	flag.Float64Var(&o.checkpointRate, "checkpoint-rate", 5, "checkpoint requests per second, throughout")
	flag.Float64Var(&o.growth, "growth", 0.25, "allowed growth of memory and goroutines, last third of the samples over the first third")
	flag.StringVar(&o.kplane, "kplane", "", "kplane binary to run; empty builds ./cmd/kplane")
	flag.StringVar(&o.out, "out", "", "also write the report (Markdown) to this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/soak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.duration < time.Minute || o.cycle < 20*time.Second || o.sample < time.Second || o.peak <= o.base || o.base <= 0 {
		return errors.New("want -duration ≥ 1m, -cycle ≥ 20s, -sample ≥ 1s and -peak > -base > 0")
	}
	dir, err := os.MkdirTemp("", "kplane-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := o.kplane
	if bin == "" {
		bin = filepath.Join(dir, "kplane")
		build := exec.Command("go", "build", "-o", bin, "./cmd/kplane")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building kplane (run from the repository root): %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dev, err := devproc.Start(ctx, devproc.Config{Bin: bin, DataDir: filepath.Join(dir, "data"), Token: token,
		Env: []string{"KPLANE_AUTOSCALER=true", "KPLANE_DRIVER=process", "KPLANE_AUTOSCALER_SOURCE=scrape"},
		Log: filepath.Join(os.TempDir(), fmt.Sprintf("kplane-soak-%d.log", os.Getpid()))})
	if err != nil {
		return err
	}
	defer dev.Stop()
	logf("kplane dev at %s, log %s", dev.URL, dev.Log)

	etcd, err := registry.Connect(registry.ConnectConfig{Endpoints: []string{"http://" + dev.Etcd}})
	if err != nil {
		return err
	}
	defer etcd.Close()
	watcher := registry.NewWatcher(registry.WatcherConfig{Client: etcd})
	wctx, wcancel := context.WithCancel(context.Background())
	var wwg sync.WaitGroup
	defer wwg.Wait()
	defer wcancel()
	wwg.Go(func() { _ = watcher.Run(wctx) })
	select {
	case <-watcher.Ready():
	case <-time.After(30 * time.Second):
		return errors.New("registry not ready after 30 s")
	}
	for _, svc := range []string{"inventory", "checkpoint"} {
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		err := watcher.WaitInstances(wait, svc, func(ins []registry.Instance) bool { return len(devproc.InEnv(ins, "dev")) > 0 })
		cancel()
		if err != nil {
			return fmt.Errorf("no %s instance in env dev: %w", svc, err)
		}
	}
	client := &http.Client{
		Transport: registry.NewTransport(registry.TransportConfig{
			Resolver: watcher, Base: loadgen.NewTransport(),
			// The demo's environment: HAWAII's alpha, qa and prod also run inventory.
			Selector: registry.Selector{Env: "dev"},
		}),
		Timeout: loadgen.DefaultTimeout,
	}

	start := time.Now()
	soakCtx, endSoak := context.WithDeadline(ctx, start.Add(o.duration))
	defer endSoak()
	var (
		wg       sync.WaitGroup
		res      results
		samplesC = make(chan []sample, 1)
	)
	wg.Go(func() { res.addLoad("inventory", inventoryLoad(soakCtx, client, o)) })
	scan, err := loadgen.NamedMix("scan")
	if err != nil {
		return err
	}
	wg.Go(func() {
		r, err := loadgen.Run(soakCtx, loadgen.Config{Target: "http://checkpoint", Client: client, Rate: o.checkpointRate,
			Duration: o.duration, MaxRequests: loadgen.MaxMaxRequests, Mix: scan})
		if err != nil && soakCtx.Err() == nil {
			res.note("checkpoint load: %v", err)
		}
		res.addLoad("checkpoint", []loadgen.Report{r})
	})
	wg.Go(func() { sendSpans(soakCtx, dev, &res) })
	wg.Go(func() { promotions(soakCtx, dev, o, &res) })
	wg.Go(func() { samplesC <- sampleLoop(soakCtx, dev, watcher, start, o.sample) })
	wg.Wait()
	samples := <-samplesC
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	// What kplane counted in the end, after the last requests settled.
	time.Sleep(3 * time.Second)
	final, err := devMetrics(context.Background(), dev)
	if err != nil {
		return fmt.Errorf("final /metrics: %w", err)
	}
	return report(o, start, samples, final, &res)
}

// inventoryLoad runs load cycles until ctx is done: steady at base, a ramp
// to peak, a spike to peak, then quiet at a quarter of base so the
// autoscaler scales back down.
func inventoryLoad(ctx context.Context, client *http.Client, o options) []loadgen.Report {
	type phase struct {
		profile    loadgen.Profile
		rate, peak float64
		share      float64
	}
	phases := []phase{
		{loadgen.Steady, o.base, 0, 0.25},
		{loadgen.Ramp, o.base, o.peak, 0.25},
		{loadgen.Spike, o.base, o.peak, 0.2},
		{loadgen.Steady, o.base / 4, 0, 0.3},
	}
	var reps []loadgen.Report
	for cycle := 1; ctx.Err() == nil; cycle++ {
		for _, p := range phases {
			d := time.Duration(float64(o.cycle) * p.share)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
				d = time.Until(dl)
			}
			if d < time.Second || ctx.Err() != nil {
				return reps
			}
			logf("load: cycle %d, inventory %s %.0f→%.0f/s for %v", cycle, p.profile, p.rate, max(p.rate, p.peak), d.Round(time.Second))
			r, err := loadgen.Run(ctx, loadgen.Config{Target: "http://inventory", Client: client, Profile: p.profile,
				Rate: p.rate, Peak: p.peak, Duration: d, MaxRequests: loadgen.MaxMaxRequests,
				Concurrency: 512, // buyers do not wait for each other
			})
			if err != nil && ctx.Err() == nil {
				logf("load: %v", err)
			}
			if r.Failed > 0 {
				logf("load: %d failed requests in this phase: %v", r.Failed, r.ByStatus)
			}
			reps = append(reps, r)
		}
	}
	return reps
}

// results collects what the workers did.
type results struct {
	mu         sync.Mutex
	load       map[string]loadgen.Report // summed per service
	spansSent  int                       // acknowledged by kplane
	spanErrors []string
	builds     []promotion
	notes      []string
}

func (r *results) addLoad(svc string, reps []loadgen.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.load == nil {
		r.load = map[string]loadgen.Report{}
	}
	sum := r.load[svc]
	if sum.ByStatus == nil {
		sum.ByStatus = map[string]int{}
	}
	for _, x := range reps {
		sum.Sent += x.Sent
		sum.OK += x.OK
		sum.Rejected += x.Rejected
		sum.Failed += x.Failed
		sum.Canceled += x.Canceled
		sum.Latency.Max = max(sum.Latency.Max, x.Latency.Max)
		sum.Latency.P99 = max(sum.Latency.P99, x.Latency.P99)
		for k, v := range x.ByStatus {
			sum.ByStatus[k] += v
		}
	}
	r.load[svc] = sum
}

func (r *results) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logf("%s", msg)
	r.mu.Lock()
	r.notes = append(r.notes, msg)
	r.mu.Unlock()
}

// sendSpans posts the soak's own client spans every 2 s, alternating
// Zipkin v2 and OTLP/HTTP JSON, five spans a batch.
func sendSpans(ctx context.Context, dev *devproc.Process, res *results) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		path, ctype, body := zipkinBatch(n)
		if n%2 == 1 {
			path, ctype, body = otlpBatch(n)
		}
		err := postOnly(dev.Do(ctx, http.MethodPost, path, ctype, body))
		res.mu.Lock()
		if err == nil {
			res.spansSent += spansPerBatch
		} else if ctx.Err() == nil {
			res.spanErrors = append(res.spanErrors, err.Error())
		}
		res.mu.Unlock()
	}
}

const spansPerBatch = 5

func randHex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rand.IntN(16)]
	}
	b[0] = '1' // never all zeros
	return string(b)
}

func zipkinBatch(n int) (string, string, []byte) {
	trace := randHex(32)
	root := randHex(16)
	now := time.Now().UnixMicro()
	var spans []map[string]any
	for i := range spansPerBatch {
		s := map[string]any{
			"traceId": trace, "id": root, "kind": "CLIENT", "name": "get /events",
			"timestamp": now + int64(i*100), "duration": 1500,
			"localEndpoint": map[string]any{"serviceName": "soak-client"},
			"tags":          map[string]string{"batch": strconv.Itoa(n)},
		}
		if i > 0 {
			s["id"], s["parentId"], s["name"] = randHex(16), root, "get /events/"+strconv.Itoa(i)
		}
		spans = append(spans, s)
	}
	b, _ := json.Marshal(spans)
	return "/api/v2/spans", "application/json", b
}

func otlpBatch(n int) (string, string, []byte) {
	trace := randHex(32)
	root := randHex(16)
	now := time.Now().UnixNano()
	var spans []map[string]any
	for i := range spansPerBatch {
		s := map[string]any{
			"traceId": trace, "spanId": root, "name": "post /orders", "kind": 3,
			"startTimeUnixNano": strconv.FormatInt(now+int64(i)*1e5, 10),
			"endTimeUnixNano":   strconv.FormatInt(now+int64(i)*1e5+2e6, 10),
			"attributes":        []map[string]any{{"key": "batch", "value": map[string]any{"intValue": strconv.Itoa(n)}}},
		}
		if i > 0 {
			s["spanId"], s["parentSpanId"] = randHex(16), root
		}
		spans = append(spans, s)
	}
	b, _ := json.Marshal(map[string]any{"resourceSpans": []any{map[string]any{
		"resource":   map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": "soak-client"}}}},
		"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "bench/soak"}, "spans": spans}},
	}}})
	return "/v1/traces", "application/json", b
}

// promotion is one build the soak reported and tried to take to prod.
type promotion struct {
	version      string
	id           int64
	reported     time.Time
	qaPassed     time.Duration // from reported
	prodDeployed time.Duration // from reported
	deployState  string
	err          string
}

// promotions reports a new inventory build 1 min in and every
// promoteEvery after, and takes each through alpha and qa to prod.
func promotions(ctx context.Context, dev *devproc.Process, o options, res *results) {
	next := time.NewTimer(min(time.Minute, o.duration/3))
	defer next.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-next.C:
		}
		next.Reset(o.promoteEvery)
		p := promote(ctx, dev, n)
		if ctx.Err() != nil && p.deployState == "" {
			p.err = "soak ended before prod: " + p.err
		}
		res.mu.Lock()
		res.builds = append(res.builds, p)
		res.mu.Unlock()
		if p.err != "" {
			logf("build %s: %s", p.version, p.err)
		} else {
			logf("build %s: qa passed after %v, in prod after %v", p.version, p.qaPassed.Round(time.Second), p.prodDeployed.Round(time.Second))
		}
	}
}

func promote(ctx context.Context, dev *devproc.Process, n int) promotion {
	p := promotion{version: fmt.Sprintf("1.9.%d", n), reported: time.Now()}
	body, _ := json.Marshal(map[string]any{
		"service": "inventory", "version": p.version, "image": "kplane/inventory:" + p.version,
		"scmRevision": randHex(7), "committer": "soak-ci", "timestamp": p.reported.UTC().Format(time.RFC3339),
		"guid":      fmt.Sprintf("soak-%d-%d", p.reported.Unix(), n),
		"changelog": []map[string]string{{"id": randHex(7), "author": "soak-ci", "message": "inventory: soak build " + p.version}},
	})
	var b struct {
		ID     int64 `json:"id"`
		Stages []struct {
			Stage  string `json:"stage"`
			Status string `json:"status"`
		} `json:"stages"`
	}
	if err := dev.Call(ctx, http.MethodPost, "/api/v1/builds", string(body), &b); err != nil {
		p.err = "report: " + err.Error()
		return p
	}
	p.id = b.ID
	logf("build %s reported as #%d", p.version, p.id)
	// alpha then qa; each deploys an environment and runs kplane smoke.
	for {
		if err := dev.Call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/builds/%d", p.id), "", &b); err != nil {
			p.err = "get build: " + err.Error()
			return p
		}
		st := map[string]string{}
		for _, s := range b.Stages {
			st[s.Stage] = s.Status
		}
		if st["qa"] == "passed" {
			break
		}
		if st["alpha"] == "failed" || st["qa"] == "failed" {
			p.err = fmt.Sprintf("pipeline: alpha %s, qa %s", st["alpha"], st["qa"])
			return p
		}
		if time.Since(p.reported) > 5*time.Minute {
			p.err = fmt.Sprintf("qa not passed after 5 min: alpha %s, qa %s", st["alpha"], st["qa"])
			return p
		}
		if !sleep(ctx, 2*time.Second) {
			p.err = "qa not passed"
			return p
		}
	}
	p.qaPassed = time.Since(p.reported)
	var pr struct {
		DeployID string `json:"deployID"`
	}
	if err := dev.Call(ctx, http.MethodPost, fmt.Sprintf("/api/v1/builds/%d/promote", p.id), `{"to": "prod"}`, &pr); err != nil {
		p.err = "promote: " + err.Error()
		return p
	}
	for {
		var d struct {
			State string `json:"state"`
			Error string `json:"error"`
		}
		// The deploy is finished without the soak's cancellation: a
		// promotion under way at the end is still counted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := dev.Call(dctx, http.MethodGet, "/api/v1/deploys/"+pr.DeployID, "", &d)
		cancel()
		if err != nil {
			p.err = "get deploy: " + err.Error()
			return p
		}
		if d.State != "running" && d.State != "" {
			p.deployState, p.prodDeployed = d.State, time.Since(p.reported)
			if d.State != "succeeded" {
				p.err = "prod deploy " + d.State + ": " + d.Error
			}
			return p
		}
		if time.Since(p.reported) > 10*time.Minute {
			p.err = "prod deploy still running after 10 min"
			return p
		}
		time.Sleep(time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// sample is one look at kplane.
type sample struct {
	at         time.Duration
	rss        float64 // bytes
	heap       float64 // Go heap in use, bytes
	goroutines float64
	instances  int // inventory in env dev
	decisions  float64
	spans      float64 // stored
}

func sampleLoop(ctx context.Context, dev *devproc.Process, w *registry.Watcher, start time.Time, every time.Duration) []sample {
	var out []sample
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		m, err := devMetrics(ctx, dev)
		if err != nil {
			if ctx.Err() == nil {
				logf("sample: %v", err)
			}
			continue
		}
		s := sample{at: time.Since(start), rss: m.get("process_resident_memory_bytes"),
			heap: m.get("go_memstats_heap_inuse_bytes"), goroutines: m.get("go_goroutines"),
			instances: len(devproc.InEnv(w.Instances("inventory"), "dev")), decisions: m.sum("kplane_headquarter_decisions_total"),
			spans: m.sum("kplane_ktrace_ingest_spans_stored_total")}
		out = append(out, s)
		logf("sample: rss %.1f MiB, heap %.1f MiB, %v goroutines, %d inventory instances, %v decisions, %v spans stored",
			s.rss/(1<<20), s.heap/(1<<20), s.goroutines, s.instances, s.decisions, s.spans)
	}
}

// metrics is a scrape of kplane's /metrics: series (name and labels as
// written) to value.
type metrics map[string]float64

func (m metrics) get(name string) float64 { return m[name] }

// sum adds every series of a metric.
func (m metrics) sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// by sums a metric's series by the value of one label.
func (m metrics) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		_, rest, ok := strings.Cut(k, label+`="`)
		if !ok {
			continue
		}
		val, _, _ := strings.Cut(rest, `"`)
		out[val] += v
	}
	return out
}

func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

func report(o options, start time.Time, samples []sample, final metrics, res *results) error {
	var w bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("Soak of %v (%v cycles of %v on inventory: steady %.0f/s, ramp and spike to %.0f/s, quiet %.0f/s; checkpoint %.0f/s), ended %s.\n\n",
		time.Since(start).Round(time.Second), math.Ceil(float64(o.duration)/float64(o.cycle)), o.cycle, o.base, o.peak, o.base/4, o.checkpointRate,
		time.Now().UTC().Format(time.RFC3339))
	p("| t | RSS (MiB) | Go heap in use (MiB) | goroutines | inventory instances | decisions | spans stored |\n|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		p("| %v | %.1f | %.1f | %.0f | %d | %.0f | %.0f |\n", s.at.Round(time.Second), s.rss/(1<<20), s.heap/(1<<20), s.goroutines, s.instances, s.decisions, s.spans)
	}
	var problems []string
	if len(samples) >= 3 {
		third := len(samples) / 3
		first, last := samples[:third], samples[len(samples)-third:]
		mean := func(ss []sample, f func(sample) float64) float64 {
			var t float64
			for _, s := range ss {
				t += f(s)
			}
			return t / float64(len(ss))
		}
		// RSS also holds the SQLite page caches (64 MiB each for the span
		// store's writer and the main store), which fill as the span store
		// grows: a leak shows as a growing Go heap or goroutine count;
		// RSS growth alone is reported, not failed.
		for _, q := range []struct {
			name  string
			f     func(sample) float64
			unit  float64
			fails bool
		}{
			{"RSS (MiB)", func(s sample) float64 { return s.rss }, 1 << 20, false},
			{"Go heap in use (MiB)", func(s sample) float64 { return s.heap }, 1 << 20, true},
			{"goroutines", func(s sample) float64 { return s.goroutines }, 1, true},
		} {
			a, b := mean(first, q.f), mean(last, q.f)
			verdict := "flat"
			if b > a*(1+o.growth) {
				verdict = "GROWING"
				if q.fails {
					problems = append(problems, fmt.Sprintf("%s grew from %.1f to %.1f", q.name, a/q.unit, b/q.unit))
				} else {
					verdict = "growing (includes SQLite's page caches, bounded; see the Go heap)"
				}
			}
			p("\n%s: first third mean %.1f, last third mean %.1f (%+.1f%%): %s", q.name, a/q.unit, b/q.unit, 100*(b/a-1), verdict)
		}
		// Goroutines follow the instance count (a scrape and connections
		// per instance): compare the quiet baseline too.
		var base []sample
		for _, s := range samples {
			if s.instances == samples[0].instances {
				base = append(base, s)
			}
		}
		if len(base) >= 2 {
			f, l := base[0], base[len(base)-1]
			p("\nat %d inventory instances (%d samples): first RSS %.1f MiB, heap %.1f MiB, %.0f goroutines; last RSS %.1f MiB, heap %.1f MiB, %.0f goroutines",
				samples[0].instances, len(base), f.rss/(1<<20), f.heap/(1<<20), f.goroutines, l.rss/(1<<20), l.heap/(1<<20), l.goroutines)
		}
		p("\n")
	} else {
		problems = append(problems, "fewer than 3 samples")
	}
	p("\n| load | sent | ok | rejected (4xx) | failed | canceled at the end | worst p99 |\n|---|---|---|---|---|---|---|\n")
	var failed int
	for _, svc := range []string{"inventory", "checkpoint"} {
		r := res.load[svc]
		failed += r.Failed
		p("| %s | %d | %d | %d | %d | %d | %v |\n", svc, r.Sent, r.OK, r.Rejected, r.Failed, r.Canceled, r.Latency.P99.Round(time.Millisecond))
		if r.Failed > 0 {
			problems = append(problems, fmt.Sprintf("%d %s requests failed: %v", r.Failed, svc, r.ByStatus))
		}
	}
	p("\nDecisions (kplane_headquarter_decisions_total, those that acted or were held by a guard): %.0f, by action %v, by guard %v; scale calls by outcome: %v.\n",
		final.sum("kplane_headquarter_decisions_total"), fmtMap(final.by("kplane_headquarter_decisions_total", "action")),
		fmtMap(final.by("kplane_headquarter_decisions_total", "guard")), fmtMap(final.by("kplane_headquarter_scale_outcomes_total", "outcome")))
	p("\nSpans: %d sent by the soak and acknowledged (%d refused); kplane stored %.0f in all (demo services included), rejected %.0f.\n",
		res.spansSent, len(res.spanErrors), final.sum("kplane_ktrace_ingest_spans_stored_total"), final.sum("kplane_ktrace_ingest_spans_rejected_total"))
	if len(res.spanErrors) > 0 {
		problems = append(problems, fmt.Sprintf("%d span batches refused, first: %s", len(res.spanErrors), res.spanErrors[0]))
	}
	promoted := 0
	p("\n| build | reported at | qa passed after | in prod after | result |\n|---|---|---|---|---|\n")
	for _, b := range res.builds {
		result := b.deployState
		if b.err != "" {
			result = b.err
			problems = append(problems, "build "+b.version+": "+b.err)
		} else {
			promoted++
		}
		p("| %s (#%d) | %v | %v | %v | %s |\n", b.version, b.id, b.reported.Sub(start).Round(time.Second), b.qaPassed.Round(time.Second), b.prodDeployed.Round(time.Second), result)
	}
	p("\nBuilds promoted to prod: %d of %d reported.\n", promoted, len(res.builds))
	for _, n := range res.notes {
		p("\nnote: %s\n", n)
	}
	if len(problems) > 0 {
		p("\nPROBLEMS:\n")
		for _, pr := range problems {
			p("- %s\n", pr)
		}
	} else {
		p("\nNo problems: Go heap and goroutines flat, no failed request, every build promoted.\n")
	}
	fmt.Print("\n" + w.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, w.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems", len(problems))
	}
	return nil
}

func fmtMap(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range m {
		if k == "" {
			k = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// devMetrics reads kplane's own /metrics.
func devMetrics(ctx context.Context, p *devproc.Process) (metrics, error) {
	b, err := p.Do(ctx, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return nil, err
	}
	return parseMetrics(bytes.NewReader(b))
}

// postOnly drops the body of an answer whose status is all that counts.
func postOnly(_ []byte, err error) error { return err }
