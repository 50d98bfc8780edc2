package instrument

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/sdk"
	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

const (
	traceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent = "00-" + traceID + "-00f067aa0ba902b7-01"
)

func newInstrumented(t *testing.T) (http.Handler, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var log bytes.Buffer
	mw, err := New(Config{Service: "inventory", Registerer: reg, AccessLog: &log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			api.WriteError(w, http.StatusNotFound, api.Error{Error: "event not found", Code: "event_not_found"})
			return
		}
		w.Write([]byte(`{}`))
	})
	mux.HandleFunc("GET /trace", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(TraceID(r.Context())))
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	return mw.Wrap(mux), reg, &log
}

func serve(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMetricsAreLabelledByRoutePattern(t *testing.T) {
	h, reg, _ := newInstrumented(t)
	for _, path := range []string{"/events/a", "/events/b", "/events/missing", "/no/such/path"} {
		serve(h, "GET", path, nil)
	}
	serve(h, "GET", "/panic", nil)

	counts, samples := series(t, reg)
	want := map[string]float64{
		`code="200",route="GET /events/{id}",service="inventory"`: 2,
		`code="404",route="GET /events/{id}",service="inventory"`: 1,
		`code="404",route="unmatched",service="inventory"`:        1,
		`code="500",route="GET /panic",service="inventory"`:       1,
	}
	if len(counts) != len(want) {
		t.Errorf("http_requests_total series = %v, want %v", counts, want)
	}
	for labels, n := range want {
		if counts[labels] != n {
			t.Errorf("http_requests_total{%s} = %v, want %v", labels, counts[labels], n)
		}
	}
	wantSamples := map[string]uint64{
		`route="GET /events/{id}",service="inventory"`: 3,
		`route="unmatched",service="inventory"`:        1,
		`route="GET /panic",service="inventory"`:       1,
	}
	if len(samples) != len(wantSamples) {
		t.Errorf("http_request_duration_seconds series = %v, want %v", samples, wantSamples)
	}
	for labels, n := range wantSamples {
		if samples[labels] != n {
			t.Errorf("http_request_duration_seconds{%s} count = %d, want %d", labels, samples[labels], n)
		}
	}
}

// series gathers the request counter by label set and the histogram's
// sample counts by label set.
func series(t *testing.T, reg *prometheus.Registry) (map[string]float64, map[string]uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts, samples := map[string]float64{}, map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := strings.Join(labels, ",")
			switch mf.GetName() {
			case "http_requests_total":
				counts[key] = m.GetCounter().GetValue()
			case "http_request_duration_seconds":
				samples[key] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return counts, samples
}

func TestAccessLogAndTraceID(t *testing.T) {
	tests := []struct {
		name      string
		header    http.Header
		want      string // "" means a generated W3C trace ID
		requestID string
	}{
		{"traceparent", http.Header{"Traceparent": {traceparent}}, traceID, ""},
		{"b3", http.Header{"B3": {traceID + "-00f067aa0ba902b7-1"}}, traceID, ""},
		{"b3 64-bit", http.Header{"X-B3-Traceid": {"a3ce929d0e0e4736"}, "X-B3-Spanid": {"00f067aa0ba902b7"}}, "0000000000000000a3ce929d0e0e4736", ""},
		{"request id is logged, not the trace id", http.Header{"X-Request-Id": {"req-42"}}, "", "req-42"},
		{"traceparent with request id", http.Header{"Traceparent": {traceparent}, "X-Request-Id": {"req-42"}}, traceID, "req-42"},
		{"malformed traceparent ignored", http.Header{"Traceparent": {"00-xyz-00f067aa0ba902b7-01"}}, "", ""},
		{"unprintable request id dropped", http.Header{"X-Request-Id": {"a b"}}, "", ""},
		{"all-zero trace id is invalid", http.Header{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, "", ""},
		{"unsampled trace still has its id", http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-00"}}, traceID, ""},
		{"nothing", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, log := newInstrumented(t)
			rec := serve(h, "GET", "/trace", tt.header)
			got := rec.Header().Get(TraceIDHeader)
			if tt.want != "" && got != tt.want {
				t.Errorf("X-Trace-Id = %q, want %q", got, tt.want)
			}
			if tt.want == "" && (!isTraceID(got) || got == traceID) {
				t.Errorf("X-Trace-Id = %q, want a generated 32-hex trace ID", got)
			}
			if body := rec.Body.String(); body != got {
				t.Errorf("handler saw trace ID %q, header says %q", body, got)
			}
			var line AccessLine
			if err := json.Unmarshal(log.Bytes(), &line); err != nil {
				t.Fatalf("access log %q is not one JSON object: %v", log, err)
			}
			if line.TraceID != got || line.Service != "inventory" || line.Route != "GET /trace" ||
				line.Method != "GET" || line.Status != 200 || line.DurationMS < 0 || line.Time.IsZero() || line.RequestID != tt.requestID {
				t.Errorf("access log line = %+v", line)
			}
		})
	}
}

func isTraceID(s string) bool {
	id, err := ktrace.ParseTraceID(s)
	return err == nil && len(s) == 32 && id.String() == s
}

func TestAccessLogOneLinePerRequest(t *testing.T) {
	h, _, log := newInstrumented(t)
	serve(h, "GET", "/events/a", nil)
	serve(h, "GET", "/events/missing", nil)
	serve(h, "GET", "/panic", nil)
	var statuses []int
	sc := bufio.NewScanner(log)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, key := range []string{"service", "method", "route", "status", "duration_ms", "trace_id"} {
			if _, ok := line[key]; !ok {
				t.Errorf("line %q lacks %q", sc.Text(), key)
			}
		}
		statuses = append(statuses, int(line["status"].(float64)))
	}
	if len(statuses) != 3 || statuses[0] != 200 || statuses[1] != 404 || statuses[2] != 500 {
		t.Errorf("statuses logged = %v, want [200 404 500]", statuses)
	}
}

func TestPanicAnswersJSON(t *testing.T) {
	h, _, _ := newInstrumented(t)
	rec := serve(h, "GET", "/panic", nil)
	var e api.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != 500 || err != nil || e.Code != api.CodeInternal {
		t.Errorf("panic answered %d %q", rec.Code, rec.Body)
	}
}

// The access log, the span and the downstream call share one trace ID,
// and the exported server span carries the route.
func TestOneTraceIDForLogsSpansAndCalls(t *testing.T) {
	collector := sdktest.NewCollector()
	defer collector.Close()
	var got http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer upstream.Close()
	tracer, err := sdk.New(sdk.Config{ServiceName: "checkpoint", Endpoint: collector.URL})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &sdk.Transport{Tracer: tracer, Base: upstream.Client().Transport}}

	var log bytes.Buffer
	mw, err := New(Config{Service: "checkpoint", AccessLog: &log, Tracer: tracer})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /call/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", upstream.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	})
	serve(mw.Wrap(mux), "GET", "/call/7", http.Header{"Traceparent": {traceparent}})
	serve(mw.Wrap(mux), "GET", "/healthz", nil)
	if err := tracer.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	var line AccessLine
	if err := json.NewDecoder(&log).Decode(&line); err != nil {
		t.Fatal(err)
	}
	down, ok := sdk.Extract(got)
	if line.TraceID != traceID || !ok || down.TraceID.String() != traceID {
		t.Errorf("access log trace %q, downstream %v %v; want %s on both", line.TraceID, down.TraceID, ok, traceID)
	}
	if tp := got.Get(TraceparentHeader); tp == traceparent {
		t.Errorf("traceparent forwarded unchanged; want a new parent-id")
	}
	spans := collector.Spans()
	if len(spans) != 2 { // server and client; /healthz is not recorded
		t.Fatalf("%d spans exported, want 2", len(spans))
	}
	server := spans[1]
	if server.GetName() != "GET /call/{id}" || server.TraceID() != traceID || server.Attr("http.route").GetStringValue() != "GET /call/{id}" {
		t.Errorf("server span %q in trace %s, route %v", server.GetName(), server.TraceID(), server.Attr("http.route"))
	}
	if spans[0].ParentSpanID() != server.SpanID() || down.SpanID.String() != spans[0].SpanID() {
		t.Errorf("client span %s (parent %s) and downstream parent %s; server span %s", spans[0].SpanID(), spans[0].ParentSpanID(), down.SpanID, server.SpanID())
	}
}
