// Command scout shows that the Prometheus source's cost per tick does not
// grow with the number of services: a real Prometheus (Debian's package,
// started here in a temp dir) scrapes a loopback exporter that exposes the
// demo's metrics for N synthetic services, and scout ticks through a
// round-tripper that counts the HTTP requests sent to Prometheus. Results
// go in docs/benchmarks.md.
//
//	go run ./bench/scout [-services 10,1000] [-ticks 20]
//
// It exits non-zero when the requests per tick differ between fleet sizes
// or when a service misses a metric. It is bounded (about 10 s per fleet size)
// and touches nothing but loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/scout/prometheus"
)

func main() {
	sizes := flag.String("services", "10,1000", "fleet sizes to measure, comma-separated")
	ticks := flag.Int("ticks", 20, "ticks measured per fleet size")
	flag.Parse()
	if err := run(*sizes, *ticks); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scout:", err)
		os.Exit(1)
	}
}

type result struct {
	services int
	perTick  float64
	p50, p99 time.Duration
	present  int
}

func run(sizes string, ticks int) error {
	var results []result
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad fleet size %q", f)
		}
		r, err := measure(n, ticks)
		if err != nil {
			return fmt.Errorf("%d services: %w", n, err)
		}
		results = append(results, r)
	}
	fmt.Println("| services | HTTP requests to Prometheus per tick | tick p50 | tick p99 | services with QPS, CPU and memory |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %d | %.1f | %v | %v | %d/%d |\n", r.services, r.perTick, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.present, r.services)
	}
	for _, r := range results {
		if r.perTick != results[0].perTick {
			return fmt.Errorf("requests per tick depend on the fleet size: %.1f at %d services, %.1f at %d", results[0].perTick, results[0].services, r.perTick, r.services)
		}
		if r.present != r.services {
			return fmt.Errorf("%d of %d services missing a metric", r.services-r.present, r.services)
		}
	}
	fmt.Printf("goal (requests per tick independent of services): met, %.0f per tick\n", results[0].perTick)
	return nil
}

func measure(n, ticks int) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	targets, stopExporter, err := startExporter(n)
	if err != nil {
		return result{}, err
	}
	defer stopExporter()
	promURL, stop, err := startPrometheus(targets)
	if err != nil {
		return result{}, err
	}
	defer stop()

	var requests atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second, Transport: countingTransport{&requests, http.DefaultTransport.(*http.Transport).Clone()}}
	src, err := prometheus.New(prometheus.Config{URL: promURL, Client: client})
	if err != nil {
		return result{}, err
	}
	var fleet staticRegistry
	for i := range n {
		name := fmt.Sprintf("svc-%04d", i)
		fleet = append(fleet, registry.Service{Name: name, Instances: []registry.Instance{{ID: name + "-1", Name: name}}})
	}
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: fleet, HistoryWindow: -1})
	if err != nil {
		return result{}, err
	}

	// Wait until Prometheus has two scrapes of every series.
	deadline := time.Now().Add(30 * time.Second)
	for presentAll(s.Collect(ctx)) < n {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("prometheus has no rate for every service after 30s")
		}
		time.Sleep(250 * time.Millisecond)
	}

	requests.Store(0)
	var took []time.Duration
	present := n
	for range ticks {
		start := time.Now()
		snap := s.Collect(ctx)
		took = append(took, time.Since(start))
		present = min(present, presentAll(snap))
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(took)
	return result{
		services: n,
		perTick:  float64(requests.Load()) / float64(ticks),
		p50:      took[len(took)/2],
		p99:      took[(len(took)*99)/100],
		present:  present,
	}, nil
}

func presentAll(snap scout.Snapshot) int {
	n := 0
	for _, ss := range snap.Services {
		if !ss.Metrics[scout.QPS].Missing && !ss.Metrics[scout.CPU].Missing && !ss.Metrics[scout.Memory].Missing {
			n++
		}
	}
	return n
}

type staticRegistry []registry.Service

func (r staticRegistry) Services() []registry.Service { return r }

type countingTransport struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

// startExporter serves the demo's metrics for n services, each as its
// own scrape target (one loopback port per instance, as in the demo: the
// default queries join process metrics to the service per target), with
// counters that grow with time. It returns the targets and a stop func.
func startExporter(n int) ([]string, func(), error) {
	start := time.Now()
	var (
		targets []string
		servers []*http.Server
	)
	stop := func() {
		for _, srv := range servers {
			srv.Close()
		}
	}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, err
		}
		targets = append(targets, ln.Addr().String())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			elapsed := time.Since(start).Seconds()
			fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
			fmt.Fprintf(w, "http_requests_total{service=\"svc-%04d\",route=\"GET /events\",code=\"200\"} %d\n", i, int(elapsed*float64(1+i%50)))
			fmt.Fprintf(w, "http_requests_total{service=\"svc-%04d\",route=\"GET /metrics\",code=\"200\"} %d\n", i, int(elapsed))
			fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", elapsed*0.1)
			fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 64<<20)
		}), ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go srv.Serve(ln)
	}
	return targets, stop, nil
}

// startPrometheus runs Debian's prometheus on a free loopback port in a
// temp dir, scraping the targets every second, and returns its URL and a stop
// func that kills it and removes the dir.
func startPrometheus(targets []string) (string, func(), error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return "", nil, fmt.Errorf("prometheus not in PATH: run scripts/install-test-deps.sh")
	}
	dir, err := os.MkdirTemp("", "kplane-bench-scout-")
	if err != nil {
		return "", nil, err
	}
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = strconv.Quote(t)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [%s]\n", strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("prometheus not ready within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
