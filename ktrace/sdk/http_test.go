package sdk

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

// client returns an HTTP client whose connections close with the test.
func client(t *testing.T, base http.RoundTripper) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	if base == nil {
		base = tr
	}
	return &http.Client{Transport: base}
}

func get(t *testing.T, c *http.Client, url string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func byName(spans []sdktest.Span) map[string]sdktest.Span {
	m := map[string]sdktest.Span{}
	for _, s := range spans {
		m[s.GetName()] = s
	}
	return m
}

// TestMiddlewareAndTransport runs front → back over real HTTP: the front
// server span, its client span and the back server span must form one
// trace, continuing the caller's.
func TestMiddlewareAndTransport(t *testing.T) {
	c := newCollector(t)
	backTracer, _ := newTracer(t, Config{ServiceName: "back", Endpoint: c.URL})
	frontTracer, _ := newTracer(t, Config{ServiceName: "front", Endpoint: c.URL})

	backMux := http.NewServeMux()
	backMux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		SpanFromContext(r.Context()).AddEvent("looked up")
		if r.PathValue("id") == "broken" {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	back := httptest.NewServer(Middleware(backTracer, backMux, HTTPOptions{}))
	t.Cleanup(back.Close)

	out := client(t, &Transport{Tracer: frontTracer, Base: client(t, nil).Transport})
	frontMux := http.NewServeMux()
	frontMux.HandleFunc("GET /front/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", back.URL+"/items/"+r.PathValue("id"), nil)
		resp, err := out.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})
	front := httptest.NewServer(Middleware(frontTracer, frontMux, HTTPOptions{}))
	t.Cleanup(front.Close)

	caller := "00-" + tid128 + "-" + sid + "-01"
	if resp := get(t, client(t, nil), front.URL+"/front/a", http.Header{"Traceparent": {caller}, "Tracestate": {"k=v"}}); resp.StatusCode != 200 {
		t.Fatalf("front answered %d", resp.StatusCode)
	}
	shutdown(t, frontTracer)
	shutdown(t, backTracer)

	spans := byName(c.Spans())
	fs, cs, bs := spans["GET /front/{id}"], spans["GET "+back.Listener.Addr().String()], spans["GET /items/{id}"]
	if fs.Span == nil || cs.Span == nil || bs.Span == nil || len(spans) != 3 {
		t.Fatalf("spans %v; want front server, client, back server", spans)
	}
	for _, s := range []sdktest.Span{fs, cs, bs} {
		if s.TraceID() != tid128 {
			t.Errorf("%s in trace %s, want the caller's %s", s.GetName(), s.TraceID(), tid128)
		}
		if s.GetTraceState() != "k=v" {
			t.Errorf("%s tracestate %q, want k=v passed through", s.GetName(), s.GetTraceState())
		}
	}
	if fs.ParentSpanID() != sid || cs.ParentSpanID() != fs.SpanID() || bs.ParentSpanID() != cs.SpanID() {
		t.Errorf("parentage: front←%s client←%s back←%s; want front←caller %s, client←front %s, back←client %s",
			fs.ParentSpanID(), cs.ParentSpanID(), bs.ParentSpanID(), sid, fs.SpanID(), cs.SpanID())
	}
	if fs.Service != "front" || cs.Service != "front" || bs.Service != "back" {
		t.Errorf("services %q %q %q", fs.Service, cs.Service, bs.Service)
	}
	if fs.GetKind() != tracepb.Span_SPAN_KIND_SERVER || cs.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || bs.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("kinds %v %v %v", fs.GetKind(), cs.GetKind(), bs.GetKind())
	}
	if bs.Attr("http.route").GetStringValue() != "GET /items/{id}" || bs.Attr("http.request.method").GetStringValue() != "GET" ||
		bs.Attr("http.response.status_code").GetIntValue() != 200 || bs.Attr("client.address").GetStringValue() != "127.0.0.1" ||
		bs.Attr("url.path").GetStringValue() != "/items/a" || len(bs.GetEvents()) != 1 {
		t.Errorf("back span attributes %v events %v", bs.GetAttributes(), bs.GetEvents())
	}
	if cs.Attr("http.response.status_code").GetIntValue() != 200 || cs.Attr("server.address").GetStringValue() != "127.0.0.1" {
		t.Errorf("client span attributes %v", cs.GetAttributes())
	}
	if cs.GetEndTimeUnixNano() < bs.GetEndTimeUnixNano() || fs.GetEndTimeUnixNano() < cs.GetEndTimeUnixNano() {
		t.Error("a parent span ended before its child")
	}
	if fs.GetFlags()&0x300 != 0x300 || cs.GetFlags()&0x300 != 0x100 {
		t.Errorf("remote-parent flags: front %x, client %x", fs.GetFlags(), cs.GetFlags())
	}
}

func TestMiddlewareStatusAndErrors(t *testing.T) {
	c := newCollector(t)
	tr, _ := newTracer(t, Config{Endpoint: c.URL})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	mux.HandleFunc("GET /missing", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	h := Middleware(tr, mux, HTTPOptions{Filter: func(r *http.Request) bool { return r.URL.Path != "/healthz" }})

	for _, path := range []string{"/fail", "/missing", "/nowhere", "/healthz"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil))
	}()
	shutdown(t, tr)
	spans := byName(c.Spans())
	tests := []struct {
		name   string
		status int64
		err    bool
	}{
		{"GET /fail", 503, true},
		{"GET /missing", 404, false},
		{"GET", 404, false}, // unmatched: named by method only
		{"GET /panic", 500, true},
	}
	if len(spans) != len(tests) {
		t.Errorf("spans %v, want %d (healthz filtered out)", spans, len(tests))
	}
	for _, tt := range tests {
		s, ok := spans[tt.name]
		if !ok {
			t.Errorf("no span %q", tt.name)
			continue
		}
		isErr := s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR
		if got := s.Attr("http.response.status_code").GetIntValue(); got != tt.status || isErr != tt.err {
			t.Errorf("%s: status code %d error %v, want %d %v", tt.name, got, isErr, tt.status, tt.err)
		}
	}
}

func TestUnsampledRequestsPropagateButRecordNothing(t *testing.T) {
	c := newCollector(t)
	tr, reg := newTracer(t, Config{Endpoint: c.URL, Sampler: NeverSample()})
	var got http.Header
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	t.Cleanup(back.Close)
	out := client(t, &Transport{Tracer: tr, Base: client(t, nil).Transport})
	var seen SpanContext
	h := Middleware(tr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = SpanFromContext(r.Context()).SpanContext()
		req, _ := http.NewRequestWithContext(r.Context(), "GET", back.URL, nil)
		resp, err := out.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}), HTTPOptions{})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	shutdown(t, tr)

	sc, ok := Extract(got)
	if !seen.IsValid() || !ok || sc.TraceID != seen.TraceID || sc.Sampled {
		t.Errorf("downstream got %+v (%v) from a handler with %+v; want the same trace, unsampled", sc, ok, seen)
	}
	if n := len(c.Spans()); n != 0 || counter(t, reg, "ktrace_sdk_spans_queued_total") != 0 {
		t.Errorf("%d spans exported for an unsampled trace", n)
	}
}

func TestTransportWithoutTracerPropagatesContext(t *testing.T) {
	var got http.Header
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	t.Cleanup(back.Close)
	out := client(t, &Transport{Base: client(t, nil).Transport})
	tr, err := New(Config{ServiceName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tr.Start(t.Context(), "op")
	req, _ := http.NewRequestWithContext(ctx, "GET", back.URL, nil)
	resp, err := out.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc, ok := Extract(got); !ok || sc.TraceID != span.TraceID() || sc.SpanID != span.SpanContext().SpanID {
		t.Errorf("downstream got %+v, want the caller's span context %+v", sc, span.SpanContext())
	}
	if req.Header.Get("Traceparent") != "" {
		t.Error("the caller's request was modified")
	}
}

func TestGinMiddleware(t *testing.T) {
	gin.SetMode(gin.TestMode)
	c := newCollector(t)
	tr, _ := newTracer(t, Config{ServiceName: "web", Endpoint: c.URL})
	r := gin.New()
	r.Use(GinMiddleware(tr))
	var seen TraceID
	r.GET("/api/v1/traces/:id", func(c *gin.Context) {
		seen = SpanFromContext(c.Request.Context()).TraceID()
		c.Status(http.StatusOK)
	})
	r.GET("/boom", func(c *gin.Context) {
		_ = c.Error(io.ErrUnexpectedEOF)
		c.Status(http.StatusInternalServerError)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	hc := client(t, nil)
	get(t, hc, srv.URL+"/api/v1/traces/abc", http.Header{"B3": {tid64 + "-" + sid + "-1"}})
	get(t, hc, srv.URL+"/boom", nil)
	shutdown(t, tr)

	spans := byName(c.Spans())
	s, ok := spans["GET /api/v1/traces/:id"]
	if !ok {
		t.Fatalf("spans %v; want one named by the gin route", spans)
	}
	if s.TraceID() != "0000000000000000"+tid64 || s.ParentSpanID() != sid || seen.String() != s.TraceID() {
		t.Errorf("gin span trace %s parent %s (handler saw %s); want the B3 caller's", s.TraceID(), s.ParentSpanID(), seen)
	}
	if s.Attr("http.route").GetStringValue() != "/api/v1/traces/:id" {
		t.Errorf("route %v", s.Attr("http.route"))
	}
	b := spans["GET /boom"]
	if b.Span == nil || b.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || b.GetStatus().GetMessage() != io.ErrUnexpectedEOF.Error() {
		t.Errorf("boom span %v", b.Span)
	}
}
