package web

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/kplane/kplane/auth"
)

// wrongPassword posts a failed password sign-in for user with a fresh
// login form, from the test's one client address.
func (e *env) wrongPassword(user string) response {
	e.t.Helper()
	c := e.client()
	page := e.do(c, http.MethodGet, "/login", "", nil)
	return e.postForm(c, "/login", url.Values{"csrf": {formCSRF(e.t, page.body)}, "username": {user}, "password": {"not the password"}})
}

func TestLoginRateLimitPerUser(t *testing.T) {
	// The env's clock stands still, so no token comes back during the
	// test: exactly the burst gets through.
	e := newEnv(t, func(c *Config) {
		c.Login = LoginLimits{ClientRate: rate.Every(time.Minute), ClientBurst: 100, UserRate: rate.Every(30 * time.Second), UserBurst: 3}
	})
	for i := range 3 {
		if r := e.wrongPassword("viewer-user"); r.status != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d = %d, want 401", i+1, r.status)
		}
	}
	r := e.wrongPassword("viewer-user")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "30" || !strings.Contains(r.body, "Too many failed sign-ins") {
		t.Fatalf("4th failed sign-in = %d Retry-After %q, want 429 after 30 s\n%s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Even the right password waits: otherwise the limit would tell a
	// guesser when the guess was right.
	c := e.client()
	page := e.do(c, http.MethodGet, "/login", "", nil)
	r = e.postForm(c, "/login", url.Values{"csrf": {formCSRF(t, page.body)}, "username": {"Viewer-User"}, "password": {"password-viewer"}})
	if r.status != http.StatusTooManyRequests || cookieNamed(r, sessionCookie) != nil {
		t.Fatalf("right password while limited = %d, want 429 and no session", r.status)
	}
	// Other users, and token sign-ins from the same address, go on.
	if r := e.wrongPassword("developer-user"); r.status != http.StatusUnauthorized {
		t.Fatalf("other user = %d, want 401", r.status)
	}
	e.signIn(e.tokens[auth.Admin])
}

func TestLoginRateLimitPerClient(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Login = LoginLimits{ClientRate: rate.Every(10 * time.Second), ClientBurst: 4, UserRate: rate.Every(time.Second), UserBurst: 100}
	})
	// Successful sign-ins do not count.
	for range 10 {
		e.signIn(e.tokens[auth.Viewer])
	}
	for i, user := range []string{"a", "b", "c", "d"} {
		if r := e.wrongPassword(user); r.status != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d = %d, want 401", i+1, r.status)
		}
	}
	r := e.wrongPassword("e")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "10" {
		t.Fatalf("5th failure from one address = %d Retry-After %q, want 429 after 10 s", r.status, r.header.Get("Retry-After"))
	}
	// A token sign-in from the limited address waits too.
	c := e.client()
	page := e.do(c, http.MethodGet, "/login", "", nil)
	r = e.postForm(c, "/login", url.Values{"csrf": {formCSRF(t, page.body)}, "token": {e.tokens[auth.Admin]}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("token sign-in from a limited address = %d, want 429", r.status)
	}
}

func TestLoginRateLimitRefills(t *testing.T) {
	now := started
	e := newEnv(t, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.Login = LoginLimits{UserRate: rate.Every(30 * time.Second), UserBurst: 1}
	})
	e.wrongPassword("viewer-user")
	if r := e.wrongPassword("viewer-user"); r.status != http.StatusTooManyRequests {
		t.Fatalf("= %d, want 429", r.status)
	}
	now = now.Add(30 * time.Second)
	if r := e.wrongPassword("viewer-user"); r.status != http.StatusUnauthorized {
		t.Fatalf("after Retry-After = %d, want 401", r.status)
	}
}

func TestKeyedLimiterForgetsRefilledKeys(t *testing.T) {
	k := newKeyedLimiter(rate.Every(time.Second), 2)
	for i := range limiterSweepAt {
		k.reserve(string(rune(i)), started)
	}
	// Two seconds on, every key has refilled: the next new key sweeps.
	k.reserve("new", started.Add(2*time.Second))
	if len(k.keys) != 1 {
		t.Fatalf("%d keys kept, want only the new one", len(k.keys))
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for name, tc := range map[string]struct {
		secureCfg, tls bool
		wantSecure     bool
	}{
		"plain HTTP":                  {false, false, false},
		"plain HTTP behind TLS proxy": {true, false, true},
		"TLS":                         {false, true, true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.SecureCookies = tc.secureCfg })
			c := e.client()
			if tc.tls {
				ts := httptest.NewTLSServer(e.srv.Handler())
				t.Cleanup(ts.Close)
				e.ts = ts
				c.Transport = ts.Client().Transport
			}
			page := e.do(c, http.MethodGet, "/login", "", nil)
			r := e.postForm(c, "/login", url.Values{"csrf": {formCSRF(t, page.body)}, "username": {"viewer-user"}, "password": {"password-viewer"}})
			for _, ck := range []*http.Cookie{cookieNamed(page, loginCSRFCookie), cookieNamed(r, sessionCookie)} {
				if ck == nil {
					t.Fatalf("cookie missing: login %d %v", r.status, r.header)
				}
				if !ck.HttpOnly || (ck.SameSite != http.SameSiteLaxMode && ck.SameSite != http.SameSiteStrictMode) || ck.Secure != tc.wantSecure {
					t.Errorf("cookie %s: HttpOnly %v SameSite %v Secure %v, want HttpOnly, Lax or Strict, Secure %v", ck.Name, ck.HttpOnly, ck.SameSite, ck.Secure, tc.wantSecure)
				}
			}
		})
	}
}

// TestStreamsOutliveServerTimeouts: the http.Server from HTTPServer has
// read and write timeouts, which must not cut an event stream.
func TestStreamsOutliveServerTimeouts(t *testing.T) {
	e := newEnv(t)
	e.srv.heartbeat = 50 * time.Millisecond
	hs := e.srv.HTTPServer()
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout == 0 || hs.IdleTimeout == 0 {
		t.Fatalf("HTTPServer timeouts not all set: %+v", hs)
	}
	hs.ReadTimeout, hs.WriteTimeout = streamTestTimeout, streamTestTimeout
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	})
	base := "http://" + ln.Addr().String()

	c := e.signIn(e.tokens[auth.Viewer])
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/events/services", nil)
	for _, ck := range c.Jar.Cookies(mustURL(t, e.ts.URL)) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream = %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	deadline := time.Now().Add(5 * streamTestTimeout)
	beats := 0
	for time.Now().Before(deadline) && sc.Scan() {
		if sc.Text() == ": heartbeat" {
			beats++
		}
	}
	if time.Now().Before(deadline) {
		t.Fatalf("stream ended after %d heartbeats, before 5x the server's timeouts: %v", beats, sc.Err())
	}

	// A plain request on the same server still has its timeouts: a client
	// that sends headers and then stalls its body is cut off.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a stalled body held the connection for %s", took)
	}
}

// streamTestTimeout is the read and write timeout the stream test sets.
const streamTestTimeout = 200 * time.Millisecond

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestEveryRouteLimitsItsBody: every route that takes a body refuses one
// above its limit with 413, before authentication or the handler reads it.
func TestEveryRouteLimitsItsBody(t *testing.T) {
	e := fullEnv(t)
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	for _, r := range e.srv.engine.Routes() {
		if !isMutating(r.Method) {
			continue
		}
		limit := e.srv.maxBody
		if l, ok := e.srv.bodyLimits[r.Path]; ok {
			limit = l
		}
		path := concretePath(r.Path)
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Only the headers: a server that read the body would wait
			// for it, and the deadline below would fail the test.
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: kplane\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", r.Method, path, limit+1)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer to an oversized %s %s: %v", r.Method, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("%s %s with %d bytes (limit %d) = %d, want 413", r.Method, path, limit+1, limit, resp.StatusCode)
			}
		})
	}
}

// TestPanicLoggedWithTraceparentTraceID: the recovery middleware logs a
// panic with the trace ID of the caller's W3C traceparent, and answers a
// bare JSON 500.
func TestPanicLoggedWithTraceparentTraceID(t *testing.T) {
	e := newEnv(t)
	e.srv.engine.POST("/test/panic", func(*gin.Context) { panic("db password=hunter2 in a stack") })
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.do(nil, http.MethodPost, "/test/panic", "", strings.NewReader("{}"), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if r.status != http.StatusInternalServerError || decodeError(t, r) != (errorBody{Error: "internal error", Code: "internal"}) || strings.Contains(r.body, "hunter2") {
		t.Fatalf("panic answered %d %s, want a bare JSON 500", r.status, r.body)
	}
	if r.header.Get("X-Request-ID") != traceID {
		t.Errorf("X-Request-ID %q, want the traceparent's trace ID", r.header.Get("X-Request-ID"))
	}
	if !strings.Contains(e.logs.String(), "panic serving request") || !strings.Contains(e.logs.String(), "trace_id="+traceID) {
		t.Fatalf("panic not logged with the trace ID:\n%s", e.logs.String())
	}
}
