package otlp

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kplane/kplane/ktrace"
)

func readRequest(t testing.TB) ptraceotlp.ExportRequest {
	t.Helper()
	data, err := os.ReadFile("testdata/request.json")
	if err != nil {
		t.Fatal(err)
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return req
}

// TestDecode decodes the same request from JSON and protobuf: both must
// give the same spans, with hex IDs intact.
func TestDecode(t *testing.T) {
	req := readRequest(t)
	asJSON, err := os.ReadFile("testdata/request.json")
	if err != nil {
		t.Fatal(err)
	}
	asProto, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		enc  Encoding
	}{
		{"json", asJSON, JSON},
		{"protobuf", asProto, Protobuf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Decode(tc.data, tc.enc)
			if err != nil {
				t.Fatal(err)
			}
			checkBatch(t, b)
		})
	}
}

func checkBatch(t *testing.T, b Batch) {
	t.Helper()
	if len(b.Spans) != 3 {
		t.Fatalf("got %d spans, want 3 (two of five have zero IDs)", len(b.Spans))
	}
	if b.Rejected != 2 || !strings.Contains(b.RejectReason, `"zero trace"`) || !strings.Contains(b.RejectReason, "trace ID is missing or all zeros") {
		t.Errorf("rejected %d, reason %q", b.Rejected, b.RejectReason)
	}

	s := b.Spans[0]
	if got := s.TraceID.String(); got != "5b8efff798038103d269b633813fc60c" {
		t.Errorf("trace ID %s", got)
	}
	if s.SpanID.String() != "eee19b7ec3c1b174" || s.ParentSpanID.String() != "eee19b7ec3c1b173" {
		t.Errorf("span %s parent %s", s.SpanID, s.ParentSpanID)
	}
	if s.Service != "checkpoint" || s.Name != "GET /scan" || s.Kind != ktrace.KindServer {
		t.Errorf("service %q name %q kind %q", s.Service, s.Name, s.Kind)
	}
	if !s.Start.Equal(time.Unix(1700000000, 0)) || s.Duration != 250*time.Millisecond {
		t.Errorf("start %v duration %v", s.Start, s.Duration)
	}
	if s.Status != ktrace.StatusError || s.StatusMessage != "stock exhausted" {
		t.Errorf("status %q %q", s.Status, s.StatusMessage)
	}
	wantTags := map[string]string{
		"http.status_code":   "500",
		"http.route":         "/scan",
		"retry":              "true",
		"ratio":              "0.5",
		"gates":              `["a",2]`,
		"ticket":             `{"id":"T1"}`,
		"otel.scope.name":    "github.com/kplane/kplane/ktrace/sdk",
		"otel.scope.version": "0.1.0",
	}
	if len(s.Tags) != len(wantTags) {
		t.Errorf("tags %v", s.Tags)
	}
	for k, v := range wantTags {
		if s.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, s.Tags[k], v)
		}
	}
	if s.Process["host.name"] != "gate-3" || s.Process["process.pid"] != "4242" || s.Process["service.name"] != "checkpoint" {
		t.Errorf("process %v", s.Process)
	}
	if len(s.Annotations) != 1 || s.Annotations[0].Value != "exception" ||
		!s.Annotations[0].Time.Equal(time.Unix(1700000000, 100e6)) ||
		s.Annotations[0].Tags["exception.message"] != "stock exhausted" {
		t.Errorf("annotations %+v", s.Annotations)
	}

	s64 := b.Spans[1]
	if s64.TraceID.String() != "0000000000000000d269b633813fc60c" || s64.Kind != ktrace.KindClient || s64.Duration != time.Microsecond {
		t.Errorf("64-bit trace span: %s kind %q duration %v", s64.TraceID, s64.Kind, s64.Duration)
	}
	if s64.Status != ktrace.StatusUnset || s64.Tags["otel.scope.name"] == "" {
		t.Errorf("64-bit trace span: status %q tags %v", s64.Status, s64.Tags)
	}

	noSvc := b.Spans[2]
	if noSvc.Service != "unknown_service" || noSvc.Duration != 0 || noSvc.Process != nil || noSvc.Tags != nil {
		t.Errorf("span without resource: service %q duration %v (end before start) process %v tags %v", noSvc.Service, noSvc.Duration, noSvc.Process, noSvc.Tags)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		enc  Encoding
		want string
	}{
		{"json syntax", `{"resourceSpans": [`, JSON, "OTLP JSON request"},
		{"json short trace id", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0000000000000001"}]}]}]}`, JSON, "OTLP JSON request"},
		{"json not hex", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz8efff798038103d269b633813fc60c","spanId":"0000000000000001"}]}]}]}`, JSON, "OTLP JSON request"},
		{"protobuf garbage", "\xff\xff\xff\xff", Protobuf, "OTLP protobuf request"},
		// Field 1 (resource_spans), length 10, but only 2 bytes follow.
		{"protobuf truncated", "\x0a\x0a\x0a\x00", Protobuf, "OTLP protobuf request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data), tc.enc)
			if !errors.Is(err, ktrace.ErrInvalid) {
				t.Fatalf("Decode = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		data := []byte{}
		if enc == JSON {
			data = []byte("{}")
		}
		b, err := Decode(data, enc)
		if err != nil || len(b.Spans) != 0 || b.Rejected != 0 {
			t.Errorf("%s: empty request = %+v, %v", enc, b, err)
		}
	}
}

func TestEncodeResponse(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		t.Run(enc.String(), func(t *testing.T) {
			data, err := EncodeResponse(enc, Batch{Rejected: 2, RejectReason: "span \"x\": trace ID is missing"})
			if err != nil {
				t.Fatal(err)
			}
			resp := ptraceotlp.NewExportResponse()
			if enc == JSON {
				err = resp.UnmarshalJSON(data)
			} else {
				err = resp.UnmarshalProto(data)
			}
			if err != nil {
				t.Fatal(err)
			}
			ps := resp.PartialSuccess()
			if ps.RejectedSpans() != 2 || ps.ErrorMessage() != "2 spans rejected; first: span \"x\": trace ID is missing" {
				t.Errorf("partial success %d %q", ps.RejectedSpans(), ps.ErrorMessage())
			}

			full, err := EncodeResponse(enc, Batch{})
			if err != nil {
				t.Fatal(err)
			}
			if enc == Protobuf && len(full) != 0 || enc == JSON && string(full) != "{}" {
				t.Errorf("full success encodes as %q, want an empty response", full)
			}
		})
	}
}
