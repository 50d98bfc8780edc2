package otlp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kplane/kplane/ktrace"
)

// bodyLimit is web's limit on an ingest body after decompression, the
// largest request Decode is given.
const bodyLimit = 20 << 20

// TestDecodeLimits sends requests that are small on the wire, and smaller
// gzipped, but would make pdata allocate gigabytes or overflow the stack.
// Before the limits, the empty spans decoded to 4 GB and the nested value
// killed the process. Each must now be refused before pdata allocates.
func TestDecodeLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enc     Encoding
		data    []byte
		wantErr error
		wantMsg string
		// cheap: refused before decoding, so it allocates next to nothing.
		cheap bool
	}{
		{
			name: "protobuf: 20 MiB of empty spans", enc: Protobuf,
			data:    msg(1, msg(2, repeat(0x12, 0x00))),
			wantErr: ErrTooLarge, wantMsg: "OTLP protobuf request holds more than 100000 spans; send smaller batches", cheap: true,
		},
		{
			name: "protobuf: 20 MiB of empty resource_spans", enc: Protobuf,
			data:    repeat(0x0a, 0x00),
			wantErr: ErrTooLarge, wantMsg: "OTLP protobuf request holds more than 2000000 elements", cheap: true,
		},
		{
			name: "protobuf: 20 MiB of empty span attributes", enc: Protobuf,
			data:    msg(1, msg(2, msg(2, repeat(0x4a, 0x00)))),
			wantErr: ErrTooLarge, wantMsg: "more than 2000000 elements", cheap: true,
		},
		{
			name: "protobuf: 20 MiB of empty entity keys", enc: Protobuf,
			data:    msg(1, msg(1, msg(3, repeat(0x1a, 0x00)))),
			wantErr: ErrTooLarge, wantMsg: "more than 2000000 elements", cheap: true,
		},
		{
			name: "protobuf: instrumentation_library_spans count too", enc: Protobuf,
			data:    msg(1, msg(1000, repeat(0x12, 0x00))),
			wantErr: ErrTooLarge, wantMsg: "more than 100000 spans", cheap: true,
		},
		{
			name: "protobuf: value nested 2 million levels", enc: Protobuf,
			data:    resourceAttr(nestedArrays(2_000_000)),
			wantErr: ktrace.ErrInvalid, wantMsg: "resource_spans[0].resource.attributes[0].value: nests more than 32 levels deep", cheap: true,
		},
		{
			name: "protobuf: value nested 32 levels", enc: Protobuf,
			data: resourceAttr(nestedArrays(MaxValueDepth)),
		},
		{
			name: "protobuf: value nested 33 levels", enc: Protobuf,
			data:    resourceAttr(nestedArrays(MaxValueDepth + 1)),
			wantErr: ktrace.ErrInvalid, wantMsg: "nests more than 32 levels deep", cheap: true,
		},
		{
			// pdata skips unknown groups in a loop, and so does the check.
			// (pdata wants a byte after the last end-group tag, hence the
			// varint field 2 = 0 after them.)
			name: "protobuf: unknown group nested a million levels", enc: Protobuf,
			data: slices.Concat(bytes.Repeat([]byte{0x13}, 1_000_000), bytes.Repeat([]byte{0x14}, 1_000_000), []byte{0x10, 0x00}),
		},
		{
			name: "protobuf: truncated inside a span", enc: Protobuf,
			data:    msg(1, msg(2, append(msg(2, nil), 0x12, 0x05, 0x0a))),
			wantErr: ktrace.ErrInvalid, wantMsg: "OTLP protobuf request: resource_spans[0].scope_spans[0].spans[1]: unexpected end of data",
		},
		{
			name: "json: 20 MiB of empty spans", enc: JSON,
			data:    jsonSpans(bodyLimit / 3),
			wantErr: ErrTooLarge, wantMsg: "OTLP JSON request holds more than 2000000 elements", cheap: true,
		},
		{
			// Under the element limit, so pdata decodes them (a few tens of
			// MB) before the span count refuses them.
			name: "json: one span too many", enc: JSON,
			data:    jsonSpans(MaxSpans + 1),
			wantErr: ErrTooLarge, wantMsg: "OTLP JSON request holds more than 100000 spans",
		},
		{
			name: "json: value nested a million levels", enc: JSON,
			data:    jsonNested(1_000_000),
			wantErr: ktrace.ErrInvalid, wantMsg: "OTLP JSON request: nests more than 140 levels deep", cheap: true,
		},
		{
			name: "json: value nested 32 levels", enc: JSON,
			data: jsonNested(MaxValueDepth),
		},
		{
			name: "json: brackets inside strings do not nest", enc: JSON,
			data: []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"[{\"","value":{"stringValue":"` + strings.Repeat("[{", 1000) + `"}}]}}]}`),
		},
		{
			name: "json: escaped quotes and backslashes do not end strings", enc: JSON,
			data: []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"k\\","value":{"stringValue":"\"` + strings.Repeat("[{", 1000) + `\\"}}]}}]}`),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = Decode(tc.data, tc.enc) })
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Decode = %v, want %v saying %q", err, tc.wantErr, tc.wantMsg)
			}
			if tc.cheap && alloc > 64<<10 {
				t.Errorf("refusing a %d-byte request allocated %d bytes", len(tc.data), alloc)
			}
		})
	}
}

// TestLimitsAdmitLargeRequests checks that the limits refuse nothing an
// instrumented service sends: a 20 MiB request of typical spans passes.
func TestLimitsAdmitLargeRequests(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			perSpan := len(encode(t, typicalRequest(1000), enc)) / 1000
			n := bodyLimit / perSpan
			data := encode(t, typicalRequest(n), enc)
			if len(data) < bodyLimit*9/10 {
				t.Fatalf("built %d bytes, want about 20 MiB", len(data))
			}
			if err := check(data, enc); err != nil {
				t.Fatalf("%d typical spans (%d bytes): %v", n, len(data), err)
			}
		})
	}
}

// TestDecodeTimestamps covers times past what time.Time holds as int64
// nanoseconds (the year 2262); the fuzzer found that they decoded to
// negative durations and starts before 1970.
func TestDecodeTimestamps(t *testing.T) {
	const start = 1700000000000000000
	for _, tc := range []struct {
		name       string
		start, end uint64
		event      uint64
		reject     string
		duration   int64
	}{
		{name: "ordinary", start: start, end: start + 5, event: start + 1, duration: 5},
		{name: "end past 2262", start: start, end: 1 << 63, event: start},
		{name: "end past 2262, start near 1970", start: 1, end: 1<<64 - 1, event: start},
		{name: "start past 2262", start: 1 << 63, end: 1<<64 - 1, reject: "start time is after the year 2262"},
		{name: "event past 2262", start: start, end: start, event: 1<<64 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := ptrace.NewTraces()
			sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{15: 1})
			sp.SetSpanID(pcommon.SpanID{7: 1})
			sp.SetStartTimestamp(pcommon.Timestamp(tc.start))
			sp.SetEndTimestamp(pcommon.Timestamp(tc.end))
			sp.Events().AppendEmpty().SetTimestamp(pcommon.Timestamp(tc.event))
			b, err := Decode(encode(t, ptraceotlp.NewExportRequestFromTraces(td), Protobuf), Protobuf)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reject != "" {
				if b.Rejected != 1 || !strings.Contains(b.RejectReason, tc.reject) {
					t.Fatalf("rejected %d (%q), want the span rejected: %s", b.Rejected, b.RejectReason, tc.reject)
				}
				return
			}
			if len(b.Spans) != 1 {
				t.Fatalf("decoded %d spans (rejected: %q)", len(b.Spans), b.RejectReason)
			}
			s := b.Spans[0]
			if s.Start.UnixNano() != int64(tc.start) || int64(s.Duration) != tc.duration {
				t.Errorf("start %d duration %d, want %d and %d", s.Start.UnixNano(), s.Duration, tc.start, tc.duration)
			}
			if at := s.Annotations[0].Time; at.Unix() < 0 {
				t.Errorf("event at %v", at)
			}
		})
	}
}

// BenchmarkDecode decodes a batch of 512 spans, what an OpenTelemetry SDK
// sends by default; check is the share spent on the limits.
func BenchmarkDecode(b *testing.B) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		data := encode(b, typicalRequest(512), enc)
		b.Run(enc.String(), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(data, enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
		b.Run(enc.String()+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := check(data, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// typicalRequest is n spans as an otelhttp-instrumented server sends them:
// a dozen resource attributes, ten span attributes, and an exception event
// on every tenth span.
func typicalRequest(n int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	for _, k := range []string{"service.name", "service.version", "host.name", "host.arch", "os.type", "process.pid",
		"process.runtime.name", "process.runtime.version", "telemetry.sdk.name", "telemetry.sdk.language",
		"telemetry.sdk.version", "deployment.environment"} {
		ra.PutStr(k, "value of "+k)
	}
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	ss.Scope().SetVersion("0.60.0")
	spans := ss.Spans()
	spans.EnsureCapacity(n)
	for i := range n {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{0: 1, 14: byte(i >> 8), 15: byte(i)})
		sp.SetSpanID(pcommon.SpanID{0: 2, 6: byte(i >> 8), 7: byte(i)})
		sp.SetParentSpanID(pcommon.SpanID{0: 3, 7: byte(i)})
		sp.SetName("GET /api/v1/tickets/{id}")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.Timestamp(1700000000000000000 + i))
		sp.SetEndTimestamp(pcommon.Timestamp(1700000000000100000 + i))
		a := sp.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", "/api/v1/tickets/12345")
		a.PutStr("url.scheme", "http")
		a.PutStr("server.address", "checkpoint.internal")
		a.PutInt("server.port", 8080)
		a.PutStr("network.protocol.version", "1.1")
		a.PutStr("user_agent.original", "Go-http-client/1.1")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("http.route", "/api/v1/tickets/{id}")
		a.PutStr("client.address", "10.0.0.12")
		if i%10 == 0 {
			ev := sp.Events().AppendEmpty()
			ev.SetName("exception")
			ev.SetTimestamp(pcommon.Timestamp(1700000000000050000 + i))
			ev.Attributes().PutStr("exception.message", "stock exhausted")
			ev.Attributes().PutStr("exception.type", "*errors.errorString")
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func encode(t testing.TB, req ptraceotlp.ExportRequest, enc Encoding) []byte {
	t.Helper()
	var data []byte
	var err error
	if enc == JSON {
		data, err = req.MarshalJSON()
	} else {
		data, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// msg is a length-delimited field: a message, on the wire.
func msg(num uint64, body []byte) []byte {
	b := binary.AppendUvarint(nil, num<<3|2)
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

func sizeVarint(v int) int { return len(binary.AppendUvarint(nil, uint64(v))) }

// repeat fills the body limit with one two-byte field.
func repeat(tag, value byte) []byte {
	return bytes.Repeat([]byte{tag, value}, bodyLimit/2-16)
}

// resourceAttr is a request whose resource has one attribute, "k", with
// the given AnyValue.
func resourceAttr(value []byte) []byte {
	kv := append(msg(1, []byte("k")), msg(2, value)...)
	return msg(1, msg(1, msg(1, kv)))
}

// nestedArrays is an AnyValue holding an array holding an AnyValue ...,
// depth arrays deep. It is built outside in, in linear time.
func nestedArrays(depth int) []byte {
	// sizes[i] is the size of the i-th innermost AnyValue.
	sizes := make([]int, depth+1)
	for i := 1; i <= depth; i++ {
		array := 1 + sizeVarint(sizes[i-1]) + sizes[i-1] // ArrayValue{values: sizes[i-1]}
		sizes[i] = 1 + sizeVarint(array) + array         // AnyValue{array_value: array}
	}
	b := make([]byte, 0, sizes[depth])
	for i := depth; i >= 1; i-- {
		inner := sizes[i-1]
		b = append(b, 5<<3|2) // AnyValue.array_value
		b = binary.AppendUvarint(b, uint64(1+sizeVarint(inner)+inner))
		b = append(b, 1<<3|2) // ArrayValue.values
		b = binary.AppendUvarint(b, uint64(inner))
	}
	return b
}

// jsonSpans is a JSON request of n empty spans.
func jsonSpans(n int) []byte {
	b := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{}`)
	b = append(b, bytes.Repeat([]byte(`,{}`), n-1)...)
	return append(b, "]}]}]}"...)
}

// jsonNested is a JSON request whose resource has one attribute whose value
// nests depth arrays deep.
func jsonNested(depth int) []byte {
	b := []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":`)
	b = append(b, bytes.Repeat([]byte(`{"arrayValue":{"values":[`), depth)...)
	b = append(b, `{"intValue":"1"}`...)
	b = append(b, bytes.Repeat([]byte(`]}}`), depth)...)
	return append(b, "}]}}]}"...)
}
