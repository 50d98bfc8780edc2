package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
	"github.com/kplane/kplane/signalman"
)

// The authorization matrix: every route that changes something, and every
// console form, against every kind of caller. A route the engine serves
// that is not in these tables fails TestAuthorizationMatrixIsComplete, so
// a new endpoint cannot ship without deciding who may call it.

// anonymous is the caller without credentials; the other callers are the
// auth roles.
const anonymous auth.Role = 0

func callers() []auth.Role { return append([]auth.Role{anonymous}, auth.Roles()...) }

func callerName(r auth.Role) string {
	if r == anonymous {
		return "anonymous"
	}
	return r.String()
}

// authzCase is one request to a route. Callers below min get 401
// (anonymous) or 403; callers at or above min get one of ok, which for
// most rows is a validation error chosen so that the request changes
// nothing: a 4xx that is not 401/403 shows the request got past
// authorization, and the same body is refused to the roles below min.
type authzCase struct {
	variant string // what this case of the route checks, when it has several
	path    string
	body    string
	ctype   string // Content-Type; "" is application/json
	min     auth.Role
	ok      []int
	// public, when set, is why the route takes no credentials at all; min
	// is then ignored and every caller gets ok.
	public string
}

// apiMatrix holds the mutating API routes, keyed by "METHOD route" as gin
// names them. Credentials are Bearer tokens: the API never accepts a
// session cookie for a change (checked below), so a cross-site form cannot
// reach it and needs no CSRF token.
var apiMatrix = map[string][]authzCase{
	"POST /api/v1/users":                   {{path: "/api/v1/users", body: `{"name":"mallory","password":"long enough pw","role":"emperor"}`, min: auth.Admin, ok: []int{400}}},
	"POST /api/v1/tokens":                  {{path: "/api/v1/tokens", body: `{"user":"viewer-user","ttl":"soon"}`, min: auth.Admin, ok: []int{400}}},
	"PUT /api/v1/policies/:service":        {{path: "/api/v1/policies/inventory", body: `{"min":4,"max":3}`, min: auth.Developer, ok: []int{400}}},
	"POST /api/v1/services/:service/scale": {{path: "/api/v1/services/inventory/scale", body: `{"instances":3}`, min: auth.Developer, ok: []int{200}}},
	"POST /api/v1/deploys": {
		{variant: "qa", path: "/api/v1/deploys", body: `{"service":"inventory","env":"qa","version":"1.1","instances":-1}`, min: auth.Developer, ok: []int{400}},
		{variant: "prod needs a releaser", path: "/api/v1/deploys", body: `{"service":"inventory","env":"prod","version":"1.1","instances":-1}`, min: auth.Releaser, ok: []int{400}},
	},
	"DELETE /api/v1/envs/:env": {
		{variant: "alpha", path: "/api/v1/envs/alpha", min: auth.Developer, ok: []int{204}},
		{variant: "prod needs an admin", path: "/api/v1/envs/prod", min: auth.Admin, ok: []int{204}},
	},
	"POST /api/v1/builds/:id/promote": {{path: "/api/v1/builds/1/promote", body: `{"to":"qa"}`, min: auth.Releaser, ok: []int{400}}},
	"POST /api/v1/envs/:env/rollback": {{path: "/api/v1/envs/qa/rollback", body: `{"service":"inventory"}`, min: auth.Releaser, ok: []int{400}}},
	// Nothing is pinned or locked when the DELETEs run: 404 "not pinned"
	// shows the request got past authorization.
	"DELETE /api/v1/envs/:env/pin": {{path: "/api/v1/envs/prod/pin?service=inventory", min: auth.Releaser, ok: []int{404}}},
	"PUT /api/v1/locks/:service/:env": {
		{variant: "qa", path: "/api/v1/locks/inventory/qa", body: `{"reason":"sale","duration":"soon"}`, min: auth.Developer, ok: []int{400}},
		{variant: "prod needs a releaser", path: "/api/v1/locks/inventory/prod", body: `{"reason":"sale at noon","duration":"1h"}`, min: auth.Releaser, ok: []int{200}},
	},
	"DELETE /api/v1/locks/:service/:env": {
		{variant: "qa", path: "/api/v1/locks/inventory/qa", min: auth.Developer, ok: []int{404}},
		{variant: "prod needs a releaser", path: "/api/v1/locks/inventory/prod", min: auth.Releaser, ok: []int{404}},
	},
	// Build reports and results also accept a webhook signature instead of
	// a token (TestAuthorizationWebhookSignature); with a token they need
	// a developer.
	"POST /api/v1/builds":             {{path: "/api/v1/builds", body: `{}`, min: auth.Developer, ok: []int{400}}},
	"POST /api/v1/builds/:id/results": {{path: "/api/v1/builds/999/results?stage=alpha", body: `<testsuite name="t" tests="0"></testsuite>`, ctype: "application/xml", min: auth.Developer, ok: []int{400}}},
	// Span ingest takes no credentials: OpenTelemetry and Zipkin SDKs send
	// none. A deployment that listens beyond loopback keeps these two
	// paths inside its network boundary (docs/security.md).
	"POST /v1/traces":    {{path: "/v1/traces", body: `{"resourceSpans":[]}`, public: "OpenTelemetry SDKs send spans without credentials", ok: []int{200}}},
	"POST /api/v2/spans": {{path: "/api/v2/spans", body: `[]`, public: "Zipkin reporters send spans without credentials", ok: []int{202}}},
}

// uiMatrix holds the console's form posts. Credentials are the session
// cookie plus the session's CSRF token; a caller without a session is sent
// to the login page.
var uiMatrix = map[string][]authzCase{
	"POST /logout":                       {{path: "/logout", min: auth.Viewer, ok: []int{303}}},
	"POST /autoscaler/policies/:service": {{path: "/autoscaler/policies/inventory", body: "min=4&max=3", min: auth.Developer, ok: []int{400}}},
	// The build was committed by someone else, so separation of duties
	// does not stand in the releaser's way; the admin promotes a build
	// already in prod (409) or promotes again (303).
	"POST /builds/:id/promote": {{path: "/builds/1/promote", min: auth.Releaser, ok: []int{303, 409}}},
}

// exempt are the mutating routes outside both matrices, with the reason.
var exempt = map[string]string{
	"POST /login": "signing in is what creates credentials: it is protected by a double-submit CSRF cookie and rate limits (TestLoginCSRF, TestLoginRateLimit)",
}

// publicReads are the read routes anyone may call.
var publicReads = map[string]string{
	"GET /healthz":          "liveness probe",
	"GET /readyz":           "readiness probe",
	"GET /metrics":          "Prometheus scrapes without credentials; it holds no secrets",
	"GET /login":            "the sign-in page",
	"GET /static/*filepath": "stylesheets, scripts and icons",
}

// fullEnv is a server with every optional feature configured, backed by
// the same in-memory and SQLite implementations as the feature tests.
func fullEnv(t testing.TB) *env {
	t.Helper()
	ctx := t.Context()
	builds := hawaii.NewMemoryStore(nil)
	sec, err := hawaii.ParseSecret("jenkins", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	// Build 1: green, committed by someone who is none of the test users.
	b, _, err := builds.Report(ctx, hawaii.Build{Service: "inventory", Version: "1.0.0", Image: "inventory:1.0.0",
		SCMRevision: "r1", Committer: "someone", Timestamp: time.Now().UTC(), GUID: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []hawaii.Stage{hawaii.StageAlpha, hawaii.StageQA} {
		if _, err := builds.SetStage(ctx, hawaii.StageRecord{BuildID: b.ID, Stage: s, Status: hawaii.StatusPassed}); err != nil {
			t.Fatal(err)
		}
	}
	pipe, err := hawaii.NewPipeline(hawaii.PipelineConfig{Store: builds, Deployer: &instantDeployer{d: map[string]signalman.Deploy{}},
		Pipelines: []hawaii.ServicePipeline{{Service: "inventory"}}})
	if err != nil {
		t.Fatal(err)
	}

	drv := &memDriver{insts: map[signalman.Target][]signalman.Instance{}, release: make(chan struct{})}
	deployer, err := signalman.NewDeployer(signalman.DeployerConfig{Driver: drv, Gate: drv})
	if err != nil {
		t.Fatal(err)
	}
	spans := inmem.New(inmem.Config{})
	ingester, err := ktrace.NewIngester(ktrace.IngesterConfig{Store: spans})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = deployer.Run(runCtx); done <- struct{}{} }()
	go func() { _ = ingester.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	for _, err := deployer.Begin(signalman.DeployRequest{}); !strings.Contains(fmt.Sprint(err), signalman.ErrInvalid.Error()); _, err = deployer.Begin(signalman.DeployRequest{}) {
		time.Sleep(5 * time.Millisecond)
	}

	as := newMemAutoscaler()
	return newEnv(t, func(c *Config) {
		c.Policies, c.Decisions, c.Scaler, c.Observations = as, as, as, as
		c.Traces = spans
		c.Ingester = ingester
		c.Deploys = deployer
		c.Pipeline = pipe
		c.Builds = BuildAPI{
			Store:   builds,
			Known:   func(context.Context) ([]string, error) { return []string{"inventory", "checkpoint"}, nil },
			Secrets: []hawaii.Secret{sec},
		}
	})
}

func isMutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// TestAuthorizationMatrixIsComplete fails for a route that nobody decided
// the authorization of: every mutating route is in a matrix or exempt
// with a reason, and every read route refuses anonymous callers unless it
// is listed as public.
func TestAuthorizationMatrixIsComplete(t *testing.T) {
	e := fullEnv(t)
	seen := map[string]bool{}
	var missing []string
	for _, r := range e.srv.engine.Routes() {
		key := r.Method + " " + r.Path
		seen[key] = true
		_, inAPI := apiMatrix[key]
		_, inUI := uiMatrix[key]
		_, isExempt := exempt[key]
		if isMutating(r.Method) && !inAPI && !inUI && !isExempt {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("%s is not in the authorization matrix (web/authz_test.go): add it with the role it needs", k)
	}
	for _, m := range []map[string][]authzCase{apiMatrix, uiMatrix} {
		for k := range m {
			if !seen[k] {
				t.Errorf("matrix row %s names no route of a fully configured server", k)
			}
		}
	}
	for k := range publicReads {
		if !seen[k] {
			t.Errorf("public read %s names no route", k)
		}
	}
}

// TestAuthorizationAnonymousReads: every read route but the public ones
// refuses a caller without credentials: the API with 401, the console by
// sending the browser to sign in.
func TestAuthorizationAnonymousReads(t *testing.T) {
	e := fullEnv(t)
	for _, r := range e.srv.engine.Routes() {
		key := r.Method + " " + r.Path
		if isMutating(r.Method) || publicReads[key] != "" {
			continue
		}
		path := concretePath(r.Path)
		t.Run(key, func(t *testing.T) {
			got := e.do(nil, r.Method, path, "", nil)
			switch {
			case strings.HasPrefix(r.Path, "/api/"), strings.HasPrefix(r.Path, "/ui/events/"):
				if got.status != http.StatusUnauthorized {
					t.Fatalf("anonymous %s %s = %d, want 401", r.Method, path, got.status)
				}
			default:
				if got.status != http.StatusSeeOther || !strings.HasPrefix(got.header.Get("Location"), "/login") {
					t.Fatalf("anonymous %s %s = %d (Location %q), want 303 to /login", r.Method, path, got.status, got.header.Get("Location"))
				}
			}
		})
	}
}

// concretePath fills a route's parameters with plausible values.
func concretePath(route string) string {
	var parts []string
	for _, p := range strings.Split(route, "/") {
		switch {
		case p == ":id":
			p = "1"
		case p == ":traceID":
			p = "0123456789abcdef0123456789abcdef"
		case strings.HasPrefix(p, ":env"):
			p = "qa"
		case strings.HasPrefix(p, ":"):
			p = "inventory"
		case strings.HasPrefix(p, "*"):
			p = "x"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}

func expect(t *testing.T, tc authzCase, who auth.Role, anonStatus int) []int {
	t.Helper()
	switch {
	case tc.public != "":
		return tc.ok
	case who == anonymous:
		return []int{anonStatus}
	case !who.Allows(tc.min):
		return []int{http.StatusForbidden}
	}
	return tc.ok
}

func caseName(key string, tc authzCase) string {
	if tc.variant != "" {
		return key + " (" + tc.variant + ")"
	}
	return key
}

func TestAuthorizationMatrixAPI(t *testing.T) {
	e := fullEnv(t)
	keys := sortedKeys(apiMatrix)
	for _, key := range keys {
		method, _, _ := strings.Cut(key, " ")
		for _, tc := range apiMatrix[key] {
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			for _, who := range callers() {
				t.Run(caseName(key, tc)+"/"+callerName(who), func(t *testing.T) {
					r := e.do(nil, method, tc.path, e.tokens[who], strings.NewReader(tc.body), "Content-Type", ctype)
					want := expect(t, tc, who, http.StatusUnauthorized)
					if !slices.Contains(want, r.status) {
						t.Fatalf("%s %s as %s = %d %s, want %v", method, tc.path, callerName(who), r.status, r.body, want)
					}
				})
			}
		}
	}

	// A signed-in browser's cookie is no credential for a change: a
	// cross-site form post would carry it.
	admin := e.signIn(e.tokens[auth.Admin])
	for _, key := range keys {
		method, _, _ := strings.Cut(key, " ")
		for _, tc := range apiMatrix[key] {
			if tc.public != "" {
				continue
			}
			t.Run(caseName(key, tc)+"/session cookie", func(t *testing.T) {
				r := e.do(admin, method, tc.path, "", strings.NewReader(tc.body), "Content-Type", "application/json")
				if r.status != http.StatusUnauthorized {
					t.Fatalf("%s %s with an admin session cookie = %d %s, want 401", method, tc.path, r.status, r.body)
				}
			})
		}
	}
}

// TestAuthorizationWebhookSignature: build reports and results may carry
// a webhook signature instead of a token, since CI systems sign webhooks
// rather than hold kplane tokens; a bad signature is refused with 401.
func TestAuthorizationWebhookSignature(t *testing.T) {
	e := fullEnv(t)
	sec, _ := hawaii.ParseSecret("jenkins", testSecret)
	wrong, _ := hawaii.ParseSecret("jenkins", "whsec_"+strings.Repeat("QUJD", 8))
	body := []byte(reportJSON("signed-authz"))
	for name, tc := range map[string]struct {
		secret hawaii.Secret
		want   int
	}{
		"right secret": {sec, http.StatusCreated},
		"wrong secret": {wrong, http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			var kv []string
			for k, v := range hawaii.SignStandard("msg_"+name[:5], e.srv.now(), body, tc.secret) {
				kv = append(kv, k, v[0])
			}
			r := e.do(nil, http.MethodPost, "/api/v1/builds", "", strings.NewReader(string(body)), kv...)
			if r.status != tc.want {
				t.Fatalf("signed report = %d %s, want %d", r.status, r.body, tc.want)
			}
		})
	}
}

func TestAuthorizationMatrixUI(t *testing.T) {
	e := fullEnv(t)
	for _, key := range sortedKeys(uiMatrix) {
		method, _, _ := strings.Cut(key, " ")
		for _, tc := range uiMatrix[key] {
			for _, who := range callers() {
				t.Run(caseName(key, tc)+"/"+callerName(who), func(t *testing.T) {
					c := e.client()
					form, _ := url.ParseQuery(tc.body)
					if who != anonymous {
						c = e.signIn(e.tokens[who])
						form.Set(csrfField, sessionCSRF(e, c))
					}
					r := e.do(c, method, tc.path, "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
					want := expect(t, tc, who, http.StatusSeeOther)
					if !slices.Contains(want, r.status) {
						t.Fatalf("%s %s as %s = %d, want %v\n%s", method, tc.path, callerName(who), r.status, want, r.body)
					}
					if who == anonymous && !strings.HasPrefix(r.header.Get("Location"), "/login") {
						t.Fatalf("anonymous form post sent to %q, want /login", r.header.Get("Location"))
					}
				})
			}
		}
	}
}

// TestCSRFRequiredOnEveryForm: a console form post from a signed-in admin
// is refused without the session's CSRF token or with a wrong one, on every
// form route.
func TestCSRFRequiredOnEveryForm(t *testing.T) {
	e := fullEnv(t)
	admin := e.signIn(e.tokens[auth.Admin])
	good := sessionCSRF(e, admin)
	for _, key := range sortedKeys(uiMatrix) {
		method, _, _ := strings.Cut(key, " ")
		for _, tc := range uiMatrix[key] {
			for name, tok := range map[string]string{"missing": "", "wrong": strings.Repeat("0", len(good)), "login form's": loginCSRF(e)} {
				t.Run(caseName(key, tc)+"/"+name, func(t *testing.T) {
					form, _ := url.ParseQuery(tc.body)
					if tok != "" {
						form.Set(csrfField, tok)
					}
					r := e.do(admin, method, tc.path, "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
					if r.status != http.StatusForbidden || !strings.Contains(r.body, "CSRF") {
						t.Fatalf("%s %s with a %s CSRF token = %d, want 403 naming CSRF\n%s", method, tc.path, name, r.status, r.body)
					}
				})
			}
		}
	}
	// The session still works: the refusals changed nothing.
	if r := e.do(admin, http.MethodGet, "/services", "", nil); r.status != http.StatusOK {
		t.Fatalf("session after CSRF refusals: %d", r.status)
	}
}

// sessionCSRF reads the CSRF token a signed-in page carries.
func sessionCSRF(e *env, c *http.Client) string {
	e.t.Helper()
	return formCSRF(e.t, e.do(c, http.MethodGet, "/services", "", nil).body)
}

// loginCSRF is a valid login form token, which must not work for a session.
func loginCSRF(e *env) string {
	e.t.Helper()
	return formCSRF(e.t, e.do(nil, http.MethodGet, "/login", "", nil).body)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
