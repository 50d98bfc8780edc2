package registry_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/registry"
)

// static is a Resolver over a fixed list: the transport's behaviour does
// not depend on where instances come from (TestClientThroughRegistry
// covers the real watcher).
type static []registry.Instance

func (s static) Select(name string, sel registry.Selector) ([]registry.Instance, error) {
	var out []registry.Instance
	for _, in := range s {
		if in.Name == name {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("service %q: %w", name, registry.ErrNoInstances)
	}
	return out, nil
}

// backend is an httptest server that records what it received.
type backend struct {
	*httptest.Server
	id string

	mu     sync.Mutex
	bodies []string
}

func newBackend(t *testing.T, id string, h func(b *backend, w http.ResponseWriter, r *http.Request)) *backend {
	b := &backend{id: id}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies = append(b.bodies, string(body))
		b.mu.Unlock()
		if h != nil {
			h(b, w, r)
			return
		}
		fmt.Fprint(w, id)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.bodies)
}

func (b *backend) instance() registry.Instance {
	return registry.Instance{Name: "inventory", ID: b.id, Addr: b.Listener.Addr().String()}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// hangUp answers by dropping the connection after reading the request.
func hangUp(_ *backend, w http.ResponseWriter, _ *http.Request) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		c.Close()
	}
}

func unavailable(_ *backend, w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "draining", http.StatusServiceUnavailable)
}

func newClient(t *testing.T, r registry.Resolver) *http.Client {
	c := registry.NewClient(registry.TransportConfig{Resolver: r})
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func do(t *testing.T, c *http.Client, method, url, body string, header ...string) (string, int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, nil
}

func TestTransportRoundRobin(t *testing.T) {
	a, b, c := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
	client := newClient(t, static{a.instance(), b.instance(), c.instance()})

	var got []string
	for range 6 {
		body, _, err := do(t, client, "GET", "http://inventory/events", "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, body)
	}
	if s := strings.Join(got, ""); s != "abcabc" {
		t.Fatalf("order %q, want abcabc", s)
	}
}

func TestTransportRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    func(*backend, http.ResponseWriter, *http.Request) // nil: dead address
		method   string
		header   []string
		wantBody string // "" means an error or the first instance's status
		wantCode int
	}{
		{"GET, dead instance", nil, "GET", nil, "ok", 200},
		{"POST, dead instance: never sent, safe", nil, "POST", nil, "ok", 200},
		{"PUT, connection dropped", hangUp, "PUT", nil, "ok", 200},
		{"POST, connection dropped: may have run", hangUp, "POST", nil, "", 0},
		{"POST with Idempotency-Key, connection dropped", hangUp, "POST", []string{"Idempotency-Key", "k1"}, "ok", 200},
		{"GET, 503", unavailable, "GET", nil, "ok", 200},
		{"POST, 503 is returned", unavailable, "POST", nil, "draining\n", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := newBackend(t, "z-good", func(_ *backend, w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
			first := registry.Instance{Name: "inventory", ID: "a-first", Addr: deadAddr(t)}
			var firstB *backend
			if tc.first != nil {
				firstB = newBackend(t, "a-first", tc.first)
				first = firstB.instance()
			}
			client := newClient(t, static{first, good.instance()})

			body, code, err := do(t, client, tc.method, "http://inventory/orders", "payload", tc.header...)
			if tc.wantCode == 0 {
				if err == nil {
					t.Fatalf("got %d %q, want an error", code, body)
				}
				if good.hits() != 0 {
					t.Fatal("non-idempotent request was resent to another instance")
				}
				return
			}
			if err != nil || code != tc.wantCode || body != tc.wantBody {
				t.Fatalf("got %d %q %v, want %d %q", code, body, err, tc.wantCode, tc.wantBody)
			}
			if tc.wantBody == "ok" {
				good.mu.Lock()
				defer good.mu.Unlock()
				if len(good.bodies) != 1 || good.bodies[0] != "payload" {
					t.Fatalf("retried instance got bodies %q, want one full payload", good.bodies)
				}
			}
		})
	}
}

func TestTransportGivesUpAfterMaxAttempts(t *testing.T) {
	var dead static
	for i := range 5 {
		dead = append(dead, registry.Instance{Name: "inventory", ID: fmt.Sprint(i), Addr: deadAddr(t)})
	}
	var tried []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		tried = append(tried, r.URL.Host)
		return http.DefaultTransport.RoundTrip(r)
	})
	tr := registry.NewTransport(registry.TransportConfig{Resolver: dead, Base: base, MaxAttempts: 3})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://inventory/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip to dead instances succeeded")
	}
	if len(tried) != 3 || tried[0] == tried[1] || tried[1] == tried[2] {
		t.Fatalf("tried %v, want 3 distinct instances", tried)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportPassesThroughOtherHosts(t *testing.T) {
	direct := newBackend(t, "direct", nil)
	client := newClient(t, static{})
	body, _, err := do(t, client, "GET", direct.URL, "")
	if err != nil || body != "direct" {
		t.Fatalf("direct request: %q %v", body, err)
	}
	_, _, err = do(t, client, "GET", "http://inventory/", "")
	if !errors.Is(err, registry.ErrNoInstances) {
		t.Fatalf("unknown service: %v, want ErrNoInstances", err)
	}
}

// The whole path: registrars announce real servers, a watcher finds them,
// the client reaches both, per-request tags route to the build's own.
func TestClientThroughRegistry(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := srv.Client(t)
	shared := newBackend(t, "shared", nil)
	build := newBackend(t, "build", nil)
	sharedIn, buildIn := shared.instance(), build.instance()
	buildIn.Tags = []string{"build-7"}
	for _, in := range []registry.Instance{sharedIn, buildIn} {
		r := newRegistrar(t, etcd, in, 0)
		goRun(t, r.Run)
		waitRegistered(t, r)
	}
	w := startWatcher(t, etcd, nil)
	waitFor(t, w, "inventory", 5*time.Second, "both", hasIDs("build,shared"))

	client := newClient(t, w)
	seen := map[string]bool{}
	for range 2 {
		body, _, err := do(t, client, "GET", "http://inventory/", "")
		if err != nil {
			t.Fatal(err)
		}
		seen[body] = true
	}
	if !seen["shared"] || !seen["build"] {
		t.Fatalf("round robin reached %v, want both", seen)
	}

	ctx := registry.WithSelector(t.Context(), registry.Selector{Tag: "build-7", Fallback: registry.FallbackUntagged})
	for range 3 {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://inventory/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "build" {
			t.Fatalf("tagged request reached %q, want build", b)
		}
	}
}
