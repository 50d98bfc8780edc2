package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
)

const testSecret = "whsec_dGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="

func newBuildEnv(t *testing.T, mod ...func(*BuildAPI)) (*env, hawaii.Store, hawaii.Secret) {
	t.Helper()
	store := hawaii.NewMemoryStore(nil)
	sec, err := hawaii.ParseSecret("jenkins", testSecret)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.Builds = BuildAPI{
			Store:   store,
			Known:   func(context.Context) ([]string, error) { return []string{"inventory", "checkpoint"}, nil },
			Secrets: []hawaii.Secret{sec},
		}
		for _, m := range mod {
			m(&c.Builds)
		}
	})
	return e, store, sec
}

func reportJSON(guid string) string {
	return fmt.Sprintf(`{"service":"inventory","version":"1.5.0","image":"inventory:1.5.0","scmRevision":"9f1c2e","committer":"alice","timestamp":"2026-03-01T11:00:00Z","guid":%q,
"changelog":[{"id":"9f1c2e","author":"alice","message":"never oversell","time":"2026-03-01T10:59:00Z"}]}`, guid)
}

func decodeView(t *testing.T, r response) hawaii.BuildView {
	t.Helper()
	var v hawaii.BuildView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return v
}

func TestBuildReportTokens(t *testing.T) {
	e, store, _ := newBuildEnv(t)
	dev := e.tokens[auth.Developer]
	for name, tc := range map[string]struct {
		token, body string
		status      int
		code        string
		says        []string
	}{
		"no credentials":  {"", reportJSON("g"), http.StatusUnauthorized, "unauthenticated", nil},
		"viewer":          {e.tokens[auth.Viewer], reportJSON("g"), http.StatusForbidden, "forbidden", nil},
		"not JSON":        {dev, `guid=1`, http.StatusBadRequest, "invalid", []string{"not a JSON object"}},
		"wrong type":      {dev, `{"service":3}`, http.StatusBadRequest, "invalid", []string{"service"}},
		"missing fields":  {dev, `{"service":"inventory","version":"1","timestamp":"yesterday"}`, http.StatusBadRequest, "invalid", []string{"image: required", "scmRevision: required", "committer: required", "guid: required", "timestamp: not an RFC 3339 time"}},
		"unknown service": {dev, strings.Replace(reportJSON("g"), `"inventory"`, `"payments"`, 1), http.StatusNotFound, "not_found", []string{`"payments"`, "checkpoint, inventory"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(nil, "POST", "/api/v1/builds", tc.token, strings.NewReader(tc.body))
			eb := decodeError(t, r)
			if r.status != tc.status || eb.Code != tc.code {
				t.Fatalf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(eb.Error, s) {
					t.Errorf("error %q does not say %q", eb.Error, s)
				}
			}
		})
	}
	if bs, _ := store.Builds(t.Context(), hawaii.BuildQuery{}); len(bs) != 0 {
		t.Fatalf("refused reports stored %d builds", len(bs))
	}

	r := e.do(nil, "POST", "/api/v1/builds", dev, strings.NewReader(reportJSON("jenkins-42")))
	v := decodeView(t, r)
	if r.status != http.StatusCreated || v.ID == 0 || v.ReportedBy != "developer-user" || len(v.Changelog) != 1 || len(v.Stages) != 3 {
		t.Fatalf("report = %d %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != fmt.Sprintf("/api/v1/builds/%d", v.ID) {
		t.Errorf("Location = %q", loc)
	}
	// Same GUID, different content: the stored build, unchanged.
	r = e.do(nil, "POST", "/api/v1/builds", e.tokens[auth.Admin], strings.NewReader(strings.Replace(reportJSON("jenkins-42"), "1.5.0", "6.6.6", -1)))
	again := decodeView(t, r)
	if r.status != http.StatusOK || again.ID != v.ID || again.Version != "1.5.0" || again.ReportedBy != "developer-user" {
		t.Fatalf("repeated GUID = %d %s", r.status, r.body)
	}
	events, _ := store.AuditEvents(t.Context(), hawaii.AuditQuery{})
	if len(events) != 1 || events[0].Action != hawaii.ActionBuildReported || events[0].Actor != "developer-user" || events[0].BuildID != v.ID {
		t.Errorf("audit = %+v, want one report by developer-user", events)
	}
}

func TestBuildReportSigned(t *testing.T) {
	e, store, sec := newBuildEnv(t)
	now := e.srv.now()
	body := reportJSON("signed-1")
	post := func(h http.Header, b string) response {
		var kv []string
		for k, vs := range h {
			kv = append(kv, k, vs[0])
		}
		return e.do(nil, "POST", "/api/v1/builds", "", strings.NewReader(b), kv...)
	}
	other, _ := hawaii.ParseSecret("other", "whsec_"+base64.StdEncoding.EncodeToString([]byte("another-secret-0123456789")))

	r := post(hawaii.SignStandard("msg_1", now, []byte(body), other, sec), body)
	v := decodeView(t, r)
	if r.status != http.StatusCreated || v.ReportedBy != "webhook:jenkins" {
		t.Fatalf("standard webhook = %d %s", r.status, r.body)
	}
	// The sender retries the same delivery: applied once, same answer.
	r = post(hawaii.SignStandard("msg_1", now, []byte(body), sec), body)
	if again := decodeView(t, r); r.status != http.StatusOK || again.ID != v.ID {
		t.Fatalf("replayed webhook-id = %d %s", r.status, r.body)
	}
	gh := http.Header{}
	gh.Set(hawaii.HeaderGitHubSignature, hawaii.SignGitHub(sec, []byte(reportJSON("signed-2"))))
	if r = post(gh, reportJSON("signed-2")); r.status != http.StatusCreated {
		t.Fatalf("github signature = %d %s", r.status, r.body)
	}
	for name, tc := range map[string]struct {
		h    http.Header
		body string
		code string
	}{
		"unsigned":        {http.Header{}, reportJSON("s3"), "unauthenticated"},
		"wrong secret":    {hawaii.SignStandard("msg_2", now, []byte(reportJSON("s3")), other), reportJSON("s3"), "bad_signature"},
		"stale":           {hawaii.SignStandard("msg_3", now.Add(-10*time.Minute), []byte(reportJSON("s3")), sec), reportJSON("s3"), "bad_signature"},
		"tampered body":   {hawaii.SignStandard("msg_4", now, []byte(reportJSON("s3")), sec), reportJSON("s4"), "bad_signature"},
		"github tampered": {gh, reportJSON("s5"), "bad_signature"},
	} {
		t.Run(name, func(t *testing.T) {
			r := post(tc.h, tc.body)
			if r.status != http.StatusUnauthorized || decodeError(t, r).Code != tc.code {
				t.Fatalf("= %d %s, want 401 %s", r.status, r.body, tc.code)
			}
		})
	}
	if bs, _ := store.Builds(t.Context(), hawaii.BuildQuery{}); len(bs) != 2 {
		t.Errorf("%d builds stored, want 2", len(bs))
	}
	events, _ := store.AuditEvents(t.Context(), hawaii.AuditQuery{Actor: "webhook:jenkins"})
	if len(events) != 2 {
		t.Errorf("%d audit events by the webhook, want 2", len(events))
	}
}

func TestBuildResults(t *testing.T) {
	e, store, sec := newBuildEnv(t)
	dev := e.tokens[auth.Developer]
	r := e.do(nil, "POST", "/api/v1/builds", dev, strings.NewReader(reportJSON("r-1")))
	id := decodeView(t, r).ID
	xml, err := os.ReadFile("testdata/junit-alpha.xml")
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/api/v1/builds/%d/results", id)
	for name, tc := range map[string]struct {
		path, token, body string
		status            int
		says              string
	}{
		"viewer":    {path + "?stage=alpha", e.tokens[auth.Viewer], string(xml), http.StatusForbidden, ""},
		"bad stage": {path + "?stage=prod", dev, string(xml), http.StatusBadRequest, "stage: must be alpha or qa"},
		"malformed": {path + "?stage=alpha", dev, "<testsuite><testcase>", http.StatusBadRequest, "XML syntax error"},
		"no build":  {"/api/v1/builds/999/results?stage=alpha", dev, string(xml), http.StatusNotFound, "build 999"},
		"bad build": {"/api/v1/builds/abc/results?stage=alpha", dev, string(xml), http.StatusBadRequest, "not a positive number"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(nil, "POST", tc.path, tc.token, strings.NewReader(tc.body))
			if r.status != tc.status || !strings.Contains(decodeError(t, r).Error, tc.says) {
				t.Fatalf("= %d %s, want %d saying %q", r.status, r.body, tc.status, tc.says)
			}
		})
	}
	r = e.do(nil, "POST", path+"?stage=alpha", dev, strings.NewReader(string(xml)))
	var rep resultsReply
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil || r.status != http.StatusCreated ||
		rep.Tests != (hawaii.TestCounts{Passed: 1, Failed: 1, Skipped: 1, Errored: 1}) {
		t.Fatalf("results = %d %s", r.status, r.body)
	}
	// A signed upload, delivered twice: counted once.
	qa := `<testsuite name="e2e"><testcase classname="e2e" name="TestCheckIn" time="1.5"/></testsuite>`
	h := hawaii.SignStandard("res_1", e.srv.now(), []byte(qa), sec)
	for i := range 2 {
		r = e.do(nil, "POST", path+"?stage=qa", "", strings.NewReader(qa),
			hawaii.HeaderWebhookID, h.Get(hawaii.HeaderWebhookID), hawaii.HeaderWebhookTime, h.Get(hawaii.HeaderWebhookTime), hawaii.HeaderWebhookSig, h.Get(hawaii.HeaderWebhookSig))
		if err := json.Unmarshal([]byte(r.body), &rep); err != nil || rep.Tests.Passed != 1 || rep.Duplicate != (i == 1) {
			t.Fatalf("signed upload %d = %d %s", i, r.status, r.body)
		}
	}

	r = e.do(nil, "GET", fmt.Sprintf("/api/v1/builds/%d", id), e.tokens[auth.Viewer], nil)
	var d buildDetail
	if err := json.Unmarshal([]byte(r.body), &d); err != nil || r.status != http.StatusOK {
		t.Fatalf("build page = %d %s", r.status, r.body)
	}
	if len(d.Results) != 5 || d.Stage(hawaii.StageAlpha).Tests.Failed != 1 || d.Stage(hawaii.StageQA).Tests.Passed != 1 {
		t.Errorf("build page: %d results, stages %+v", len(d.Results), d.Stages)
	}
	if f := d.Results[0]; f.Status != hawaii.TestFailed || !strings.Contains(f.Message, "sold 101 of 100 seats") {
		t.Errorf("failed case: %+v", f)
	}
	// Pages: failures first, then the rest; one stage only.
	r = e.do(nil, "GET", fmt.Sprintf("/api/v1/builds/%d?limit=2&offset=2", id), e.tokens[auth.Viewer], nil)
	d = buildDetail{}
	if err := json.Unmarshal([]byte(r.body), &d); err != nil || len(d.Results) != 2 || d.ResultsTotal != 5 ||
		d.ResultsFailing != 2 || d.ResultsNext == nil || *d.ResultsNext != 4 || d.Results[0].Status == hawaii.TestFailed {
		t.Errorf("second page of 2 = %d %s", r.status, r.body)
	}
	r = e.do(nil, "GET", fmt.Sprintf("/api/v1/builds/%d?stage=qa", id), e.tokens[auth.Viewer], nil)
	d = buildDetail{}
	if err := json.Unmarshal([]byte(r.body), &d); err != nil || len(d.Results) != 1 || d.ResultsNext != nil {
		t.Errorf("qa results = %d %s", r.status, r.body)
	}
	if r = e.do(nil, "GET", fmt.Sprintf("/api/v1/builds/%d?stage=beta", id), e.tokens[auth.Viewer], nil); r.status != http.StatusBadRequest {
		t.Errorf("stage=beta = %d %s, want 400", r.status, r.body)
	}
	events, _ := store.AuditEvents(t.Context(), hawaii.AuditQuery{Action: hawaii.ActionTestsReported})
	if len(events) != 2 || events[0].Actor != "webhook:jenkins" || events[1].Actor != "developer-user" || events[1].Stage != hawaii.StageAlpha {
		t.Errorf("test run audit: %+v", events)
	}
}

func TestBuildListAndAudit(t *testing.T) {
	e, _, _ := newBuildEnv(t)
	dev, viewer := e.tokens[auth.Developer], e.tokens[auth.Viewer]
	for i := range 5 {
		body := reportJSON(fmt.Sprintf("l-%d", i))
		if i%2 == 1 {
			body = strings.Replace(body, `"inventory"`, `"checkpoint"`, 1)
		}
		if r := e.do(nil, "POST", "/api/v1/builds", dev, strings.NewReader(body)); r.status != http.StatusCreated {
			t.Fatalf("report %d = %d %s", i, r.status, r.body)
		}
	}
	var page buildPage
	get := func(path string) {
		t.Helper()
		r := e.do(nil, "GET", path, viewer, nil)
		page = buildPage{}
		if err := json.Unmarshal([]byte(r.body), &page); err != nil || r.status != http.StatusOK {
			t.Fatalf("%s = %d %s", path, r.status, r.body)
		}
	}
	get("/api/v1/builds?service=inventory&limit=2")
	if len(page.Builds) != 2 || page.Builds[0].GUID != "l-4" || page.Builds[1].GUID != "l-2" || page.Next == "" {
		t.Fatalf("page 1: %+v", page)
	}
	get("/api/v1/builds?service=inventory&limit=2&before=" + page.Next)
	if len(page.Builds) != 1 || page.Builds[0].GUID != "l-0" || page.Next != "" {
		t.Fatalf("page 2: %+v", page)
	}
	get("/api/v1/builds")
	if len(page.Builds) != 5 {
		t.Fatalf("all: %d builds", len(page.Builds))
	}
	if r := e.do(nil, "GET", "/api/v1/builds?limit=x", viewer, nil); r.status != http.StatusBadRequest {
		t.Errorf("limit=x = %d", r.status)
	}
	if r := e.do(nil, "GET", "/api/v1/builds/99", viewer, nil); r.status != http.StatusNotFound {
		t.Errorf("missing build = %d", r.status)
	}
	r := e.do(nil, "GET", "/api/v1/audit?service=checkpoint", viewer, nil)
	var ap auditPage
	if err := json.Unmarshal([]byte(r.body), &ap); err != nil || len(ap.Events) != 2 || ap.Events[0].Action != hawaii.ActionBuildReported {
		t.Fatalf("audit = %d %s", r.status, r.body)
	}
	if r := e.do(nil, "GET", "/api/v1/audit", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous audit = %d", r.status)
	}
}

func TestBuildReportRateLimited(t *testing.T) {
	e, _, _ := newBuildEnv(t, func(b *BuildAPI) { b.Rate, b.Burst = 0.5, 2 })
	dev := e.tokens[auth.Developer]
	for i := range 2 {
		if r := e.do(nil, "POST", "/api/v1/builds", dev, strings.NewReader(reportJSON(fmt.Sprint("rl-", i)))); r.status != http.StatusCreated {
			t.Fatalf("report %d = %d", i, r.status)
		}
	}
	r := e.do(nil, "POST", "/api/v1/builds", dev, strings.NewReader(reportJSON("rl-2")))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" || decodeError(t, r).Code != "rate_limited" {
		t.Fatalf("over the rate = %d %s Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
}
