package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/registry"
)

// memSource is an in-memory ServiceSource: what the registry watcher does,
// minus etcd.
type memSource struct {
	mu       sync.Mutex
	services []registry.Service
	subs     map[chan struct{}]bool
}

var _ ServiceSource = (*memSource)(nil)

func newMemSource(svcs ...registry.Service) *memSource {
	return &memSource{services: svcs, subs: map[chan struct{}]bool{}}
}

func (m *memSource) Services() []registry.Service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.services
}

func (m *memSource) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs[ch] = true
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, ch)
			m.mu.Unlock()
		})
	}
}

// Set replaces the services and notifies subscribers, coalescing like the
// real watcher: a subscriber with a pending signal gets no second one.
func (m *memSource) Set(svcs ...registry.Service) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services = svcs
	for ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (m *memSource) subscribers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

// syncBuffer is a log sink safe for the server's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var started = time.Date(2026, 3, 1, 11, 56, 48, 0, time.UTC)

func demoServices() []registry.Service {
	return []registry.Service{
		{Name: "inventory", Instances: []registry.Instance{
			{ID: "inventory-1", Name: "inventory", Addr: "127.0.0.1:41001", Version: "1.4.2", Env: "dev", Tags: []string{"demo"}, Started: started},
			{ID: "inventory-2", Name: "inventory", Addr: "127.0.0.1:41002", Version: "1.4.2", Env: "dev", Tags: []string{"demo"}, Started: started.Add(time.Minute)},
		}},
		{Name: "checkpoint", Instances: []registry.Instance{
			{ID: "checkpoint-1", Name: "checkpoint", Addr: "127.0.0.1:42001", Version: "0.9.0", Env: "dev", Started: started},
		}},
	}
}

type env struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	auth   *auth.Service
	source *memSource
	logs   *syncBuffer
	reg    *prometheus.Registry
	tokens map[auth.Role]string // one token per role
}

type option func(*Config)

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	ctx := t.Context()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := auth.New(db, auth.Config{Logger: logger, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, auth: a, source: newMemSource(demoServices()...), logs: logs, reg: prometheus.NewRegistry(), tokens: map[auth.Role]string{}}
	for _, r := range auth.Roles() {
		name := r.String() + "-user"
		if err := a.CreateUser(ctx, name, "password-"+r.String(), r); err != nil {
			t.Fatal(err)
		}
		if e.tokens[r], err = a.CreateToken(ctx, name, "test", 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Logger:     logger,
		Auth:       a,
		Services:   e.source,
		Registerer: e.reg,
		Gatherer:   e.reg,
		Version:    "v0.1.0-test",
		Now:        func() time.Time { return started.Add(3*time.Minute + 12*time.Second) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	t.Cleanup(e.srv.CloseStreams)
	return e
}

// client returns an HTTP client with a cookie jar that does not follow
// redirects, so tests see where the server sends the browser.
func (e *env) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(c *http.Client, method, path, token string, body io.Reader, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = e.client()
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *env) postForm(c *http.Client, path string, form url.Values) response {
	e.t.Helper()
	return e.do(c, http.MethodPost, path, "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func decodeError(t *testing.T, r response) errorBody {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal([]byte(r.body), &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return eb
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formCSRF extracts the CSRF token a page's form carries.
func formCSRF(t testing.TB, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", page)
	}
	return m[1]
}

// signIn logs a fresh browser-like client in with an API token, through the
// login form.
func (e *env) signIn(token string) *http.Client {
	e.t.Helper()
	c := e.client()
	page := e.do(c, http.MethodGet, "/login", "", nil)
	r := e.postForm(c, "/login", url.Values{"csrf": {formCSRF(e.t, page.body)}, "token": {token}})
	if r.status != http.StatusSeeOther {
		e.t.Fatalf("sign in: status %d, body:\n%s", r.status, r.body)
	}
	return c
}

func secDur(n int) time.Duration { return time.Duration(n) * time.Second }
