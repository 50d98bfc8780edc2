package otlp

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kplane/kplane/ktrace"
)

// The fuzz targets check that no input makes a decoder panic, that a
// decoded batch only holds storable spans and stays within the limits, and
// that the protobuf limit check refuses nothing pdata accepts. Seeds are
// seedRequests and the files in testdata/fuzz/<target>, among them
// testdata/request.json (seed-request, and seed-request-json-as-proto in
// protobuf); run one with
//
//	go test ./ktrace/otlp -run '^$' -fuzz FuzzDecodeProto -fuzztime 60s
//
// Keep seeds small. When the fuzzer finds an input that adds coverage it
// minimizes it before fuzzing on, trying on the order of n² shorter inputs
// for n bytes, and every try copies the coverage counters of all of pdata
// (80 kB). Mutants of the 560-byte request that used to be the only seed
// kept both workers minimizing for 30 s at a time, and the fuzzer reported
// 35 to 160 execs in 30 s. The seeds below are 60 to 160 bytes in
// protobuf; a fuzz cache from before them still holds the old mutants
// (go clean -fuzzcache drops them).

func FuzzDecodeProto(f *testing.F) {
	for _, req := range seedRequests() {
		data, err := req.MarshalProto()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := checkStorable(t, data, Protobuf)
		if b != nil {
			sameAsJSON(t, data, *b)
		}
		// What the wire check rejects as malformed, pdata must reject too:
		// the check may only refuse more than pdata for the limits.
		var we *wireError
		if err := checkProto(data); errors.As(err, &we) && !we.deep {
			if ptraceotlp.NewExportRequest().UnmarshalProto(data) == nil {
				t.Fatalf("the wire check rejects a request pdata accepts: %v", err)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, req := range seedRequests() {
		data, err := req.MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStorable(t, data, JSON)
	})
}

// checkStorable decodes data and checks the result; it returns the batch
// if there is one.
func checkStorable(t *testing.T, data []byte, enc Encoding) *Batch {
	b, err := Decode(data, enc)
	if err != nil {
		// web maps these two to 400 and 413; anything else would be a 500.
		if !errors.Is(err, ktrace.ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error is neither ktrace.ErrInvalid nor ErrTooLarge: %v", err)
		}
		return nil
	}
	if n := len(b.Spans) + b.Rejected; n > MaxSpans {
		t.Fatalf("decoded %d spans, more than MaxSpans", n)
	}
	for _, s := range b.Spans {
		if s.TraceID.IsZero() || s.SpanID.IsZero() || s.Start.IsZero() || s.Start.Unix() < 0 || s.Duration < 0 || s.Service == "" {
			t.Fatalf("decoded an unstorable span: %+v", s)
		}
		if s.SpanID == s.ParentSpanID {
			t.Fatalf("span %s is its own parent", s.SpanID)
		}
	}
	if _, err := EncodeResponse(enc, b); err != nil {
		t.Fatalf("encode response: %v", err)
	}
	return &b
}

// sameAsJSON checks that the request a protobuf body holds, sent as OTLP
// JSON instead, decodes to the same spans: the two encodings are one API.
func sameAsJSON(t *testing.T, data []byte, b Batch) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(data); err != nil {
		t.Fatalf("Decode accepted what pdata refuses: %v", err)
	}
	js, err := req.MarshalJSON()
	if err != nil {
		t.Fatalf("pdata cannot write the request as JSON: %v", err)
	}
	jb, err := Decode(js, JSON)
	if errors.Is(err, ErrTooLarge) {
		return // the JSON limits count bytes and elements differently
	}
	if err != nil {
		t.Fatalf("the request as JSON is refused: %v\n%s", err, js)
	}
	if jb.Rejected != b.Rejected || !reflect.DeepEqual(jb.Spans, b.Spans) {
		t.Fatalf("the request decodes differently from JSON:\nprotobuf %+v\njson     %+v\n%s", b, jb, js)
	}
}

// seedRequests are small requests that between them reach every part of
// the decoder.
func seedRequests() []ptraceotlp.ExportRequest {
	var reqs []ptraceotlp.ExportRequest
	add := func(fill func(rs ptrace.ResourceSpans, sp ptrace.Span)) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{15: 1})
		sp.SetSpanID(pcommon.SpanID{7: 2})
		sp.SetStartTimestamp(1700000000000000000)
		sp.SetEndTimestamp(1700000000250000000)
		fill(rs, sp)
		reqs = append(reqs, ptraceotlp.NewExportRequestFromTraces(td))
	}
	reqs = append(reqs, ptraceotlp.NewExportRequest())
	add(func(ptrace.ResourceSpans, ptrace.Span) {})
	add(func(rs ptrace.ResourceSpans, sp ptrace.Span) {
		rs.Resource().Attributes().PutStr("service.name", "s")
		scope := rs.ScopeSpans().At(0).Scope()
		scope.SetName("n")
		scope.SetVersion("v")
		sp.SetParentSpanID(pcommon.SpanID{7: 1})
		sp.SetName("GET /")
		sp.SetKind(ptrace.SpanKindServer)
	})
	add(func(_ ptrace.ResourceSpans, sp ptrace.Span) {
		a := sp.Attributes()
		a.PutStr("s", "v")
		a.PutInt("i", 2)
		a.PutBool("b", true)
		a.PutDouble("d", 0.5)
		a.PutEmptyBytes("y").FromRaw([]byte{1})
		arr := a.PutEmptySlice("a")
		arr.AppendEmpty().SetStr("x")
		arr.AppendEmpty().SetInt(1)
		a.PutEmptyMap("m").PutStr("k", "v")
	})
	add(func(_ ptrace.ResourceSpans, sp ptrace.Span) {
		ev := sp.Events().AppendEmpty()
		ev.SetTimestamp(1700000000100000000)
		ev.SetName("exception")
		ev.Attributes().PutStr("k", "v")
		l := sp.Links().AppendEmpty()
		l.SetTraceID(pcommon.TraceID{15: 3})
		l.SetSpanID(pcommon.SpanID{7: 4})
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage("m")
	})
	add(func(rs ptrace.ResourceSpans, sp ptrace.Span) {
		sp.SetTraceID(pcommon.TraceID{})
		sp2 := rs.ScopeSpans().At(0).Spans().AppendEmpty()
		sp2.SetTraceID(pcommon.TraceID{15: 1})
		sp2.SetSpanID(pcommon.SpanID{7: 5})
	})
	// Found by fuzzing: times past what an int64 of nanoseconds holds made
	// negative durations and start times before 1970.
	add(func(_ ptrace.ResourceSpans, sp ptrace.Span) {
		sp.SetStartTimestamp(1)
		sp.SetEndTimestamp(math.MaxUint64)
		sp.Events().AppendEmpty().SetTimestamp(math.MaxUint64)
	})
	add(func(_ ptrace.ResourceSpans, sp ptrace.Span) {
		sp.SetStartTimestamp(math.MaxInt64 + 1)
	})
	return reqs
}
