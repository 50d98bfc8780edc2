// Package sdktest is an in-process OTLP/HTTP collector for tests of code
// instrumented with the ktrace SDK: it decodes what the SDK exports with
// the OpenTelemetry protobuf types, so a test sees exactly what ktrace
// would receive.
package sdktest

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with the service.name of its resource.
type Span struct {
	Service string
	*tracepb.Span
}

// TraceID and SpanID in hex, as logs and the ktrace API print them.
func (s Span) TraceID() string      { return hex.EncodeToString(s.Span.GetTraceId()) }
func (s Span) SpanID() string       { return hex.EncodeToString(s.Span.GetSpanId()) }
func (s Span) ParentSpanID() string { return hex.EncodeToString(s.Span.GetParentSpanId()) }

// Attr returns the attribute key of the span, nil if absent.
func (s Span) Attr(key string) *commonpb.AnyValue { return Attr(s.GetAttributes(), key) }

// Attr finds key among attributes.
func Attr(attrs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

// Collector accepts POST /v1/traces with an OTLP protobuf body.
type Collector struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []*coltracepb.ExportTraceServiceRequest
	spans     []Span
	malformed int
	// status, when set, answers each request instead of accepting it.
	status func(n int) int
	n      int
}

// NewCollector starts a collector; Close it when done.
func NewCollector() *Collector {
	c := &Collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	return c
}

// FailWith makes the collector answer the nth request (from 0) with
// status(n) when that is not 0, without keeping its spans.
func (c *Collector) FailWith(status func(n int) int) {
	c.mu.Lock()
	c.status = status
	c.mu.Unlock()
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n++
	if c.status != nil {
		if code := c.status(n); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	var req coltracepb.ExportTraceServiceRequest
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
		c.malformed++
		http.Error(w, "malformed OTLP protobuf", http.StatusBadRequest)
		return
	}
	c.requests = append(c.requests, &req)
	for _, rs := range req.GetResourceSpans() {
		service := Attr(rs.GetResource().GetAttributes(), "service.name").GetStringValue()
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, Span{Service: service, Span: s})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// Spans returns the spans accepted so far, in arrival order.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Requests returns the export requests accepted so far.
func (c *Collector) Requests() []*coltracepb.ExportTraceServiceRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*coltracepb.ExportTraceServiceRequest(nil), c.requests...)
}

// Received is the number of requests answered, failed ones included.
func (c *Collector) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Malformed is the number of requests whose body was not OTLP protobuf.
func (c *Collector) Malformed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.malformed
}
