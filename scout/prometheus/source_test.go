package prometheus_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/internal/promtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/scout/prometheus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startInventory runs a real inventory instance (not registered: Prometheus
// is told its address directly) until the test ends.
func startInventory(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- ticketing.Run(ctx, ticketing.Config{Service: ticketing.Inventory, Listener: ln}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inventory: %v", err)
		}
	})
	return ln.Addr().String()
}

// load sends GET /events to addr until stop is called, about rps times a
// second.
func load(t *testing.T, addr string, rps int) (stop func()) {
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/events", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			tr.CloseIdleConnections()
		})
	}
	t.Cleanup(stop)
	return stop
}

var fleet = []registry.Service{
	{Name: "inventory", Instances: []registry.Instance{{ID: "inventory-1", Name: "inventory"}}},
	{Name: "checkpoint", Instances: []registry.Instance{{ID: "checkpoint-1", Name: "checkpoint"}}},
}

// collectUntil collects every 500 ms until ok accepts the result, or fails
// the test after 30 s with the last result.
func collectUntil(t *testing.T, src scout.Source, what string, ok func(map[string]map[scout.Metric]scout.Sample) bool) map[string]map[scout.Metric]scout.Sample {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := src.Collect(t.Context(), fleet, time.Now())
		if err == nil && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s; last: %v, %v", what, got, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Against a real Prometheus scraping a real inventory instance: scrapes and
// health checks are not traffic, requests are, CPU and memory are
// fractions of the limits, an unscraped service is missing, and a stopped
// Prometheus is missing data, never zero.
func TestRealPrometheusAndInventory(t *testing.T) {
	prom := promtest.Start(t, promtest.Config{ScrapeInterval: 500 * time.Millisecond})
	addr := startInventory(t)
	prom.SetTargets(t, addr)
	src, err := prometheus.New(prometheus.Config{URL: prom.URL, MemoryLimit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}

	// Idle but scraped twice a second: QPS must be a present zero.
	idle := collectUntil(t, src, "idle QPS, CPU and memory", func(r map[string]map[scout.Metric]scout.Sample) bool {
		inv := r["inventory"]
		return !inv[scout.QPS].Missing && !inv[scout.CPU].Missing && !inv[scout.Memory].Missing
	})
	if q := idle["inventory"][scout.QPS]; q.Value != 0 {
		t.Errorf("idle inventory QPS = %v, want 0: /metrics scrapes must not count as traffic", q.Value)
	}
	if m := idle["inventory"][scout.Memory].Value; m <= 0 || m >= 1 {
		t.Errorf("memory = %v of a 1 GiB limit, want a fraction in (0, 1)", m)
	}
	if c := idle["inventory"][scout.CPU].Value; c < 0 || c > 2 {
		t.Errorf("cpu = %v of one core, want a small fraction", c)
	}
	for _, m := range scout.Metrics {
		got := idle["checkpoint"][m]
		if !got.Missing || !strings.Contains(got.Reason, "no series") {
			t.Errorf("unscraped checkpoint %s = %+v, want missing: no series", m, got)
		}
	}
	if ts := idle["inventory"][scout.QPS].Time; time.Since(ts) > 5*time.Second {
		t.Errorf("sample time %v is not the query time", ts)
	}

	stopLoad := load(t, addr, 50)
	busy := collectUntil(t, src, "QPS under load", func(r map[string]map[scout.Metric]scout.Sample) bool {
		q := r["inventory"][scout.QPS]
		return !q.Missing && q.Value >= 5
	})
	stopLoad()
	if q := busy["inventory"][scout.QPS].Value; q > 200 {
		t.Errorf("QPS = %v under a 50 req/s load, want about 50", q)
	}

	// Through scout, Prometheus down is missing data with the reason.
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: staticRegistry(fleet)})
	if err != nil {
		t.Fatal(err)
	}
	prom.Stop(t)
	snap := s.Collect(t.Context())
	for _, m := range scout.Metrics {
		got := snap.Services["inventory"].Metrics[m]
		if !got.Missing || !strings.Contains(got.Reason, "connection refused") {
			t.Errorf("inventory %s with Prometheus stopped = %+v, want missing: connection refused", m, got)
		}
		if strings.Contains(got.Reason, "\n") || strings.Contains(got.Reason, "prometheus: prometheus:") {
			t.Errorf("reason %q: want one line, the source named once (it is a row of kplane decisions)", got.Reason)
		}
	}
	if _, err := src.Collect(t.Context(), fleet, time.Now()); err == nil {
		t.Error("Collect with Prometheus stopped returned no error")
	}
}

type staticRegistry []registry.Service

func (r staticRegistry) Services() []registry.Service { return r }

// A broken query spoils only its own metric.
func TestBadQueryIsMissingOnlyForItsMetric(t *testing.T) {
	prom := promtest.Start(t, promtest.Config{})
	src, err := prometheus.New(prometheus.Config{URL: prom.URL, Queries: map[scout.Metric]string{
		scout.QPS:    `sum by (service) (label_replace(vector(3), "service", "inventory", "", ""))`,
		scout.CPU:    `sum by (service) (rate(`, // syntax error: Prometheus answers 400 bad_data
		scout.Memory: `42`,                      // a scalar, not one series per service
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Collect(t.Context(), fleet, time.Now())
	if err != nil {
		t.Fatalf("Collect = %v, want per-metric results", err)
	}
	inv := got["inventory"]
	if q := inv[scout.QPS]; q.Missing || q.Value != 3 {
		t.Errorf("QPS = %+v, want 3", q)
	}
	if c := inv[scout.CPU]; !c.Missing || !strings.Contains(c.Reason, "cpu query") || !strings.Contains(c.Reason, "bad_data") {
		t.Errorf("CPU = %+v, want missing: cpu query bad_data", c)
	}
	if m := inv[scout.Memory]; !m.Missing || !strings.Contains(m.Reason, "not an instant vector") {
		t.Errorf("memory = %+v, want missing: not an instant vector", m)
	}
	if _, ok := got["stranger"]; ok {
		t.Error("result has a service that was not asked for")
	}
}

func TestNewRejectsUnusableConfig(t *testing.T) {
	for name, cfg := range map[string]prometheus.Config{
		"no url":      {},
		"empty query": {URL: "http://127.0.0.1:9090", Queries: map[scout.Metric]string{scout.QPS: " "}},
		"negative":    {URL: "http://127.0.0.1:9090", CPULimit: -1},
	} {
		if _, err := prometheus.New(cfg); !errors.Is(err, prometheus.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}
