package ticketing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/examples/ticketing/inventory"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// instance is a service started with Run on a free loopback port.
type instance struct {
	addr string
	stop func() error // cancels Run and returns what it returned
}

func start(t *testing.T, cfg Config) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(ShutdownTimeout + 5*time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run(%s): %v", cfg.Service, err)
		}
	})
	return &instance{addr: ln.Addr().String(), stop: stop}
}

// client is a test HTTP client whose connections are closed at the end,
// so that no goroutine outlives the test.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func call(t *testing.T, c *http.Client, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// Two inventory instances on one SQLite file, a flash sale of 100 tickets
// and 400 buyers at once: exactly the stock is sold, every confirmed order
// is stored with its tickets, everyone else is told it is sold out.
func TestConcurrentBuyersNeverOversell(t *testing.T) {
	const stock, buyers = 100, 400
	db := filepath.Join(t.TempDir(), "inventory.db")
	store, err := inventory.Open(t.Context(), inventory.StoreConfig{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.AddEvent(t.Context(), api.Event{ID: "sale", Name: "Sale", Capacity: stock}); err != nil {
		t.Fatal(err)
	}
	instances := []*instance{
		start(t, Config{Service: Inventory, DB: db}),
		start(t, Config{Service: Inventory, DB: db}),
	}
	c := client(t)

	type result struct {
		status int
		order  api.Order
		err    api.Error
	}
	results := make([]result, buyers)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range buyers {
		wg.Go(func() {
			// Quantities vary, but more than stock buyers want one ticket,
			// so the last ticket always finds a taker.
			qty := 1
			if i%4 == 0 {
				qty = 2
			}
			url := "http://" + instances[i%2].addr + "/events/sale/orders"
			body := fmt.Sprintf(`{"quantity":%d,"buyer":"buyer-%d"}`, qty, i)
			<-gate
			req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("buyer %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			r := result{status: resp.StatusCode}
			if resp.StatusCode == http.StatusCreated {
				err = json.NewDecoder(resp.Body).Decode(&r.order)
			} else {
				err = json.NewDecoder(resp.Body).Decode(&r.err)
			}
			if err != nil {
				t.Errorf("buyer %d: decode %d answer: %v", i, resp.StatusCode, err)
			}
			results[i] = r
		})
	}
	close(gate)
	wg.Wait()

	sold, created, refused := 0, map[int64]api.Order{}, 0
	for i, r := range results {
		switch r.status {
		case http.StatusCreated:
			sold += len(r.order.Tickets)
			created[r.order.ID] = r.order
		case http.StatusConflict:
			refused++
			if r.err.Code != "sold_out" && r.err.Code != "not_enough_stock" {
				t.Errorf("buyer %d: 409 with code %q", i, r.err.Code)
			}
		default:
			t.Errorf("buyer %d: status %d %+v, want 201 or 409", i, r.status, r.err)
		}
	}
	if sold != stock {
		t.Errorf("%d tickets sold, want exactly %d", sold, stock)
	}
	if len(created)+refused != buyers {
		t.Errorf("%d created + %d refused != %d buyers", len(created), refused, buyers)
	}
	e, err := store.Event(t.Context(), "sale")
	if err != nil || e.Stock != 0 {
		t.Errorf("stock left = %d (%v), want 0", e.Stock, err)
	}
	stored, err := store.Orders(t.Context(), "sale")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(created) {
		t.Errorf("%d orders stored, %d confirmed to buyers", len(stored), len(created))
	}
	codes := map[string]bool{}
	for _, o := range stored {
		want, ok := created[o.ID]
		slices.Sort(want.Tickets)
		if !ok || !slices.Equal(o.Tickets, want.Tickets) || o.Buyer != want.Buyer {
			t.Errorf("stored order %+v does not match the confirmation %+v", o, want)
		}
		for _, code := range o.Tickets {
			codes[code] = true
		}
	}
	if len(codes) != stock {
		t.Errorf("%d distinct ticket codes, want %d", len(codes), stock)
	}
}

// watch follows the registry from the test's side.
func watch(t *testing.T, etcd *etcdtest.Server) *registry.Watcher {
	t.Helper()
	w := registry.NewWatcher(registry.WatcherConfig{Client: etcd.Client(t)})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func waitInstances(t *testing.T, w *registry.Watcher, name string, n int) []registry.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []registry.Instance
	err := w.WaitInstances(ctx, name, func(in []registry.Instance) bool { got = in; return len(in) == n })
	if err != nil {
		t.Fatalf("waiting for %d %s instances, have %v: %v", n, name, got, err)
	}
	return got
}

func TestCheckpointThroughRegistry(t *testing.T) {
	etcd := etcdtest.Start(t)
	w := watch(t, etcd)
	eps := etcd.Endpoints()
	db := filepath.Join(t.TempDir(), "inventory.db")
	inv1 := start(t, Config{Service: Inventory, Etcd: eps, ID: "inventory-1", DB: db, Version: "v7", Tags: []string{"blue"}})
	inv2 := start(t, Config{Service: Inventory, Etcd: eps, ID: "inventory-2", DB: db})
	got := waitInstances(t, w, Inventory, 2)
	// Checkpoint registers only once its registry cache is filled, which
	// now includes both inventories.
	cp := start(t, Config{Service: Checkpoint, Etcd: eps, ID: "checkpoint-1"})

	if in := got[0]; in.ID != "inventory-1" || in.Addr != inv1.addr || in.Version != "v7" || in.Env != DefaultEnv ||
		!slices.Equal(in.Tags, []string{"blue"}) || in.Started.IsZero() {
		t.Errorf("registered %+v, want inventory-1 at %s, v7, env dev, tag blue", in, inv1.addr)
	}
	waitInstances(t, w, Checkpoint, 1)

	c := client(t)
	var order api.Order
	if s := call(t, c, "POST", "http://"+inv1.addr+"/events/"+inventory.FlashSaleEventID+"/orders", `{"quantity":6,"buyer":"ann"}`, &order); s != 201 {
		t.Fatalf("buy: %d", s)
	}
	checkin := func(code string) (int, api.Error) {
		var e api.Error
		status := call(t, c, "POST", "http://"+cp.addr+"/checkins", `{"code":"`+code+`"}`, &e)
		return status, e
	}
	if s, e := checkin(order.Tickets[0]); s != 200 {
		t.Fatalf("check in: %d %+v", s, e)
	}
	if s, e := checkin(order.Tickets[0]); s != 409 || e.Code != "already_checked_in" {
		t.Errorf("second check in: %d %+v, want 409", s, e)
	}
	if s, e := checkin("NOSUCHTICKET"); s != 404 || e.Code != "unknown_ticket" {
		t.Errorf("unknown ticket: %d %+v, want 404", s, e)
	}

	// Stopping an instance deregisters it before Run returns.
	if err := inv2.stop(); err != nil {
		t.Fatal(err)
	}
	resp, err := etcd.Client(t).Get(t.Context(), registry.DefaultPrefix+"inventory/inventory-2")
	if err != nil || resp.Count != 0 {
		t.Fatalf("inventory-2 still registered after Run returned: %v %v", resp, err)
	}
	waitInstances(t, w, Inventory, 1)
	for _, code := range order.Tickets[1:] {
		if s, e := checkin(code); s != 200 {
			t.Errorf("check in with one inventory left: %d %+v", s, e)
		}
	}

	// With no inventory at all, the gate says so clearly.
	if err := inv1.stop(); err != nil {
		t.Fatal(err)
	}
	waitInstances(t, w, Inventory, 0)
	// Checkpoint's cache may lag the test's by a moment, during which it
	// still tries the stopped instance and reports it unreachable.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, e := checkin(order.Tickets[1])
		if s == 503 && e.Code == "inventory_unavailable" {
			break
		}
		if s != 502 || e.Code != "inventory_unreachable" || time.Now().After(deadline) {
			t.Fatalf("no inventory: %d %+v, want 503 inventory_unavailable", s, e)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is an access log sink the test reads while Run writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestObservability(t *testing.T) {
	var access syncBuffer
	inv := start(t, Config{Service: Inventory, AccessLog: &access})
	c := client(t)
	base := "http://" + inv.addr

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/events/"+inventory.FlashSaleEventID, nil)
	req.Header.Set(instrument.TraceparentHeader, "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(instrument.TraceIDHeader); resp.StatusCode != 200 || got != traceID {
		t.Errorf("GET event: %d, X-Trace-Id %q, want 200 and %s", resp.StatusCode, got, traceID)
	}
	var e api.Error
	if s := call(t, c, "GET", base+"/events/nope", "", &e); s != 404 || e.Code != "event_not_found" {
		t.Errorf("unknown event: %d %+v", s, e)
	}
	var health map[string]any
	if s := call(t, c, "GET", base+"/healthz", "", &health); s != 200 || health["status"] != "ok" || health["service"] != Inventory {
		t.Errorf("healthz: %d %v", s, health)
	}

	req, _ = http.NewRequestWithContext(t.Context(), "GET", base+"/metrics", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`http_requests_total{code="200",route="GET /events/{id}",service="inventory"} 1`,
		`http_requests_total{code="404",route="GET /events/{id}",service="inventory"} 1`,
		`http_requests_total{code="200",route="GET /healthz",service="inventory"} 1`,
		`http_request_duration_seconds_count{route="GET /events/{id}",service="inventory"} 2`,
		`process_cpu_seconds_total`,
		`go_goroutines`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Lines are written as requests finish, which may be just after the
	// client has its answer.
	deadline := time.Now().Add(5 * time.Second)
	for len(access.lines()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := access.lines()
	if len(lines) < 4 {
		t.Fatalf("%d access log lines, want 4: %q", len(lines), lines)
	}
	var first instrument.AccessLine
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("access log line %q: %v", lines[0], err)
	}
	if first.TraceID != traceID || first.Service != Inventory || first.Route != "GET /events/{id}" || first.Status != 200 {
		t.Errorf("access log line %+v, want trace %s on GET /events/{id} 200", first, traceID)
	}
	for _, l := range lines[1:] {
		var line instrument.AccessLine
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.TraceID == "" || line.TraceID == traceID {
			t.Errorf("access log line %q: %v; want its own trace id", l, err)
		}
	}
}

func TestRunConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no service":                 {},
		"unknown service":            {Service: "payments"},
		"db on checkpoint":           {Service: Checkpoint, DB: "x.db", InventoryURL: "http://127.0.0.1:1"},
		"checkpoint without lookup":  {Service: Checkpoint},
		"inventory url on inventory": {Service: Inventory, InventoryURL: "http://127.0.0.1:1"},
		"bad id":                     {Service: Inventory, ID: "a/b"},
		"bad tag":                    {Service: Inventory, Tags: []string{"a,b"}},
		"bad advertise":              {Service: Inventory, Advertise: "nohost"},
		"unspecified addr":           {Service: Inventory, Listen: "0.0.0.0:0", Etcd: []string{"http://127.0.0.1:1"}},
		"ktrace not a URL":           {Service: Inventory, KTrace: "127.0.0.1:8080"},
		"ktrace-ca with http":        {Service: Inventory, KTrace: "http://127.0.0.1:8080", KTraceCA: "ca.pem"},
	} {
		if err := Run(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	// A busy port is a plain error, not a hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Run(t.Context(), Config{Service: Inventory, Listen: ln.Addr().String()}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("busy port: err = %v", err)
	}
}

// A checkpoint stopped while etcd never answers returns nil, as any stop
// does, instead of hanging or failing.
func TestRunStopsWhileWaitingForRegistry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nothing answers there once closed
	ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := Run(ctx, Config{Service: Checkpoint, Etcd: []string{"http://" + dead}}); err != nil {
		t.Errorf("Run = %v, want nil after its context ended", err)
	}
}
