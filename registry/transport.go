package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Transport and of NewClient.
const (
	DefaultMaxAttempts   = 3
	DefaultClientTimeout = 10 * time.Second
)

// Resolver returns the instances a request to a service may go to. A
// *Watcher is one.
type Resolver interface {
	Select(name string, s Selector) ([]Instance, error)
}

var _ Resolver = (*Watcher)(nil)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Resolver maps service names to instances. Required.
	Resolver Resolver
	// Selector applies to every request unless its context carries one
	// (see WithSelector).
	Selector Selector
	// Base sends the requests. nil means an http.Transport with dial,
	// TLS and response-header timeouts and no proxy.
	Base http.RoundTripper
	// MaxAttempts bounds the instances one request is tried on. 0 means
	// DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
}

// Transport is an http.RoundTripper that sends http://<service>/path to
// an instance of <service>, round-robin per service.
//
// A request is tried on up to MaxAttempts distinct instances when:
//   - the connection to an instance could not be established (any method:
//     the instance never saw the request, so a POST is as safe to resend as
//     a GET); this covers an instance that crashed but whose registration
//     has not expired yet;
//   - the request is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE,
//     or any request with an Idempotency-Key header) and failed after
//     connecting, or the instance answered 503 Service Unavailable (it is
//     draining or overloaded; another may not be).
//
// A 502 or any other status is returned as is: an instance is not a
// proxy, so a 502 reports a failure of its own dependency that another
// instance would most likely repeat. Retries need a replayable body: a
// request with a body but no GetBody is tried once. When every attempt
// fails, the last response or error is returned.
//
// Requests whose host has a port or a dot, or is "localhost", or whose
// scheme is not http, are not registry names and go straight to Base.
type Transport struct {
	resolver    Resolver
	selector    Selector
	base        http.RoundTripper
	maxAttempts int

	mu   sync.Mutex
	next map[string]*atomic.Uint64 // round-robin position per service
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport. A nil Resolver makes every registry
// request fail with ErrNoInstances.
func NewTransport(cfg TransportConfig) *Transport {
	base := cfg.Base
	if base == nil {
		base = defaultBase()
	}
	attempts := cfg.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	return &Transport{
		resolver:    cfg.Resolver,
		selector:    cfg.Selector,
		base:        base,
		maxAttempts: attempts,
		next:        map[string]*atomic.Uint64{},
	}
}

// NewClient returns an http.Client over NewTransport(cfg) with a
// DefaultClientTimeout overall timeout per request, retries included.
func NewClient(cfg TransportConfig) *http.Client {
	return &http.Client{Transport: NewTransport(cfg), Timeout: DefaultClientTimeout}
}

func defaultBase() *http.Transport {
	return &http.Transport{
		// Instances are on the same network: a dial that takes seconds is
		// to a dead host, and the time is better spent on another one.
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

type selectorKey struct{}

// WithSelector returns a context whose requests through a Transport use s
// instead of the Transport's Selector: a service handling a request from
// a tagged test environment can keep its outgoing calls in it.
func WithSelector(ctx context.Context, s Selector) context.Context {
	return context.WithValue(ctx, selectorKey{}, s)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	name := req.URL.Host
	if !isServiceName(req.URL.Scheme, name) {
		return t.base.RoundTrip(req)
	}
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if t.resolver == nil {
		closeBody()
		return nil, fmt.Errorf("registry: service %q: no resolver: %w", name, ErrNoInstances)
	}
	sel := t.selector
	if s, ok := req.Context().Value(selectorKey{}).(Selector); ok {
		sel = s
	}
	instances, err := t.resolver.Select(name, sel)
	if err == nil && len(instances) == 0 {
		err = fmt.Errorf("registry: service %q: %w", name, ErrNoInstances)
	}
	if err != nil {
		closeBody()
		return nil, err
	}

	attempts := min(t.maxAttempts, len(instances))
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		attempts = 1
	}
	idempotent := isIdempotent(req)
	start := t.counter(name).Add(1) - 1

	var resp *http.Response
	for i := range attempts {
		inst := instances[(start+uint64(i))%uint64(len(instances))]
		out := req.Clone(req.Context())
		out.URL.Host = inst.Addr
		if i > 0 && req.GetBody != nil {
			if out.Body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("registry: replay body: %w", err)
			}
		}
		resp, err = t.base.RoundTrip(out)
		last := i == attempts-1
		switch {
		case err != nil:
			if last || req.Context().Err() != nil || !(idempotent || isDialError(err)) {
				return nil, err
			}
		case resp.StatusCode == http.StatusServiceUnavailable && idempotent && !last:
			// Drain a little so the connection can be reused.
			io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		default:
			return resp, nil
		}
	}
	return resp, err
}

// CloseIdleConnections closes idle connections of Base, so
// http.Client.CloseIdleConnections works through a Transport.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) counter(name string) *atomic.Uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.next[name]
	if c == nil {
		c = new(atomic.Uint64)
		t.next[name] = c
	}
	return c
}

func isServiceName(scheme, host string) bool {
	return scheme == "http" && host != "" && host != "localhost" && !strings.ContainsAny(host, ".:[")
}

func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// isDialError reports whether err happened before anything was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
