package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// ingestEnv is a server whose span ingest writes through a real
// ktrace.Ingester into an in-memory store.
func ingestEnv(t *testing.T) (*env, *inmem.Store) {
	t.Helper()
	store := inmem.New(inmem.Config{})
	in, err := ktrace.NewIngester(ktrace.IngesterConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingester: %v", err)
		}
	})
	return newEnv(t, func(c *Config) { c.Ingester = in }), store
}

func lookup(t *testing.T, store ktrace.Store, id [16]byte) []ktrace.Span {
	t.Helper()
	tr, err := store.Trace(t.Context(), ktrace.TraceID(id))
	if err != nil {
		t.Fatal(err)
	}
	return tr.Spans
}

// TestOpenTelemetrySDK sends spans with an unmodified OpenTelemetry Go SDK:
// the otlptracehttp exporter pointed at kplane, as
// OTEL_EXPORTER_OTLP_ENDPOINT would, plain and gzip-compressed.
func TestOpenTelemetrySDK(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  otlptracehttp.Option
	}{
		{"protobuf", otlptracehttp.WithCompression(otlptracehttp.NoCompression)},
		{"protobuf gzip", otlptracehttp.WithCompression(otlptracehttp.GzipCompression)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, store := ingestEnv(t)
			u, _ := url.Parse(e.ts.URL)
			exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithInsecure(), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			res := resource.NewSchemaless(attribute.String("service.name", "checkpoint"), attribute.String("host.name", "gate-3"))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
			tracer := tp.Tracer("ingest-test")

			ctx, root := tracer.Start(t.Context(), "GET /scan", trace.WithSpanKind(trace.SpanKindServer))
			_, child := tracer.Start(ctx, "call inventory", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.StringSlice("gates", []string{"a", "b"}), attribute.Int("attempt", 2)))
			child.AddEvent("retry", trace.WithAttributes(attribute.String("reason", "timeout")))
			child.SetStatus(codes.Error, "inventory timed out")
			child.End()
			root.End()
			if err := tp.Shutdown(t.Context()); err != nil {
				t.Fatalf("exporter: %v", err)
			}

			// WithSyncer exports each span as it ends and Export returned
			// only after kplane acknowledged: the spans are stored now.
			spans := lookup(t, store, root.SpanContext().TraceID())
			if len(spans) != 2 {
				t.Fatalf("stored %d spans, want 2", len(spans))
			}
			byName := map[string]ktrace.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			r, c := byName["GET /scan"], byName["call inventory"]
			if r.Service != "checkpoint" || r.Kind != ktrace.KindServer || !r.ParentSpanID.IsZero() || r.Process["host.name"] != "gate-3" {
				t.Errorf("root span %+v", r)
			}
			if c.ParentSpanID != ktrace.SpanID(root.SpanContext().SpanID()) || c.Kind != ktrace.KindClient {
				t.Errorf("child parent %s kind %q", c.ParentSpanID, c.Kind)
			}
			if c.Tags["gates"] != `["a","b"]` || c.Tags["attempt"] != "2" || c.Status != ktrace.StatusError || c.StatusMessage != "inventory timed out" {
				t.Errorf("child tags %v status %q %q", c.Tags, c.Status, c.StatusMessage)
			}
			if len(c.Annotations) != 1 || c.Annotations[0].Value != "retry" || c.Annotations[0].Tags["reason"] != "timeout" {
				t.Errorf("child events %+v", c.Annotations)
			}
		})
	}
}

// TestZipkinReporter sends a shared client/server span with zipkin-go's
// HTTP reporter, each half from its own tracer as two services would.
func TestZipkinReporter(t *testing.T) {
	e, store := ingestEnv(t)
	rep := zipkinhttp.NewReporter(e.ts.URL+"/api/v2/spans", zipkinhttp.BatchInterval(10*time.Millisecond))
	newTracer := func(service string) *zipkin.Tracer {
		ep, err := zipkin.NewEndpoint(service, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(ep), zipkin.WithTraceID128Bit(false))
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	checkpoint, inventory := newTracer("checkpoint"), newTracer("inventory")

	root := checkpoint.StartSpan("scan", zipkin.Kind(model.Server))
	client := checkpoint.StartSpan("get /stock", zipkin.Kind(model.Client), zipkin.Parent(root.Context()))
	// The server joins the client's span (zipkin-go's default): one span
	// ID for both halves.
	server := inventory.StartSpan("get /stock", zipkin.Kind(model.Server), zipkin.Parent(client.Context()))
	query := inventory.StartSpan("select", zipkin.Parent(server.Context()))
	query.Finish()
	server.Finish()
	client.Tag("error", "stock exhausted")
	client.Finish()
	root.Finish()
	if err := rep.Close(); err != nil { // flushes
		t.Fatal(err)
	}
	if server.Context().ID != client.Context().ID {
		t.Fatal("zipkin-go did not share the span ID; the test no longer covers shared spans")
	}

	var id [16]byte
	tid := root.Context().TraceID
	for i := 0; i < 8; i++ {
		id[8+i] = byte(tid.Low >> (56 - 8*i))
	}
	var spans []ktrace.Span
	// The reporter sends asynchronously; Close waited for its last POST.
	spans = lookup(t, store, id)
	if len(spans) != 4 {
		t.Fatalf("stored %d spans, want 4: %+v", len(spans), spans)
	}
	parents := map[ktrace.SpanID]ktrace.SpanID{}
	var serverID ktrace.SpanID
	for _, s := range spans {
		if _, dup := parents[s.SpanID]; dup {
			t.Fatalf("span ID %s stored twice", s.SpanID)
		}
		parents[s.SpanID] = s.ParentSpanID
		if s.Kind == ktrace.KindServer && s.Service == "inventory" {
			serverID = s.SpanID
		}
		if s.Name == "get /stock" && s.Kind == ktrace.KindClient && s.Status != ktrace.StatusError {
			t.Errorf("client span lost its error tag: %+v", s)
		}
	}
	// Every span but the root has its parent in the trace, and the
	// query hangs under the server half.
	for sid, pid := range parents {
		if _, ok := parents[pid]; !ok && !pid.IsZero() {
			t.Errorf("span %s has parent %s, which is not in the trace", sid, pid)
		}
	}
	if parents[ktrace.SpanID(u64(uint64(query.Context().ID)))] != serverID {
		t.Errorf("query's parent is %s, want the server half %s", parents[ktrace.SpanID(u64(uint64(query.Context().ID)))], serverID)
	}
}

func u64(v uint64) [8]byte {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (56 - 8*i))
	}
	return b
}

func TestOTLPJSON(t *testing.T) {
	e, store := ingestEnv(t)
	body, err := os.ReadFile("../ktrace/otlp/testdata/request.json")
	if err != nil {
		t.Fatal(err)
	}
	resp := e.do(nil, http.MethodPost, "/v1/traces", "", bytes.NewReader(body), "Content-Type", "application/json")
	if resp.status != http.StatusOK || resp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d content type %q: %s", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
	var partial struct {
		PartialSuccess struct {
			RejectedSpans string `json:"rejectedSpans"`
			ErrorMessage  string `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if err := json.Unmarshal([]byte(resp.body), &partial); err != nil {
		t.Fatalf("response %q: %v", resp.body, err)
	}
	if partial.PartialSuccess.RejectedSpans != "2" || !strings.Contains(partial.PartialSuccess.ErrorMessage, "trace ID is missing or all zeros") {
		t.Errorf("partial success %+v", partial.PartialSuccess)
	}
	id, _ := ktrace.ParseTraceID("5b8efff798038103d269b633813fc60c")
	if spans := lookup(t, store, id); len(spans) != 2 {
		t.Errorf("stored %d spans of the trace, want 2", len(spans))
	}
}

// fakeIngester answers every batch with err.
type fakeIngester struct{ err error }

func (f fakeIngester) Ingest(context.Context, []ktrace.Span) error { return f.err }
func (f fakeIngester) Reject(int)                                  {}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIngestErrors(t *testing.T) {
	e, _ := ingestEnv(t)
	zipkinOK := []byte(`[{"traceId":"1","id":"2","timestamp":1700000000000000,"localEndpoint":{"serviceName":"a"}}]`)
	bomb := gzipped(t, bytes.Repeat([]byte{'['}, IngestMaxBodyBytes+1))
	big := bytes.Repeat([]byte{' '}, IngestMaxBodyBytes+1)
	for _, tc := range []struct {
		name       string
		path       string
		body       []byte
		hdr        []string
		status     int
		wantInBody string
	}{
		{"otlp bad content type", "/v1/traces", []byte("x"), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, `content type \"text/plain\"`},
		{"otlp no content type", "/v1/traces", []byte("x"), nil, http.StatusUnsupportedMediaType, "application/x-protobuf or application/json"},
		{"zipkin thrift", "/api/v2/spans", []byte("x"), []string{"Content-Type", "application/x-thrift"}, http.StatusUnsupportedMediaType, "v2 JSON"},
		{"brotli", "/api/v2/spans", zipkinOK, []string{"Content-Encoding", "br"}, http.StatusUnsupportedMediaType, `content encoding \"br\"`},
		{"otlp malformed protobuf", "/v1/traces", []byte("\xff\xff\xff"), []string{"Content-Type", "application/x-protobuf"}, http.StatusBadRequest, "OTLP protobuf request"},
		{"otlp malformed json", "/v1/traces", []byte(`{"resourceSpans":`), []string{"Content-Type", "application/json; charset=utf-8"}, http.StatusBadRequest, "OTLP JSON request"},
		{"zipkin malformed", "/api/v2/spans", []byte(`[{"traceId":"xyz","id":"1"}]`), []string{"Content-Type", "application/json"}, http.StatusBadRequest, `Zipkin span 0 (\"\"): traceId \"xyz\": not hex`},
		{"corrupt gzip", "/api/v2/spans", []byte("not gzip at all"), []string{"Content-Encoding", "gzip"}, http.StatusBadRequest, "gzip body"},
		{"truncated gzip", "/api/v2/spans", gzipped(t, zipkinOK)[:20], []string{"Content-Encoding", "gzip"}, http.StatusBadRequest, "ends early"},
		{"over 20 MiB", "/api/v2/spans", big, nil, http.StatusRequestEntityTooLarge, "too_large"},
		{"gzip bomb", "/api/v2/spans", bomb, []string{"Content-Encoding", "gzip"}, http.StatusRequestEntityTooLarge, "too_large"},
		{"zipkin gzip ok", "/api/v2/spans", gzipped(t, zipkinOK), []string{"Content-Encoding", "gzip", "Content-Type", "application/json"}, http.StatusAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(nil, http.MethodPost, tc.path, "", bytes.NewReader(tc.body), tc.hdr...)
			if resp.status != tc.status || !strings.Contains(resp.body, tc.wantInBody) {
				t.Fatalf("status %d body %s; want %d with %q", resp.status, resp.body, tc.status, tc.wantInBody)
			}
		})
	}
	if len(bomb) > DefaultMaxBodyBytes {
		t.Fatalf("the gzip bomb is %d bytes compressed; the test needs it small", len(bomb))
	}
}

// TestIngestDecodeLimits sends OTLP requests that are small gzipped but
// would decode to gigabytes, or overflow the stack (a fatal error that
// would end the process): each gets a 4xx naming the limit.
func TestIngestDecodeLimits(t *testing.T) {
	e, _ := ingestEnv(t)
	// ExportTraceServiceRequest{resource_spans: {scope_spans: {spans: {} × 5 M}}}:
	// 20 MiB that pdata would decode to over 4 GB.
	spans := bytes.Repeat([]byte{0x12, 0x00}, IngestMaxBodyBytes/2-16)
	emptySpans := gzipped(t, lenField(1, lenField(2, spans)))
	if len(emptySpans) > 100<<10 {
		t.Fatalf("the empty spans are %d bytes gzipped; the test needs them small", len(emptySpans))
	}
	deep := `{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":` +
		strings.Repeat(`{"arrayValue":{"values":[`, 100_000) + strings.Repeat(`]}}`, 100_000) + `}]}}]}`
	for _, tc := range []struct {
		name       string
		body       []byte
		hdr        []string
		status     int
		wantInBody string
	}{
		{"5 M empty protobuf spans", emptySpans, []string{"Content-Type", "application/x-protobuf", "Content-Encoding", "gzip"},
			http.StatusRequestEntityTooLarge, `{"error":"OTLP protobuf request holds more than 100000 spans; send smaller batches","code":"too_large"}`},
		{"JSON value nested 100000 levels", gzipped(t, []byte(deep)), []string{"Content-Type", "application/json", "Content-Encoding", "gzip"},
			http.StatusBadRequest, "OTLP JSON request: nests more than 140 levels deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(nil, http.MethodPost, "/v1/traces", "", bytes.NewReader(tc.body), tc.hdr...)
			if resp.status != tc.status || !strings.Contains(resp.body, tc.wantInBody) {
				t.Fatalf("status %d body %s; want %d with %q", resp.status, resp.body, tc.status, tc.wantInBody)
			}
		})
	}
}

// lenField is a length-delimited protobuf field (fields below 16 only).
func lenField(num byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{num<<3 | 2}, uint64(len(body))), body...)
}

func TestIngestBodyLimitIsPerRoute(t *testing.T) {
	e, _ := ingestEnv(t)
	// 2 MiB is fine for ingest (it is 400 because it is not JSON) ...
	body := bytes.Repeat([]byte{'x'}, 2<<20)
	if resp := e.do(nil, http.MethodPost, "/api/v2/spans", "", bytes.NewReader(body)); resp.status != http.StatusBadRequest {
		t.Errorf("2 MiB Zipkin body: %d %s", resp.status, resp.body)
	}
	// ... and still too large for the rest of the API.
	resp := e.do(nil, http.MethodPost, "/api/v1/users", e.tokens[auth.Admin], bytes.NewReader(body), "Content-Type", "application/json")
	if resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB API body: %d %s", resp.status, resp.body)
	}
}

func TestIngestOverloadAndOutage(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		retryAfter string
	}{
		{fmt.Errorf("%w: queue full", ktrace.ErrOverloaded), http.StatusTooManyRequests, "1"},
		{fmt.Errorf("write spans: %w", ktrace.ErrUnavailable), http.StatusServiceUnavailable, "5"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Ingester = fakeIngester{tc.err} })
			body := []byte(`[{"traceId":"1","id":"2","timestamp":1700000000000000}]`)
			for _, path := range []string{"/api/v2/spans", "/v1/traces"} {
				ct := "application/json"
				if path == "/v1/traces" {
					body = []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0000000000000001","startTimeUnixNano":"1"}]}]}]}`)
				}
				resp := e.do(nil, http.MethodPost, path, "", bytes.NewReader(body), "Content-Type", ct)
				if resp.status != tc.status || resp.header.Get("Retry-After") != tc.retryAfter {
					t.Errorf("%s: status %d Retry-After %q: %s", path, resp.status, resp.header.Get("Retry-After"), resp.body)
				}
			}
		})
	}
}

func TestIngestRoutesNeedAnIngester(t *testing.T) {
	e := newEnv(t)
	if resp := e.do(nil, http.MethodPost, "/v1/traces", "", strings.NewReader("{}"), "Content-Type", "application/json"); resp.status != http.StatusNotFound {
		t.Errorf("without an ingester /v1/traces answers %d", resp.status)
	}
}
