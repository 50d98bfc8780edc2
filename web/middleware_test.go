package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
)

func TestHealthAndReadiness(t *testing.T) {
	var ready atomic.Bool
	e := newEnv(t, func(c *Config) {
		c.Ready = func(context.Context) error {
			if !ready.Load() {
				return errors.New("etcd: not connected")
			}
			return nil
		}
	})
	if r := e.do(nil, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("/healthz: %d", r.status)
	}
	r := e.do(nil, "GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(decodeError(t, r).Error, "etcd: not connected") {
		t.Fatalf("/readyz before ready: %d %s, want 503 with the reason", r.status, r.body)
	}
	ready.Store(true)
	if r := e.do(nil, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("/readyz when ready: %d", r.status)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.do(nil, "GET", "/healthz", "", nil)
	e.do(nil, "GET", "/api/v1/services", "", nil)
	e.do(nil, "GET", "/some/random/path/"+strings.Repeat("x", 20), "", nil)
	r := e.do(nil, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`kplane_http_requests_total{code="200",route="/healthz"} 1`,
		`kplane_http_requests_total{code="401",route="/api/v1/services"} 1`,
		`kplane_http_requests_total{code="404",route="unmatched"} 1`,
		`kplane_http_request_duration_seconds_count{route="/healthz"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(r.body, "xxxxxxxx") {
		t.Error("a raw path became a metric label")
	}

	// The same registry cannot take a second server's metrics.
	if _, err := New(Config{Auth: e.auth, Registerer: e.reg}); err == nil {
		t.Error("registering web metrics twice on one registry succeeded")
	}
	// With no Gatherer, /metrics still answers (an empty registry).
	bare := newEnv(t, func(c *Config) { c.Registerer, c.Gatherer = nil, nil })
	if r := bare.do(nil, "GET", "/metrics", "", nil); r.status != 200 || strings.Contains(r.body, "kplane_http") {
		t.Errorf("/metrics without a gatherer: %d %q", r.status, r.body)
	}
}

func TestRequestLogsCarryTraceIDAndNoSecrets(t *testing.T) {
	e := newEnv(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.do(nil, "GET", "/api/v1/services", e.tokens[auth.Viewer], nil,
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if r.header.Get("X-Request-ID") != traceID {
		t.Fatalf("X-Request-ID %q, want the traceparent's trace id", r.header.Get("X-Request-ID"))
	}
	logs := e.logs.String()
	line := ""
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `msg="http request"`) && strings.Contains(l, traceID) {
			line = l
		}
	}
	for _, want := range []string{"method=GET", "route=/api/v1/services", "status=200", "duration=", "client=127.0.0.1"} {
		if !strings.Contains(line, want) {
			t.Errorf("request log line %q lacks %s", line, want)
		}
	}
	if strings.Contains(logs, e.tokens[auth.Viewer]) {
		t.Fatal("the bearer token appears in the logs")
	}

	r = e.do(nil, "GET", "/healthz", "", nil, "X-Request-ID", "req-42")
	if r.header.Get("X-Request-ID") != "req-42" {
		t.Fatalf("caller's X-Request-ID not kept: %q", r.header.Get("X-Request-ID"))
	}
	r = e.do(nil, "GET", "/healthz", "", nil, "X-Request-ID", "evil\" injected=1")
	if id := r.header.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("unsafe X-Request-ID was not replaced by a generated id: %q", id)
	}
}

func TestRecoveryAnswersJSON500WithoutStack(t *testing.T) {
	e := newEnv(t)
	// A route that panics stands in for a bug in any handler.
	e.srv.engine.GET("/test/panic", func(*gin.Context) { panic("secret internal detail") })
	r := e.do(nil, "GET", "/test/panic", "", nil, "X-Request-ID", "panic-trace")
	if r.status != 500 {
		t.Fatalf("status %d, want 500", r.status)
	}
	if eb := decodeError(t, r); eb != (errorBody{Error: "internal error", Code: "internal"}) {
		t.Fatalf("body %+v", eb)
	}
	if strings.Contains(r.body, "secret") || strings.Contains(r.body, "goroutine") {
		t.Fatalf("500 body leaks the panic: %s", r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "secret internal detail") || !strings.Contains(logs, "runtime/debug.Stack") || !strings.Contains(logs, "trace_id=panic-trace") {
		t.Fatalf("panic log lacks the panic, its stack or the trace id:\n%s", logs)
	}
	// The server survives.
	if r := e.do(nil, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("after a panic /healthz: %d", r.status)
	}
}

func TestOversizedBodyGets413(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	big := `{"name":"bob","password":"long enough","role":"viewer","pad":"` + strings.Repeat("x", 4096) + `"}`
	// With Content-Length: rejected before the handler runs.
	r := e.do(nil, "POST", "/api/v1/users", e.tokens[auth.Admin], strings.NewReader(big), "Content-Type", "application/json")
	if r.status != http.StatusRequestEntityTooLarge || decodeError(t, r).Code != "too_large" {
		t.Fatalf("sized body: %d %s, want 413 too_large", r.status, r.body)
	}
	// Chunked (no Content-Length): rejected while reading.
	r = e.do(nil, "POST", "/api/v1/users", e.tokens[auth.Admin], io.MultiReader(bytes.NewReader([]byte(big))), "Content-Type", "application/json")
	if r.status != http.StatusRequestEntityTooLarge || decodeError(t, r).Code != "too_large" {
		t.Fatalf("chunked body: %d %s, want 413 too_large", r.status, r.body)
	}
	if users, _ := e.auth.ListUsers(t.Context()); len(users) != len(auth.Roles()) {
		t.Fatal("an oversized request created a user")
	}
}

func TestDefaultBodyLimitIsOneMiB(t *testing.T) {
	e := newEnv(t)
	pad := func(n int) string {
		return `{"name":"carol","password":"long enough","role":"viewer","x":"` + strings.Repeat("x", n) + `"}`
	}
	// Just under 1 MiB gets through the limit (and fails on the unknown
	// field instead); just over does not.
	if r := e.do(nil, "POST", "/api/v1/users", e.tokens[auth.Admin], strings.NewReader(pad(1<<20-200))); r.status != http.StatusBadRequest {
		t.Fatalf("body under 1 MiB: %d %s, want 400 for the unknown field", r.status, r.body)
	}
	if r := e.do(nil, "POST", "/api/v1/users", e.tokens[auth.Admin], strings.NewReader(pad(1<<20))); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over 1 MiB: %d, want 413", r.status)
	}
}

func TestNewRequiresAuth(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without Auth succeeded")
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/login", "", nil)
	if r.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("login page can be framed: %v", r.header)
	}
}
