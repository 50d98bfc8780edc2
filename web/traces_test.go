package web

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// traceBase is when the fixture trace starts: two minutes before the test
// server's clock, inside the default one-hour search window.
var traceBase = started.Add(time.Minute)

const (
	checkoutTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	shortTrace    = "00000000000000000000000000000abc"
)

func mustTraceID(t *testing.T, s string) ktrace.TraceID {
	t.Helper()
	id, err := ktrace.ParseTraceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func spanID(b byte) ktrace.SpanID { return ktrace.SpanID{0, 0, 0, 0, 0, 0, 0, b} }

// checkoutSpans is a ticket validation: checkpoint calls inventory, whose
// clock runs 40 ms behind (its server span starts before the client
// span), and the stock lookup fails.
func checkoutSpans(t *testing.T) []ktrace.Span {
	id := mustTraceID(t, checkoutTrace)
	at := func(ms int) time.Time { return traceBase.Add(time.Duration(ms) * time.Millisecond) }
	proc := map[string]string{"host.name": "node-1", "telemetry.sdk.language": "go"}
	return []ktrace.Span{
		{TraceID: id, SpanID: spanID(1), Service: "checkpoint", Name: "GET /validate", Kind: ktrace.KindServer,
			Start: at(0), Duration: 120 * time.Millisecond, Tags: map[string]string{"http.method": "GET", "http.status_code": "500"},
			Status: ktrace.StatusError, StatusMessage: "inventory failed", Process: proc},
		{TraceID: id, SpanID: spanID(2), ParentSpanID: spanID(1), Service: "checkpoint", Name: "GET inventory", Kind: ktrace.KindClient,
			Start: at(10), Duration: 100 * time.Millisecond, Process: proc,
			Annotations: []ktrace.Annotation{{Time: at(10), Value: "cs"}, {Time: at(110), Value: "cr"}}},
		{TraceID: id, SpanID: spanID(3), ParentSpanID: spanID(2), Service: "inventory", Name: "GET /tickets/{id}", Kind: ktrace.KindServer,
			Start: at(-20), Duration: 80 * time.Millisecond, Process: map[string]string{"host.name": "node-2"},
			Annotations: []ktrace.Annotation{{Time: at(-20), Value: "sr"}, {Time: at(60), Value: "ss"}}},
		{TraceID: id, SpanID: spanID(4), ParentSpanID: spanID(3), Service: "inventory", Name: "SELECT stock", Kind: ktrace.KindClient,
			Start: at(-10), Duration: 30 * time.Millisecond, Status: ktrace.StatusError, StatusMessage: "deadlock"},
	}
}

// traceEnv is a server with an in-memory span store holding the checkout
// trace, a fast one-span trace, and one that has expired.
func traceEnv(t *testing.T) (*env, *inmem.Store) {
	t.Helper()
	store := inmem.New(inmem.Config{})
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()
	old := ktrace.Span{TraceID: mustTraceID(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), SpanID: spanID(9), Service: "checkpoint",
		Name: "GET /old", Kind: ktrace.KindServer, Start: traceBase.Add(-48 * time.Hour), Duration: time.Millisecond}
	if err := store.WriteSpans(ctx, []ktrace.Span{old}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Expire(ctx, traceBase.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	fast := ktrace.Span{TraceID: mustTraceID(t, shortTrace), SpanID: spanID(1), Service: "checkpoint", Name: "GET /healthz",
		Kind: ktrace.KindServer, Start: traceBase.Add(30 * time.Second), Duration: 2 * time.Millisecond}
	if err := store.WriteSpans(ctx, append(checkoutSpans(t), fast)); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Traces = store })
	return e, store
}

func decodeAs[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q is not the expected JSON: %v", r.body, err)
	}
	return v
}

func TestTraceAPILookup(t *testing.T) {
	e, _ := traceEnv(t)
	tok := e.tokens[auth.Viewer]

	r := e.do(nil, "GET", "/api/v1/traces/"+checkoutTrace, tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("found trace: %d %s", r.status, r.body)
	}
	got := decodeAs[traceJSON](t, r)
	if got.TraceID != checkoutTrace || got.Status != "found" || len(got.Spans) != 4 {
		t.Fatalf("trace %s status %s with %d spans, want %s found with 4", got.TraceID, got.Status, len(got.Spans), checkoutTrace)
	}
	// The raw body, for the exact wire format DESIGN.md promises.
	var raw struct {
		Spans []map[string]any `json:"spans"`
	}
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"spanID", "parentSpanID", "service", "name", "kind", "start", "durationMicros", "tags", "annotations", "status", "error", "process"} {
		if _, ok := raw.Spans[0][key]; !ok {
			t.Errorf("span lacks %q: %v", key, raw.Spans[0])
		}
	}
	byID := map[string]spanJSON{}
	for _, s := range got.Spans {
		byID[s.SpanID] = s
	}
	root := byID[spanID(1).String()]
	if root.ParentSpanID != "" || root.Kind != "server" || root.DurationMicros != 120000 || !root.Error || root.Status != "error" ||
		root.StatusMessage != "inventory failed" || root.Tags["http.status_code"] != "500" || root.Process["host.name"] != "node-1" {
		t.Errorf("root span %+v", root)
	}
	if want := traceBase.Add(-20 * time.Millisecond).Format(time.RFC3339Nano); raw.Spans[0]["start"] != want {
		t.Errorf("first span start %v, want RFC 3339 %s (the store's start order)", raw.Spans[0]["start"], want)
	}
	srv := byID[spanID(3).String()]
	if srv.ParentSpanID != spanID(2).String() || len(srv.Annotations) != 2 || srv.Annotations[0].Value != "sr" {
		t.Errorf("server span %+v", srv)
	}
	// The server started 30 ms before its client: centred in it, it moves
	// by +40 ms; its child moves with it but is not itself adjusted.
	if srv.ClockSkew == nil || srv.ClockSkew.DeltaMicros != 40000 || !srv.ClockSkew.AdjustedStart.Equal(traceBase.Add(20*time.Millisecond)) {
		t.Errorf("server span clock skew %+v, want +40ms to start at +20ms", srv.ClockSkew)
	}
	if !srv.Start.Equal(traceBase.Add(-20 * time.Millisecond)) {
		t.Errorf("server span start %v: the API must keep the reported start", srv.Start)
	}
	if c := byID[spanID(4).String()]; c.ClockSkew != nil {
		t.Errorf("the server's child carries its own skew %+v", c.ClockSkew)
	}

	for name, tc := range map[string]struct {
		id, status string
	}{
		"unknown": {"0123456789abcdef0123456789abcdef", "unknown"},
		"expired": {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "expired"},
		"64-bit":  {"0000000000000abc", "found"},
	} {
		r := e.do(nil, "GET", "/api/v1/traces/"+tc.id, tok, nil)
		got := decodeAs[traceJSON](t, r)
		if r.status != http.StatusOK || got.Status != tc.status || got.Spans == nil {
			t.Errorf("%s: %d, status %q, spans %v; want 200, %q and a list", name, r.status, got.Status, got.Spans, tc.status)
		}
	}
	if !strings.Contains(e.do(nil, "GET", "/api/v1/traces/0000000000000abc", tok, nil).body, `"traceID":"`+shortTrace+`"`) {
		t.Errorf("a 64-bit ID is not answered with its zero-padded 128-bit form")
	}

	for id, want := range map[string]string{
		"xyz":                              "want 16 or 32 hex digits",
		"zz000000000000000000000000000000": "not hex",
		"00000000000000000000000000000000": "all zeros",
	} {
		r := e.do(nil, "GET", "/api/v1/traces/"+id, tok, nil)
		eb := decodeError(t, r)
		if r.status != http.StatusBadRequest || eb.Code != "invalid" || !strings.Contains(eb.Error, want) || strings.HasPrefix(eb.Error, "invalid") {
			t.Errorf("malformed ID %q: %d %+v, want 400 saying %q", id, r.status, eb, want)
		}
	}
}

func TestTraceAPIAuth(t *testing.T) {
	e, _ := traceEnv(t)
	for _, path := range []string{"/api/v1/traces/" + checkoutTrace, "/api/v1/traces", "/api/v1/traces/services", "/api/v1/traces/dependencies"} {
		if r := e.do(nil, "GET", path, "", nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, r.status)
		}
		if r := e.do(nil, "GET", path, "not-a-token", nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, r.status)
		}
	}
	// A signed-in browser reads with its session (the console's operation
	// list does).
	browser := e.signIn(e.tokens[auth.Viewer])
	if r := e.do(browser, "GET", "/api/v1/traces/services/checkpoint/operations", "", nil); r.status != http.StatusOK {
		t.Errorf("operations with a session: %d", r.status)
	}
}

func TestTraceAPISearch(t *testing.T) {
	e, _ := traceEnv(t)
	tok := e.tokens[auth.Viewer]
	search := func(q string) []traceSummaryJSON {
		t.Helper()
		r := e.do(nil, "GET", "/api/v1/traces?"+q, tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("search %q: %d %s", q, r.status, r.body)
		}
		return decodeAs[struct {
			Traces []traceSummaryJSON `json:"traces"`
		}](t, r).Traces
	}
	ids := func(res []traceSummaryJSON) string {
		var s []string
		for _, r := range res {
			s = append(s, r.TraceID)
		}
		return strings.Join(s, ",")
	}
	from := url.QueryEscape(traceBase.Add(-time.Minute).Format(time.RFC3339))
	for _, tc := range []struct{ name, query, want string }{
		{"default window, newest first", "", shortTrace + "," + checkoutTrace},
		{"by service", "service=inventory", checkoutTrace},
		{"by operation", "service=checkpoint&operation=GET+%2Fhealthz", shortTrace},
		{"by min duration", "minDuration=50ms", checkoutTrace},
		{"by max duration", "maxDuration=10ms", shortTrace},
		{"limit", "limit=1", shortTrace},
		{"RFC 3339 range", "start=" + from + "&end=" + url.QueryEscape(traceBase.Add(10*time.Second).Format(time.RFC3339)), checkoutTrace},
		{"unix seconds range", "start=" + unix(traceBase.Add(10*time.Second)) + "&end=" + unix(traceBase.Add(time.Minute)), shortTrace},
		{"unix microseconds", "start=" + unixMicro(traceBase.Add(10*time.Second)), shortTrace},
		{"by tag", "tag=http.status_code:500", checkoutTrace},
		{"nothing before", "end=" + unix(traceBase.Add(-time.Hour)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(search(tc.query)); got != tc.want {
				t.Errorf("search %q found %q, want %q", tc.query, got, tc.want)
			}
		})
	}
	res := search("service=inventory")
	if s := res[0]; s.RootService != "checkpoint" || s.RootName != "GET /validate" || s.SpanCount != 4 || s.ErrorCount != 2 ||
		strings.Join(s.Services, ",") != "checkpoint,inventory" || s.DurationMicros < 120000 {
		t.Errorf("summary %+v", s)
	}

	for _, tc := range []struct{ query, want string }{
		{"minDuration=250", `minDuration "250": want a duration with a unit, like 250ms or 1.5s`},
		{"minDuration=-1s", `minDuration "-1s"`},
		{"minDuration=2s&maxDuration=1s", "maxDuration 1s is below minDuration 2s"},
		{"start=yesterday", `start "yesterday": want RFC 3339`},
		{"end=2026-13-01T00:00:00Z", `end "2026-13-01T00:00:00Z"`},
		{"start=" + unix(traceBase) + "&end=" + unix(traceBase.Add(-time.Second)), "is not before end"},
		{"limit=0", `limit "0": want a whole number from 1 to 1000`},
		{"limit=5000", `limit "5000"`},
		{"limit=ten", `limit "ten"`},
		{"operation=GET", `operation "GET" needs a service`},
		{"tag=novalue", `tag "novalue": want key:value`},
	} {
		r := e.do(nil, "GET", "/api/v1/traces?"+tc.query, tok, nil)
		eb := decodeError(t, r)
		if r.status != http.StatusBadRequest || !strings.Contains(eb.Error, tc.want) {
			t.Errorf("search %q: %d %q, want 400 saying %q", tc.query, r.status, eb.Error, tc.want)
		}
	}
}

func unix(t time.Time) string      { return strconv.FormatInt(t.Unix(), 10) }
func unixMicro(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func TestTraceAPIServicesOperationsDependencies(t *testing.T) {
	e, _ := traceEnv(t)
	tok := e.tokens[auth.Viewer]
	r := e.do(nil, "GET", "/api/v1/traces/services", tok, nil)
	if r.status != 200 || !strings.Contains(r.body, `"services":["checkpoint","inventory"]`) {
		t.Errorf("services: %d %s", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/traces/services/inventory/operations", tok, nil)
	if r.status != 200 || r.body != `{"operations":["GET /tickets/{id}","SELECT stock"],"service":"inventory"}` {
		t.Errorf("operations: %d %s", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/traces/services/nobody/operations", tok, nil)
	if r.status != 200 || !strings.Contains(r.body, `"operations":[]`) {
		t.Errorf("operations of an unknown service: %d %s, want an empty list", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/traces/dependencies", tok, nil)
	deps := decodeAs[struct {
		Dependencies []dependencyJSON `json:"dependencies"`
	}](t, r).Dependencies
	found := false
	for _, d := range deps {
		if d.Parent == "checkpoint" && d.Child == "inventory" && d.CallCount == 1 {
			found = true
		}
	}
	if r.status != 200 || !found {
		t.Errorf("dependencies: %d %s, want checkpoint → inventory once", r.status, r.body)
	}
	r = e.do(nil, "GET", "/api/v1/traces/dependencies?end="+unix(traceBase.Add(-2*time.Hour)), tok, nil)
	if r.status != 200 || r.body != `{"dependencies":[]}` {
		t.Errorf("dependencies of an empty window: %d %s", r.status, r.body)
	}
	if r := e.do(nil, "GET", "/api/v1/traces/dependencies?start=soon", tok, nil); r.status != http.StatusBadRequest {
		t.Errorf("dependencies with a bad start: %d", r.status)
	}
}

func TestTraceAPIWithoutStore(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/api/v1/traces/"+checkoutTrace, e.tokens[auth.Viewer], nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("lookup without a span store: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	browser := e.signIn(e.tokens[auth.Viewer])
	if r := e.do(browser, "GET", "/traces", "", nil); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "No span store on this server") {
		t.Fatalf("search page without a span store: %d", r.status)
	}
}

var traceDataRE = regexp.MustCompile(`(?s)<script type="application/json" id="trace-data">(.*?)</script>`)

func TestTracePages(t *testing.T) {
	e, _ := traceEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])

	// The trace-ID box submits to /traces?id=, cleaned of what a copy
	// from a log line drags along.
	for in, want := range map[string]string{
		" 4BF92F3577B34DA6A3CE929D0E0E4736 ": "/traces/" + checkoutTrace,
		"trace_id=" + checkoutTrace:          "/traces/" + checkoutTrace,
		`"` + checkoutTrace + `"`:            "/traces/" + checkoutTrace,
		"not/an id":                          "/traces/not%2Fan%20id",
	} {
		r := e.do(browser, "GET", "/traces?id="+url.QueryEscape(in), "", nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("trace box %q: %d to %q, want 303 to %q", in, r.status, r.header.Get("Location"), want)
		}
	}
	r := e.do(browser, "GET", "/services", "", nil)
	if !strings.Contains(r.body, `id="trace-id-box"`) || !strings.Contains(r.body, `action="/traces"`) {
		t.Errorf("the services page has no trace-ID box")
	}

	r = e.do(browser, "GET", "/traces/"+checkoutTrace, "", nil)
	if r.status != 200 {
		t.Fatalf("trace page: %d", r.status)
	}
	for _, want := range []string{checkoutTrace, `data-testid="span-count">4<`, "checkpoint", "inventory", "1 span was shifted to correct clock skew", "/static/trace.js"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("trace page lacks %q", want)
		}
	}
	m := traceDataRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("trace page embeds no trace data")
	}
	var data waterfallData
	if err := json.Unmarshal([]byte(m[1]), &data); err != nil {
		t.Fatalf("embedded trace data is not JSON (%v): %.200s", err, m[1])
	}
	var order []string
	for _, s := range data.Spans {
		order = append(order, s.Name)
	}
	if got := strings.Join(order, " | "); got != "GET /validate | GET inventory | GET /tickets/{id} | SELECT stock" {
		t.Errorf("waterfall order %q, want depth first", got)
	}
	if s := data.Spans[2]; s.Skew != int64(40*time.Millisecond) || s.Offset != int64(20*time.Millisecond) || !s.Critical || s.Depth != 2 {
		t.Errorf("adjusted server span in the waterfall %+v", s)
	}
	if s := data.Spans[3]; !s.Error || s.Message != "deadlock" || data.Services[s.Service] != "inventory" {
		t.Errorf("failed span in the waterfall %+v", s)
	}

	for path, want := range map[string]struct {
		status int
		text   string
	}{
		"/traces/0123456789abcdef0123456789abcdef": {200, "kplane has never received this trace"},
		"/traces/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": {200, "This trace has expired"},
		"/traces/not-hex":                          {400, "want 16 or 32 hex digits"},
	} {
		r := e.do(browser, "GET", path, "", nil)
		if r.status != want.status || !strings.Contains(html.UnescapeString(r.body), want.text) {
			t.Errorf("%s: %d, want %d and a page saying %q", path, r.status, want.status, want.text)
		}
	}
	// Someone's pasted markup is shown, not run.
	r = e.do(browser, "GET", "/traces/"+url.PathEscape("<b>x</b>"), "", nil)
	if strings.Contains(r.body, "<b>x</b>") {
		t.Errorf("the invalid-ID page echoes raw markup")
	}
}

func TestTraceSearchPage(t *testing.T) {
	e, _ := traceEnv(t)
	browser := e.signIn(e.tokens[auth.Viewer])
	r := e.do(browser, "GET", "/traces", "", nil)
	if r.status != 200 {
		t.Fatalf("search page: %d", r.status)
	}
	for _, want := range []string{
		`data-testid="result-count">2 traces<`,
		`<a href="/traces/` + checkoutTrace + `" data-trace="` + checkoutTrace + `"><circle class="pt pt-err"`,
		`<a href="/traces/` + shortTrace + `" data-trace="` + shortTrace + `"><circle class="pt"`,
		`<g class="node" data-service="checkpoint">`,
		`<g class="node" data-service="inventory">`,
		`<option value="checkpoint" >checkpoint</option>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("search page lacks %s", want)
		}
	}
	r = e.do(browser, "GET", "/traces?service=inventory&lookback=24h", "", nil)
	if !strings.Contains(r.body, `data-testid="result-count">1 trace<`) || !strings.Contains(html.UnescapeString(r.body), `<option value="GET /tickets/{id}" >`) {
		t.Errorf("search by service: no single result, or no operations of the service")
	}
	r = e.do(browser, "GET", "/traces?minDuration=fast", "", nil)
	if r.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(r.body), `minDuration "fast": want a duration with a unit`) {
		t.Errorf("bad search: %d, want 400 and the reason on the page", r.status)
	}
	r = e.do(browser, "GET", "/traces?service=nobody", "", nil)
	if !strings.Contains(r.body, "No traces found") {
		t.Errorf("empty search result does not say so")
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, exp := range map[string]time.Time{
		"2026-03-01T12:00:00Z":      want,
		"2026-03-01T13:00:00+01:00": want,
		"1772366400":                want,
		"1772366400.5":              want.Add(500 * time.Millisecond),
		"1772366400000":             want,
		"1772366400000000":          want,
		"1772366400000000000":       want,
	} {
		got, err := parseTime("t", in)
		if err != nil || !got.Equal(exp) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, exp)
		}
	}
	for _, in := range []string{"", "now", "-5", "1e400", "NaN"} {
		if _, err := parseTime("t", in); err == nil {
			t.Errorf("parseTime(%q) accepted", in)
		}
	}
}

func TestFormatSpanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                        "0",
		1500 * time.Nanosecond:   "1.50µs",
		250 * time.Microsecond:   "250µs",
		12345 * time.Microsecond: "12.3ms",
		250 * time.Millisecond:   "250ms",
		1500 * time.Millisecond:  "1.50s",
		90 * time.Second:         "90.0s",
	} {
		if got := formatSpanDuration(d); got != want {
			t.Errorf("formatSpanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
