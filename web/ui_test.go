package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/registry"
)

func cookieNamed(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginLogoutFlow(t *testing.T) {
	e := newEnv(t)
	browser := e.client()

	r := e.do(browser, "GET", "/services", "", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Fservices" {
		t.Fatalf("signed-out /services: %d to %q, want 303 to the login page", r.status, r.header.Get("Location"))
	}
	page := e.do(browser, "GET", "/login", "", nil)
	if page.status != 200 || !strings.Contains(page.body, "API token") || !strings.Contains(page.body, "Password") {
		t.Fatalf("login page %d does not offer token and password sign-in", page.status)
	}
	r = e.postForm(browser, "/login", url.Values{
		"csrf":     {formCSRF(t, page.body)},
		"username": {"releaser-user"},
		"password": {"password-releaser"},
		"next":     {"/builds"},
	})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/builds" {
		t.Fatalf("login: %d to %q, want 303 to /builds", r.status, r.header.Get("Location"))
	}
	c := cookieNamed(r, sessionCookie)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on plain HTTP, Path=/", c)
	}

	r = e.do(browser, "GET", "/services", "", nil)
	for _, want := range []string{"releaser-user", "releaser", "inventory", "checkpoint", "Sign out", "Autoscaler", "Builds", "Traces"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("services page lacks %q", want)
		}
	}
	csrf := formCSRF(t, r.body)

	if r := e.postForm(browser, "/logout", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d, want 403", r.status)
	}
	if r := e.postForm(browser, "/logout", url.Values{"csrf": {csrf + "x"}}); r.status != http.StatusForbidden {
		t.Fatalf("logout with wrong CSRF token: %d, want 403", r.status)
	}
	if r := e.do(browser, "GET", "/services", "", nil); r.status != 200 {
		t.Fatalf("rejected logout signed the browser out anyway: %d", r.status)
	}
	r = e.postForm(browser, "/logout", url.Values{"csrf": {csrf}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", r.status, r.header.Get("Location"))
	}
	if c := cookieNamed(r, sessionCookie); c == nil || c.MaxAge >= 0 {
		t.Fatalf("logout did not clear the session cookie: %+v", c)
	}
	if r := e.do(browser, "GET", "/services", "", nil); r.status != http.StatusSeeOther {
		t.Fatalf("after logout /services: %d, want a redirect to login", r.status)
	}
}

func TestLoginWithTokenAndOldSessionIsDead(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	u, _ := url.Parse(e.ts.URL)
	var sid string
	for _, c := range browser.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			sid = c.Value
		}
	}
	r := e.do(browser, "GET", "/services", "", nil)
	csrf := formCSRF(t, r.body)
	e.postForm(browser, "/logout", url.Values{"csrf": {csrf}})
	// Replaying the old cookie after logout must not work.
	other := e.client()
	other.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: sid}})
	if r := e.do(other, "GET", "/services", "", nil); r.status != http.StatusSeeOther {
		t.Fatalf("replayed session after logout: %d, want redirect to login", r.status)
	}
}

func TestLoginRejections(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		withCookie bool
		form       url.Values
		wantStatus int
		wantText   string
	}{
		{"no CSRF cookie", false, url.Values{"csrf": {"whatever-token-value-of-some-length"}, "token": {e.tokens[auth.Admin]}}, 403, "form expired"},
		{"CSRF field missing", true, url.Values{"token": {e.tokens[auth.Admin]}}, 403, "form expired"},
		{"CSRF field wrong", true, url.Values{"csrf": {"wrong"}, "username": {"admin-user"}, "password": {"password-admin"}}, 403, "form expired"},
		{"wrong password", true, url.Values{"username": {"admin-user"}, "password": {"nope-nope"}}, 401, "Wrong user name, password or token"},
		{"wrong token", true, url.Values{"token": {"kp_wrong"}}, 401, "Wrong user name, password or token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			browser := e.client()
			if tt.withCookie {
				page := e.do(browser, "GET", "/login", "", nil)
				if _, ok := tt.form["csrf"]; !ok && tt.wantStatus != 403 {
					tt.form.Set("csrf", formCSRF(t, page.body))
				}
			}
			r := e.postForm(browser, "/login", tt.form)
			if r.status != tt.wantStatus || !strings.Contains(r.body, tt.wantText) {
				t.Fatalf("status %d, want %d with %q; body:\n%s", r.status, tt.wantStatus, tt.wantText, r.body)
			}
			if cookieNamed(r, sessionCookie) != nil {
				t.Fatal("a rejected login set a session cookie")
			}
			// The page offers a fresh form, so the user can simply retry.
			formCSRF(t, r.body)
		})
	}
}

func TestSecureCookies(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SecureCookies = true })
	page := e.do(nil, "GET", "/login", "", nil)
	if c := cookieNamed(page, loginCSRFCookie); c == nil || !c.Secure {
		t.Fatalf("login CSRF cookie %+v, want Secure", c)
	}
}

func TestLoginRedirectStaysOnSite(t *testing.T) {
	for next, want := range map[string]string{
		"/builds?x=1":           "/builds?x=1",
		"https://evil.example/": "/services",
		"//evil.example/path":   "/services",
		"/\\evil.example":       "/services",
		"":                      "/services",
		"javascript:alert(1)":   "/services",
		"/traces#section":       "/traces#section",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestComingPagesAreHonest(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	for path, want := range map[string]string{
		"/autoscaler": "Autoscaling (Scout → Headquarter → Signalman) arrives with its own issue",
		"/builds":     "Build promotion (HAWAII) arrives with its own issue",
	} {
		r := e.do(browser, "GET", path, "", nil)
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("%s: %d, want a page saying %q", path, r.status, want)
		}
		if !strings.Contains(r.body, `aria-current="page"`) {
			t.Errorf("%s: navigation does not mark the current page", path)
		}
	}
}

func TestServicesPage(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	r := e.do(browser, "GET", "/services", "", nil)
	for _, want := range []string{"inventory-1", "127.0.0.1:41002", "1.4.2", "checkpoint-1", ">3m12s<", ">2m12s<", "demo"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("services page lacks %q", want)
		}
	}
	if strings.Index(r.body, "checkpoint-1") > strings.Index(r.body, "inventory-1") {
		t.Error("services are not in name order")
	}

	e.source.Set()
	r = e.do(browser, "GET", "/services", "", nil)
	if !strings.Contains(r.body, "No services registered yet") || !strings.Contains(r.body, "kplane dev") {
		t.Fatal("empty services page does not say what to do")
	}

	// Names come from the registry, which anyone who can write to etcd
	// controls: they must be escaped.
	e.source.Set(registry.Service{Name: "<script>alert(1)</script>", Instances: []registry.Instance{{ID: "x", Addr: "a:1"}}})
	r = e.do(browser, "GET", "/services", "", nil)
	if strings.Contains(r.body, "<script>alert(1)") {
		t.Fatal("service name rendered unescaped")
	}
}

func TestRootAndUnknownPages(t *testing.T) {
	e := newEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	if r := e.do(browser, "GET", "/", "", nil); r.status != http.StatusFound || r.header.Get("Location") != "/services" {
		t.Fatalf("/: %d to %q", r.status, r.header.Get("Location"))
	}
	r := e.do(browser, "GET", "/no-such-page", "", nil)
	if r.status != 404 || !strings.Contains(r.body, "not found") || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("unknown page: %d %q", r.status, r.header.Get("Content-Type"))
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/static/console.css", "/static/console.js", "/static/favicon.svg"} {
		if r := e.do(nil, "GET", p+"?v="+e.srv.pages.assetVersion, "", nil); r.status != 200 || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d, Cache-Control %q", p, r.status, r.header.Get("Cache-Control"))
		}
	}
}

func TestFormatUptime(t *testing.T) {
	for _, tt := range []struct {
		secs int
		want string
	}{{-5, "0s"}, {0, "0s"}, {45, "45s"}, {192, "3m12s"}, {3605, "1h00m"}, {7500, "2h05m"}, {3*86400 + 4*3600 + 59, "3d4h"}} {
		if got := formatUptime(secDur(tt.secs)); got != tt.want {
			t.Errorf("formatUptime(%ds) = %q, want %q", tt.secs, got, tt.want)
		}
	}
}

func TestCookiesSecureOverTLS(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest("GET", "https://kplane.example/login", nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if c := cookieNamed(response{header: rec.Header()}, loginCSRFCookie); c == nil || !c.Secure {
		t.Fatalf("cookie set over TLS %+v, want Secure", c)
	}
}
