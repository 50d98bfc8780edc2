package scrape_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kplane/kplane/examples/ticketing"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/scout/scrape"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// exporter serves a /metrics page whose counters the test sets.
type exporter struct {
	mu       sync.Mutex
	requests float64 // GET /events
	scrapes  float64 // GET /metrics, never traffic
	cpu, rss float64
	fail     bool
	srv      *httptest.Server
}

func newExporter(t *testing.T) *exporter {
	e := &exporter{rss: 64 << 20}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.fail {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `# TYPE http_requests_total counter
http_requests_total{code="200",route="GET /events",service="inventory"} %g
http_requests_total{code="200",route="GET /metrics",service="inventory"} %g
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total %g
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes %g
`, e.requests, e.scrapes, e.cpu, e.rss)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *exporter) set(f func(e *exporter)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *exporter) instance(id string) registry.Instance {
	return registry.Instance{ID: id, Name: "inventory", Addr: e.srv.Listener.Addr().String()}
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func TestRatesAcrossTicks(t *testing.T) {
	a, b := newExporter(t), newExporter(t)
	src, err := scrape.New(scrape.Config{CPULimit: 2, MemoryLimit: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fleet := func(ins ...registry.Instance) []registry.Service {
		return []registry.Service{{Name: "inventory", Instances: ins}}
	}
	type want struct{ qps, cpu, mem string } // value, or "missing: <reason>"
	steps := []struct {
		name  string
		at    time.Duration
		setup func()
		fleet []registry.Service
		want  want
	}{
		{
			name: "first tick warms up, memory known at once", at: 0,
			fleet: fleet(a.instance("a")),
			want:  want{qps: "missing: warming up", cpu: "missing: warming up", mem: "0.5"},
		},
		{
			name: "rate from the delta, scrapes excluded", at: 5 * time.Second,
			setup: func() { a.set(func(e *exporter) { e.requests, e.scrapes, e.cpu = 50, 100, 5 }) },
			fleet: fleet(a.instance("a")),
			want:  want{qps: "10", cpu: "0.5", mem: "0.5"},
		},
		{
			name: "a new instance is not yet rated; QPS extrapolated over both", at: 10 * time.Second,
			setup: func() { a.set(func(e *exporter) { e.requests, e.cpu = 100, 10 }) },
			fleet: fleet(a.instance("a"), b.instance("b")),
			want:  want{qps: "20", cpu: "0.5", mem: "0.5"},
		},
		{
			name: "counter reset counts from zero", at: 15 * time.Second,
			setup: func() {
				a.set(func(e *exporter) { e.requests, e.cpu = 25, 2.5 }) // restarted
				b.set(func(e *exporter) { e.requests, e.cpu, e.rss = 25, 2.5, 0 })
			},
			fleet: fleet(a.instance("a"), b.instance("b")),
			want:  want{qps: "10", cpu: "0.25", mem: "0.25"}, // each 25 requests in 5 s
		},
		{
			name: "one instance failing: the other's rate stands for both", at: 20 * time.Second,
			setup: func() {
				a.set(func(e *exporter) { e.fail = true })
				b.set(func(e *exporter) { e.requests, e.cpu = 75, 5 })
			},
			fleet: fleet(a.instance("a"), b.instance("b")),
			want:  want{qps: "20", cpu: "0.25", mem: "0"},
		},
		{
			name: "no instance answering is missing, never zero", at: 25 * time.Second,
			setup: func() { b.set(func(e *exporter) { e.fail = true }) },
			fleet: fleet(a.instance("a"), b.instance("b")),
			want:  want{qps: "missing: no instance answered", cpu: "missing: 500", mem: "missing: no instance answered"},
		},
		{
			name: "a failed instance's last reading still gives a rate", at: 30 * time.Second,
			setup: func() { a.set(func(e *exporter) { e.fail, e.requests = false, 125 }) },
			fleet: fleet(a.instance("a"), b.instance("b")),
			want:  want{qps: "13.33", cpu: "0", mem: "0.5"}, // 100 requests in 15 s, times 2 instances
		},
		{
			name: "no instances registered", at: 35 * time.Second,
			fleet: fleet(),
			want:  want{qps: "missing: no instances registered", cpu: "missing: no instances", mem: "missing: no instances"},
		},
		{
			name: "a deregistered instance starts afresh", at: 40 * time.Second,
			fleet: fleet(a.instance("a")),
			want:  want{qps: "missing: warming up", cpu: "missing: warming up", mem: "0.5"},
		},
	}
	for _, st := range steps {
		if st.setup != nil {
			st.setup()
		}
		got, err := src.Collect(t.Context(), st.fleet, t0.Add(st.at))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		inv := got["inventory"]
		for m, w := range map[scout.Metric]string{scout.QPS: st.want.qps, scout.CPU: st.want.cpu, scout.Memory: st.want.mem} {
			s := inv[m]
			if reason, ok := strings.CutPrefix(w, "missing: "); ok {
				if !s.Missing || !strings.Contains(s.Reason, reason) {
					t.Errorf("%s: %s = %s, want missing: %s", st.name, m, s, reason)
				}
			} else if s.Missing || s.String() != w || !s.Time.Equal(t0.Add(st.at)) {
				t.Errorf("%s: %s = %s at %v, want %s", st.name, m, s, s.Time, w)
			}
		}
	}
}

// An instance without the process collector has unknown CPU and memory.
func TestNoProcessMetricsIsMissing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `http_requests_total{route="GET /x"} 1`)
	}))
	defer srv.Close()
	src, _ := scrape.New(scrape.Config{})
	fleet := []registry.Service{{Name: "x", Instances: []registry.Instance{{ID: "x1", Name: "x", Addr: srv.Listener.Addr().String()}}}}
	for i := range 2 {
		got, err := src.Collect(t.Context(), fleet, t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if q := got["x"][scout.QPS]; q.Missing || q.Value != 0 {
				t.Errorf("QPS = %s, want 0", q)
			}
			for _, m := range []scout.Metric{scout.CPU, scout.Memory} {
				if s := got["x"][m]; !s.Missing || !strings.Contains(s.Reason, "export no process_") {
					t.Errorf("%s = %s, want missing: export no process_...", m, s)
				}
			}
		}
	}
}

// Real inventory instances, registered in a real (embedded) etcd and found
// through registry.Watcher, measured through scout: warming up first, then
// the load they serve, with scrapes not counted.
func TestRealInstancesThroughRegistry(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var addrs []string
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		cfg := ticketing.Config{Service: ticketing.Inventory, Listener: ln, Etcd: etcd.Endpoints(), ID: fmt.Sprintf("inventory-%d", i)}
		wg.Go(func() {
			if err := ticketing.Run(ctx, cfg); err != nil {
				t.Errorf("inventory: %v", err)
			}
		})
	}
	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd.Client(t)})
	wg.Go(func() { _ = w.Run(ctx) })
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	defer waitCancel()
	if err := w.WaitInstances(waitCtx, "inventory", func(ins []registry.Instance) bool { return len(ins) == 2 }); err != nil {
		t.Fatalf("instances not registered: %v", err)
	}

	src, err := scrape.New(scrape.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: w, Interval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Collect(ctx).Services["inventory"]
	if first.Instances != 2 {
		t.Errorf("instances = %d, want 2", first.Instances)
	}
	if q := first.Metrics[scout.QPS]; !q.Missing || !strings.Contains(q.Reason, "warming up") {
		t.Errorf("first QPS = %s, want missing: warming up", q)
	}
	if m := first.Metrics[scout.Memory]; m.Missing || m.Value <= 0 {
		t.Errorf("first memory = %s, want a present fraction", m)
	}

	idleSnap := s.Collect(ctx)
	idle := idleSnap.Services["inventory"].Metrics[scout.QPS]
	if idle.Missing || idle.Value != 0 {
		t.Errorf("idle QPS = %s, want 0: scrapes are not traffic", idle)
	}

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	const n = 100
	start := time.Now()
	for i := range n {
		resp, err := client.Get("http://" + addrs[i%2] + "/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	time.Sleep(200 * time.Millisecond)
	elapsed := time.Since(start)
	busy := s.Collect(ctx).Services["inventory"]
	q := busy.Metrics[scout.QPS]
	// n requests between the idle tick and this one, and nothing else.
	want := n / busy.Time.Sub(idleSnap.Time).Seconds()
	if q.Missing || q.Value < 0.75*want || q.Value > 1.25*want {
		t.Fatalf("QPS under load = %s, want about %.1f (%d requests in %v)", q, want, n, busy.Time.Sub(idleSnap.Time))
	}
	if c := busy.Metrics[scout.CPU]; c.Missing || c.Value < 0 {
		t.Errorf("CPU = %s, want a present fraction", c)
	}
	t.Logf("%d requests in %v → QPS %s", n, elapsed, q)
}
