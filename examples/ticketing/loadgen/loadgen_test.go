package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/inventory"
)

// newInventory is a real inventory with the demo events, in memory.
func newInventory(t *testing.T) (*httptest.Server, *inventory.Store) {
	t.Helper()
	store, err := inventory.Open(t.Context(), inventory.StoreConfig{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mux := http.NewServeMux()
	inventory.NewHandler(inventory.HandlerConfig{Store: store}).Register(mux)
	srv := httptest.NewServer(api.JSONErrors(mux))
	t.Cleanup(srv.Close)
	return srv, store
}

func TestRunAgainstInventory(t *testing.T) {
	srv, store := newInventory(t)
	var progress atomic.Int32
	rep, err := Run(t.Context(), Config{
		Target:           srv.URL,
		Profile:          Spike,
		Rate:             100,
		Peak:             400,
		Duration:         1500 * time.Millisecond,
		MaxRequests:      300,
		Concurrency:      16,
		ProgressInterval: 200 * time.Millisecond,
		Progress:         func(Progress) { progress.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", rep)
	if rep.Sent == 0 || rep.Sent > 300 {
		t.Errorf("sent %d, want 1..300", rep.Sent)
	}
	if rep.OK+rep.Rejected+rep.Failed+rep.Canceled != rep.Sent {
		t.Errorf("outcomes %d+%d+%d+%d do not add up to %d sent", rep.OK, rep.Rejected, rep.Failed, rep.Canceled, rep.Sent)
	}
	if rep.Failed != 0 || rep.Canceled != 0 {
		t.Errorf("%d failed, %d canceled against a healthy inventory: %v", rep.Failed, rep.Canceled, rep.ByStatus)
	}
	sum := 0
	for _, n := range rep.ByStatus {
		sum += n
	}
	if sum != rep.Sent {
		t.Errorf("by status %v adds up to %d, want %d", rep.ByStatus, sum, rep.Sent)
	}
	l := rep.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency percentiles out of order: %+v", l)
	}
	if rep.Rate <= 0 || rep.Elapsed <= 0 {
		t.Errorf("rate %v over %v", rep.Rate, rep.Elapsed)
	}
	if progress.Load() == 0 {
		t.Error("no progress reported")
	}
	// The buys in the mix reached the store.
	orders, err := store.Orders(t.Context(), FlashSaleEvent)
	if err != nil {
		t.Fatal(err)
	}
	if created := rep.ByStatus["201"]; len(orders) != created {
		t.Errorf("%d orders stored, report says %d created", len(orders), created)
	}
	for _, line := range []string{"target", "requests", "latency", "p99"} {
		if !strings.Contains(rep.String(), line) {
			t.Errorf("summary lacks %q:\n%s", line, rep)
		}
	}
}

func TestRunStopsAtMaxRequests(t *testing.T) {
	srv, _ := newInventory(t)
	mix, _ := NamedMix("browse")
	rep, err := Run(t.Context(), Config{Target: srv.URL, Rate: 1000, Duration: 10 * time.Second, MaxRequests: 50, Mix: mix})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 50 || rep.OK != 50 {
		t.Errorf("sent %d, ok %d; want 50 and 50", rep.Sent, rep.OK)
	}
	if rep.Elapsed > 5*time.Second {
		t.Errorf("took %v for 50 requests at 1000/s: did not stop at MaxRequests", rep.Elapsed)
	}
}

func TestRunCountsRejectedAndFailed(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(http.StatusConflict)
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	rep, err := Run(t.Context(), Config{Target: srv.URL, Rate: 1000, MaxRequests: 30, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != 10 || rep.Rejected != 10 || rep.Failed != 10 || rep.ByStatus["503"] != 10 {
		t.Errorf("ok %d rejected %d failed %d (%v); want 10 each", rep.OK, rep.Rejected, rep.Failed, rep.ByStatus)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, target := range []string{
		"http://192.0.2.1:8080",
		"http://[2001:db8::1]/",
		"https://10.0.0.1",
	} {
		_, err := Run(t.Context(), Config{Target: target, Duration: time.Second})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Run(%s): err = %v, want ErrNotLoopback", target, err)
		}
	}
	for _, target := range []string{"", "ftp://127.0.0.1", "127.0.0.1:8080", "http://"} {
		if _, err := Run(t.Context(), Config{Target: target}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Run(%q): err = %v, want ErrInvalidConfig", target, err)
		}
	}
}

// rewrite sends every request to addr, as a registry transport resolving
// a service name to a registered address does.
type rewrite struct {
	addr string
	base http.RoundTripper
}

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = r.addr
	return r.base.RoundTrip(out)
}

func TestRefusesNonLoopbackInstance(t *testing.T) {
	srv, _ := newInventory(t)
	tests := []struct {
		addr    string
		refused bool
	}{
		{"192.0.2.1:80", true},
		{strings.TrimPrefix(srv.URL, "http://"), false},
	}
	for _, tt := range tests {
		client := &http.Client{Transport: rewrite{addr: tt.addr, base: NewTransport()}, Timeout: 5 * time.Second}
		rep, err := Run(t.Context(), Config{Target: "http://inventory", Client: client, Rate: 100, MaxRequests: 5})
		if refused := errors.Is(err, ErrNotLoopback); refused != tt.refused {
			t.Errorf("instance %s: err = %v, refused = %v, want %v", tt.addr, err, refused, tt.refused)
		}
		if !tt.refused && rep.OK != 5 {
			t.Errorf("instance %s: %d ok, want 5 (%v)", tt.addr, rep.OK, rep.ByStatus)
		}
	}
}

func TestProfileRates(t *testing.T) {
	const total = 100 * time.Second
	tests := []struct {
		profile Profile
		at      time.Duration
		want    float64
	}{
		{Steady, 0, 10},
		{Steady, 99 * time.Second, 10},
		{Ramp, 0, 10},
		{Ramp, 50 * time.Second, 55},
		{Ramp, total, 100},
		{Spike, 19 * time.Second, 10},
		{Spike, 20 * time.Second, 100},
		{Spike, 59 * time.Second, 100},
		{Spike, 60 * time.Second, 10},
	}
	for _, tt := range tests {
		if got := tt.profile.RateAt(tt.at, total, 10, 100); got != tt.want {
			t.Errorf("%s at %v = %v, want %v", tt.profile, tt.at, got, tt.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"profile":     {Target: "http://127.0.0.1:1", Profile: "wave"},
		"duration":    {Target: "http://127.0.0.1:1", Duration: 2 * MaxDuration},
		"requests":    {Target: "http://127.0.0.1:1", MaxRequests: -1},
		"rate":        {Target: "http://127.0.0.1:1", Rate: -5},
		"empty mix":   {Target: "http://127.0.0.1:1", Mix: Mix{{Name: "x", Weight: 0, Method: "GET", Path: "/"}}},
		"mix op path": {Target: "http://127.0.0.1:1", Mix: Mix{{Name: "x", Weight: 1, Method: "GET", Path: "events"}}},
	} {
		if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := NamedMix("nope"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NamedMix(nope): %v", err)
	}
}

func TestInterruptReturnsPartialReport(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Config{Target: slow.URL, Rate: 50, Duration: 10 * time.Second, Concurrency: 4})
	if err == nil {
		t.Fatal("Run returned no error after its context ended")
	}
	if rep.Sent == 0 || rep.Canceled != rep.Sent || rep.Failed != 0 {
		t.Errorf("partial report: sent %d canceled %d failed %d; want every in-flight request canceled, none failed", rep.Sent, rep.Canceled, rep.Failed)
	}
}
