package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/internal/browsertest"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/signalman"
)

// memAutoscaler is an in-memory policy store, decision log, manual scaler
// and scout history: what cmd/kplane wires from headquarter, signalman and
// scout, minus etcd and processes.
type memAutoscaler struct {
	mu        sync.Mutex
	policies  map[string]headquarter.Policy
	decisions []headquarter.Decision // oldest first
	counts    map[string]int
	busy      bool
	history   map[string][]scout.ServiceSnapshot
	subs      map[chan scout.Snapshot]bool
}

var (
	_ Policies     = (*memAutoscaler)(nil)
	_ Decisions    = (*memAutoscaler)(nil)
	_ ManualScaler = (*memAutoscaler)(nil)
	_ Observations = (*memAutoscaler)(nil)
)

func newMemAutoscaler() *memAutoscaler {
	return &memAutoscaler{
		policies: map[string]headquarter.Policy{},
		counts:   map[string]int{"inventory": 2, "checkpoint": 2},
		history:  map[string][]scout.ServiceSnapshot{},
		subs:     map[chan scout.Snapshot]bool{},
	}
}

func (m *memAutoscaler) Policy(_ context.Context, service string) (headquarter.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.policies[service]
	if !ok {
		return p, fmt.Errorf("policy of %s: %w", service, headquarter.ErrNotFound)
	}
	return p, nil
}

func (m *memAutoscaler) PutPolicy(_ context.Context, p headquarter.Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[p.Service] = p
	return nil
}

func (m *memAutoscaler) Policies(context.Context) ([]headquarter.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []headquarter.Policy
	for _, p := range m.policies {
		out = append(out, p)
	}
	return out, nil
}

func (m *memAutoscaler) Decisions(_ context.Context, q headquarter.DecisionQuery) ([]headquarter.Decision, error) {
	service, limit := q.Service, q.Limit
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []headquarter.Decision
	for i := len(m.decisions) - 1; i >= 0 && len(out) < limit; i-- {
		if d := m.decisions[i]; service == "" || d.Service == service {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memAutoscaler) record(d headquarter.Decision) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d.ID = int64(len(m.decisions) + 1)
	m.decisions = append(m.decisions, d)
}

func (m *memAutoscaler) ScaleManually(_ context.Context, service string, n int, by string) (signalman.Result, error) {
	m.mu.Lock()
	res := signalman.Result{Target: signalman.Target{Service: service}}
	from, ok := m.counts[service]
	switch {
	case n < 0:
		m.mu.Unlock()
		return res, fmt.Errorf("%w: instance count %d is negative", signalman.ErrInvalid, n)
	case !ok:
		m.mu.Unlock()
		return res, fmt.Errorf("%w: %q", signalman.ErrUnknownService, service)
	case m.busy:
		m.mu.Unlock()
		return res, fmt.Errorf("%w: %s is being scaled", signalman.ErrBusy, service)
	}
	res.From, res.To = from, n
	for i := from + 1; i <= n; i++ {
		res.Started = append(res.Started, fmt.Sprintf("%s-%d", service, i))
	}
	for i := from; i > n; i-- {
		res.Stopped = append(res.Stopped, fmt.Sprintf("%s-%d", service, i))
	}
	m.counts[service] = n
	m.mu.Unlock()
	m.record(headquarter.Decision{Time: time.Now(), Service: service, Action: headquarter.Action("manual"),
		Reason: "manual scale by " + by, From: from, To: n, Outcome: headquarter.OutcomeDone})
	return res, nil
}

func (m *memAutoscaler) Latest() scout.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := scout.Snapshot{Services: map[string]scout.ServiceSnapshot{}}
	for name, h := range m.history {
		if len(h) > 0 {
			snap.Services[name] = h[len(h)-1]
			snap.Time = h[len(h)-1].Time
		}
	}
	return snap
}

func (m *memAutoscaler) History(service string, since time.Time) []scout.ServiceSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []scout.ServiceSnapshot
	for _, s := range m.history[service] {
		if !s.Time.Before(since) {
			out = append(out, s)
		}
	}
	return out
}

func (m *memAutoscaler) Subscribe() (<-chan scout.Snapshot, func()) {
	ch := make(chan scout.Snapshot, 1)
	m.mu.Lock()
	m.subs[ch] = true
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		delete(m.subs, ch)
		m.mu.Unlock()
	}
}

// observe appends one tick for a service and signals subscribers.
func (m *memAutoscaler) observe(ss scout.ServiceSnapshot) {
	m.mu.Lock()
	m.history[ss.Service] = append(m.history[ss.Service], ss)
	var subs []chan scout.Snapshot
	for ch := range m.subs {
		subs = append(subs, ch)
	}
	m.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- scout.Snapshot{Time: ss.Time}:
		default:
		}
	}
}

// fillHistory records an hour-long story: a spike on inventory at -30 min
// answered 2 → 5, back down later, and CPU missing for the last minutes.
func (m *memAutoscaler) fillHistory(now time.Time) {
	for i := 60; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * time.Minute)
		inst, qps := 2, 80.0
		if i <= 30 && i > 10 {
			inst, qps = 5, 900
		}
		cpu := scout.Value(0.2*float64(inst)/2, at)
		if i < 3 {
			cpu = scout.Missingf(at, "prometheus: connection refused")
		}
		m.observe(scout.ServiceSnapshot{Service: "inventory", Time: at, Instances: inst, Metrics: map[scout.Metric]scout.Sample{
			scout.QPS: scout.Value(qps, at), scout.CPU: cpu, scout.Memory: scout.Value(0.35, at),
		}})
		m.observe(scout.ServiceSnapshot{Service: "checkpoint", Time: at, Instances: 2, Metrics: map[scout.Metric]scout.Sample{
			scout.QPS: scout.Value(20, at), scout.CPU: scout.Value(0.1, at), scout.Memory: scout.Value(0.2, at),
		}})
	}
	m.record(headquarter.Decision{Time: now.Add(-30 * time.Minute), Service: "inventory", Action: headquarter.Up,
		Reason: "qps and cpu above their high thresholds: 3 more instances", From: 2, To: 5, Outcome: headquarter.OutcomeDone,
		Votes: []headquarter.MetricVote{{Metric: headquarter.QPS, Vote: headquarter.VoteUp, Value: 450, High: 100, Low: 30}, {Metric: headquarter.CPU, Vote: headquarter.VoteUp, Value: 0.9, High: 0.7, Low: 0.3}, {Metric: headquarter.Memory, Vote: headquarter.VoteHold, Value: 0.35, High: 0.8, Low: 0.4}}})
	m.record(headquarter.Decision{Time: now.Add(-10 * time.Minute), Service: "inventory", Action: headquarter.Down,
		Reason: "qps and cpu below their low thresholds for the whole stabilization window", From: 5, To: 2, Outcome: headquarter.OutcomeDone})
	m.record(headquarter.Decision{Time: now.Add(-time.Minute), Service: "inventory", Action: headquarter.Down, Guard: headquarter.GuardMissingData,
		Reason: "missing data: cpu is missing, so it cannot vote for a scale-down", From: 2, To: 2,
		Votes: []headquarter.MetricVote{{Metric: headquarter.CPU, Vote: headquarter.VoteMissing, Missing: "prometheus: connection refused"}}})
}

func newAutoscalerEnv(t *testing.T, opts ...option) (*env, *memAutoscaler) {
	t.Helper()
	m := newMemAutoscaler()
	e := newEnv(t, append([]option{func(c *Config) {
		c.Policies, c.Decisions, c.Scaler, c.Observations = m, m, m, m
	}}, opts...)...)
	return e, m
}

func TestPolicyAPI(t *testing.T) {
	e, m := newAutoscalerEnv(t)
	dev, viewer := e.tokens[auth.Developer], e.tokens[auth.Viewer]

	if r := e.do(nil, "GET", "/api/v1/policies/inventory", viewer, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET a policy never stored = %d %s, want 404", r.status, r.body)
	}
	good := map[string]any{"min": 2, "max": 8, "qps": map[string]any{"high": 50, "low": 10}, "cooldownUp": "5s", "stabilizationWindow": "20s"}
	for name, tc := range map[string]struct {
		token  string
		body   any
		status int
		want   string // in the error message
	}{
		"no token":           {"", good, http.StatusUnauthorized, ""},
		"viewer":             {viewer, good, http.StatusForbidden, ""},
		"not JSON":           {dev, "{", http.StatusBadRequest, "not JSON"},
		"low above high":     {dev, map[string]any{"min": 2, "max": 8, "qps": map[string]any{"high": 5, "low": 10}}, http.StatusBadRequest, "qps.low (10) must be below qps.high (5)"},
		"max below min":      {dev, map[string]any{"min": 4, "max": 3}, http.StatusBadRequest, "max (3) is below min (4)"},
		"bad duration":       {dev, map[string]any{"min": 2, "cooldownUp": "soon"}, http.StatusBadRequest, `cooldownUp "soon" is not a duration`},
		"other service name": {dev, map[string]any{"service": "checkpoint", "min": 2}, http.StatusBadRequest, "differs from the URL"},
	} {
		t.Run(name, func(t *testing.T) {
			body := jsonBody(tc.body)
			if s, ok := tc.body.(string); ok {
				body = strings.NewReader(s)
			}
			r := e.do(nil, "PUT", "/api/v1/policies/inventory", tc.token, body)
			if r.status != tc.status {
				t.Fatalf("PUT = %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.want != "" && !strings.Contains(decodeError(t, r).Error, tc.want) {
				t.Fatalf("error %q does not name the problem (%q)", decodeError(t, r).Error, tc.want)
			}
		})
	}
	if len(m.policies) != 0 {
		t.Fatalf("a refused PUT stored a policy: %v", m.policies)
	}

	r := e.do(nil, "PUT", "/api/v1/policies/inventory", dev, jsonBody(good))
	if r.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/policies/inventory", viewer, nil)
	var got headquarter.Policy
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET = %d %s (%v)", r.status, r.body, err)
	}
	if got.Service != "inventory" || got.Min != 2 || got.Max != 8 || got.QPS.High != 50 || got.CooldownUp != 5*time.Second || got.StabilizationWindow != 20*time.Second {
		t.Fatalf("stored policy = %+v", got)
	}
	// Fields left out come back with their defaults, so a client sees what
	// is in force.
	if got.Votes != headquarter.DefaultVotes || got.CPU != headquarter.DefaultCPU {
		t.Fatalf("defaults not shown: votes %d cpu %+v", got.Votes, got.CPU)
	}
}

func TestDecisionsAPI(t *testing.T) {
	e, m := newAutoscalerEnv(t)
	m.fillHistory(time.Now())
	viewer := e.tokens[auth.Viewer]
	var body struct {
		Decisions []headquarter.Decision `json:"decisions"`
	}
	r := e.do(nil, "GET", "/api/v1/decisions?service=inventory&limit=2", viewer, nil)
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET = %d %s (%v)", r.status, r.body, err)
	}
	if len(body.Decisions) != 2 || body.Decisions[0].Guard != headquarter.GuardMissingData || body.Decisions[1].Action != headquarter.Down {
		t.Fatalf("decisions = %+v, want the 2 newest, newest first", body.Decisions)
	}
	if v := body.Decisions[0].Votes; len(v) != 1 || v[0].Missing == "" {
		t.Fatalf("votes lost their explanation: %+v", v)
	}
	r = e.do(nil, "GET", "/api/v1/decisions?service=checkpoint", viewer, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"decisions":[]`) {
		t.Fatalf("no decisions = %d %s, want an empty array", r.status, r.body)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=100000"} {
		if r := e.do(nil, "GET", "/api/v1/decisions?"+q, viewer, nil); r.status != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", q, r.status)
		}
	}
}

func TestManualScaleAPI(t *testing.T) {
	e, m := newAutoscalerEnv(t)
	dev := e.tokens[auth.Developer]
	for name, tc := range map[string]struct {
		token, path, body string
		busy              bool
		status            int
		code              string
	}{
		"viewer":          {e.tokens[auth.Viewer], "inventory", `{"instances": 3}`, false, http.StatusForbidden, "forbidden"},
		"no count":        {dev, "inventory", `{}`, false, http.StatusBadRequest, "invalid"},
		"negative":        {dev, "inventory", `{"instances": -1}`, false, http.StatusBadRequest, "invalid"},
		"unknown service": {dev, "payments", `{"instances": 3}`, false, http.StatusNotFound, "not_found"},
		"busy":            {dev, "inventory", `{"instances": 3}`, true, http.StatusConflict, "busy"},
	} {
		t.Run(name, func(t *testing.T) {
			m.mu.Lock()
			m.busy = tc.busy
			m.mu.Unlock()
			r := e.do(nil, "POST", "/api/v1/services/"+tc.path+"/scale", tc.token, strings.NewReader(tc.body))
			if r.status != tc.status || decodeError(t, r).Code != tc.code {
				t.Fatalf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	m.busy = false
	r := e.do(nil, "POST", "/api/v1/services/inventory/scale", dev, strings.NewReader(`{"instances": 4}`))
	var ans scaleAnswer
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || r.status != http.StatusOK {
		t.Fatalf("scale = %d %s", r.status, r.body)
	}
	if ans.From != 2 || ans.To != 4 || !slices.Equal(ans.Started, []string{"inventory-3", "inventory-4"}) || ans.Outcome != "done" {
		t.Fatalf("answer = %+v", ans)
	}
	ds, _ := m.Decisions(t.Context(), headquarter.DecisionQuery{Service: "inventory", Limit: 1})
	if len(ds) != 1 || ds[0].Reason != "manual scale by developer-user" {
		t.Fatalf("manual scale recorded as %+v", ds)
	}
}

// With an orchestrator but the autoscaler off, kplane gives the web a
// Scaler and Decisions and no Policies: a person can still scale by hand
// and read the manual decisions, while the autoscaler page and policy API
// say the autoscaler is not configured.
func TestManualScaleWithoutAutoscaler(t *testing.T) {
	m := newMemAutoscaler()
	e := newEnv(t, func(c *Config) { c.Scaler, c.Decisions = m, m })
	dev, viewer := e.tokens[auth.Developer], e.tokens[auth.Viewer]
	if r := e.do(nil, "POST", "/api/v1/services/inventory/scale", viewer, strings.NewReader(`{"instances": 3}`)); r.status != http.StatusForbidden {
		t.Fatalf("viewer scale = %d %s, want 403", r.status, r.body)
	}
	r := e.do(nil, "POST", "/api/v1/services/inventory/scale", dev, strings.NewReader(`{"instances": 3}`))
	var ans scaleAnswer
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || r.status != http.StatusOK || ans.To != 3 {
		t.Fatalf("scale = %d %s", r.status, r.body)
	}
	var body struct {
		Decisions []headquarter.Decision `json:"decisions"`
	}
	r = e.do(nil, "GET", "/api/v1/decisions?service=inventory", viewer, nil)
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusOK || len(body.Decisions) != 1 {
		t.Fatalf("decisions = %d %s, want the manual scale", r.status, r.body)
	}
	if r := e.do(nil, "GET", "/api/v1/policies/inventory", viewer, nil); r.status != http.StatusNotFound {
		t.Fatalf("policy API without an autoscaler = %d, want 404", r.status)
	}
}

func TestAutoscalerPage(t *testing.T) {
	e, m := newAutoscalerEnv(t, func(c *Config) { c.Now = nil })
	m.fillHistory(time.Now())
	_ = m.PutPolicy(t.Context(), headquarter.Policy{Service: "inventory", Min: 2, Max: 8})

	viewer := e.signIn(e.tokens[auth.Viewer])
	page := e.do(viewer, "GET", "/autoscaler", "", nil)
	if page.status != http.StatusOK {
		t.Fatalf("page = %d\n%s", page.status, e.logs)
	}
	for _, want := range []string{
		`data-service="inventory"`, `data-service="checkpoint"`,
		`class="as-line"`, `class="as-high"`, `class="as-event as-up"`, `class="as-event as-down"`, `class="as-gap"`,
		"QPS / instance", "scale up above 100", "missing data: cpu is missing", "missing data",
		`data-testid="read-only"`, "fieldset disabled",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("viewer's page lacks %q", want)
		}
	}
	// A viewer cannot post the form, even with the session's CSRF token.
	r := e.postForm(viewer, "/autoscaler/policies/inventory", url.Values{"csrf": {formCSRF(t, page.body)}, "min": {"3"}})
	if r.status != http.StatusForbidden {
		t.Fatalf("viewer's post = %d, want 403", r.status)
	}

	dev := e.signIn(e.tokens[auth.Developer])
	page = e.do(dev, "GET", "/autoscaler", "", nil)
	if strings.Contains(page.body, "fieldset disabled") || !strings.Contains(page.body, "Save policy") {
		t.Fatal("developer's form is not editable")
	}
	form := url.Values{
		"min": {"3"}, "max": {"9"}, "votes": {"2"}, "max_step": {"0"},
		"qps_high": {"60"}, "qps_low": {"15"}, "cpu_high": {"0.7"}, "cpu_low": {"0.3"}, "memory_high": {"0.8"}, "memory_low": {"0.4"},
		"cooldown_up": {"10s"}, "cooldown_down": {"30s"}, "stabilization": {"45s"}, "max_age": {"15s"},
	}
	if r := e.postForm(dev, "/autoscaler/policies/inventory", form); r.status != http.StatusForbidden {
		t.Fatalf("post without CSRF = %d, want 403", r.status)
	}
	form.Set("csrf", formCSRF(t, page.body))
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("qps_low", "70")
	r = e.postForm(dev, "/autoscaler/policies/inventory", bad)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "qps.low (70) must be below qps.high (60)") {
		t.Fatalf("invalid post = %d, want 400 naming qps.low:\n%.2000s", r.status, r.body)
	}
	r = e.postForm(dev, "/autoscaler/policies/inventory", form)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/autoscaler?saved=inventory" {
		t.Fatalf("post = %d %s", r.status, r.header.Get("Location"))
	}
	p, _ := m.Policy(t.Context(), "inventory")
	if p.Min != 3 || p.Max != 9 || p.QPS.Low != 15 || p.StabilizationWindow != 45*time.Second || p.DryRun {
		t.Fatalf("stored = %+v", p)
	}
}

// TestBrowserEditPolicy: a developer opens the autoscaler page, sees the
// charts, edits the inventory policy in the form and sees it applied: the
// page shows it and the API returns it.
func TestBrowserEditPolicy(t *testing.T) {
	e, m := newAutoscalerEnv(t, func(c *Config) { c.Now = nil })
	m.fillHistory(time.Now())
	_ = m.PutPolicy(t.Context(), headquarter.Policy{Service: "inventory", Min: 2, Max: 8, QPS: headquarter.Threshold{High: 100, Low: 30}})
	ctx := browsertest.New(t)
	err := chromedp.Run(ctx,
		chromedp.Navigate(e.ts.URL+"/autoscaler"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", e.tokens[auth.Developer], chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`.as-service[data-service="inventory"] svg`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live[data-state="live"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "autoscaler.png")
	err = chromedp.Run(ctx,
		chromedp.Click(`[data-policy="inventory"] summary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#policy-inventory input[name="max"]`, chromedp.ByQuery),
		chromedp.SetValue(`#policy-inventory input[name="max"]`, "12", chromedp.ByQuery),
		chromedp.SetValue(`#policy-inventory input[name="qps_high"]`, "75", chromedp.ByQuery),
		chromedp.SetValue(`#policy-inventory input[name="stabilization"]`, "40s", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "autoscaler-policy-form.png")
	var flash, summary string
	err = chromedp.Run(ctx,
		chromedp.Click(`#policy-inventory button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="flash"]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid="flash"]`, &flash, chromedp.ByQuery),
		chromedp.Text(`[data-policy="inventory"] summary`, &summary, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "Policy of inventory saved") || !strings.Contains(summary, "2–12 instances") {
		t.Fatalf("after saving: flash %q, summary %q", flash, summary)
	}
	r := e.do(nil, "GET", "/api/v1/policies/inventory", e.tokens[auth.Viewer], nil)
	var p headquarter.Policy
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Max != 12 || p.QPS.High != 75 || p.StabilizationWindow != 40*time.Second || p.QPS.Low != 30 {
		t.Fatalf("the API returns %+v after the form was saved", p)
	}
	// Live: a new tick reaches the open page without a reload.
	now := time.Now()
	m.observe(scout.ServiceSnapshot{Service: "inventory", Time: now, Instances: 7, Metrics: map[scout.Metric]scout.Sample{
		scout.QPS: scout.Value(700, now), scout.CPU: scout.Value(0.5, now), scout.Memory: scout.Value(0.4, now)}})
	err = chromedp.Run(ctx, chromedp.WaitVisible(`//span[@data-testid="instances-inventory"][contains(., "7 instances")]`, chromedp.BySearch))
	if err != nil {
		t.Fatalf("the page did not follow a new tick: %v", err)
	}
	browsertest.Screenshot(t, ctx, "autoscaler-saved.png")
}
