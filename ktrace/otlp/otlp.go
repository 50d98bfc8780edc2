package otlp

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kplane/kplane/ktrace"
)

// Encoding is the wire format of a request and its response.
type Encoding int

const (
	Protobuf Encoding = iota // application/x-protobuf
	JSON                     // application/json
)

// ContentType is the media type OTLP/HTTP uses for the encoding.
func (e Encoding) ContentType() string {
	if e == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

func (e Encoding) String() string {
	if e == JSON {
		return "OTLP JSON"
	}
	return "OTLP protobuf"
}

// Scope attributes are kept as tags under the names OpenTelemetry's own
// exporters to Jaeger and Zipkin use.
const (
	tagScopeName    = "otel.scope.name"
	tagScopeVersion = "otel.scope.version"
)

// unknownService is what OpenTelemetry SDKs report when service.name is
// not set; a resource without it gets the same.
const unknownService = "unknown_service"

// Batch is one decoded export request.
type Batch struct {
	// Spans that can be stored.
	Spans []ktrace.Span
	// Rejected counts spans left out, and RejectReason says why the first
	// of them was (for the partial-success message).
	Rejected     int
	RejectReason string
}

// Decode parses an ExportTraceServiceRequest. The error wraps
// ktrace.ErrInvalid and names what is wrong, or ErrTooLarge and names the
// limit the request exceeds; spans that parse but cannot be stored are
// counted in Batch.Rejected instead.
func Decode(data []byte, enc Encoding) (Batch, error) {
	if err := check(data, enc); err != nil {
		return Batch{}, err
	}
	req := ptraceotlp.NewExportRequest()
	var err error
	if enc == JSON {
		err = req.UnmarshalJSON(data)
	} else {
		err = req.UnmarshalProto(data)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("%w: %s request: %v", ktrace.ErrInvalid, enc, err)
	}
	td := req.Traces()
	// The protobuf check counted spans; the JSON one only bounded them.
	if td.SpanCount() > MaxSpans {
		return Batch{}, fmt.Errorf("%s request holds more than %d spans; send smaller batches: %w", enc, MaxSpans, ErrTooLarge)
	}
	return convert(td), nil
}

// convert maps pdata spans to ktrace spans.
func convert(td ptrace.Traces) Batch {
	var b Batch
	b.Spans = make([]ktrace.Span, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		// One Process map per resource, shared by its spans: nothing
		// modifies it after decoding (the store copies what it keeps), and
		// a batch of thousands of spans from one SDK needs it once.
		process := attrMap(rs.Resource().Attributes())
		service := process["service.name"]
		if service == "" {
			service = unknownService
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			scopeName, scopeVersion := ss.Scope().Name(), ss.Scope().Version()
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if reason := invalid(sp); reason != "" {
					if b.Rejected == 0 {
						b.RejectReason = fmt.Sprintf("span %q (resource %d, scope %d, span %d): %s", sp.Name(), i, j, k, reason)
					}
					b.Rejected++
					continue
				}
				b.Spans = append(b.Spans, span(sp, service, process, scopeName, scopeVersion))
			}
		}
	}
	return b
}

// invalid says why a span cannot be stored, or "".
func invalid(sp ptrace.Span) string {
	switch {
	case sp.TraceID().IsEmpty():
		return "trace ID is missing or all zeros"
	case sp.SpanID().IsEmpty():
		return "span ID is missing or all zeros"
	case sp.StartTimestamp() == 0:
		return "start time is missing"
	case sp.StartTimestamp() > math.MaxInt64:
		return "start time is after the year 2262"
	}
	return ""
}

func span(sp ptrace.Span, service string, process map[string]string, scopeName, scopeVersion string) ktrace.Span {
	start, end := sp.StartTimestamp(), sp.EndTimestamp()
	var d time.Duration
	// A span with no end (or an end before its start, from a broken clock,
	// or past what time.Duration holds) is stored with zero duration rather
	// than a negative one. invalid has checked that start fits in an int64.
	if end > start && end <= math.MaxInt64 {
		d = time.Duration(end - start)
	}
	attrs := sp.Attributes()
	n := attrs.Len()
	if scopeName != "" {
		n++
	}
	if scopeVersion != "" {
		n++
	}
	var tags map[string]string
	if n > 0 {
		tags = make(map[string]string, n)
		attrs.Range(func(k string, v pcommon.Value) bool {
			tags[k] = v.AsString()
			return true
		})
		if scopeName != "" {
			tags[tagScopeName] = scopeName
		}
		if scopeVersion != "" {
			tags[tagScopeVersion] = scopeVersion
		}
	}
	parent := ktrace.SpanID(sp.ParentSpanID())
	if parent == ktrace.SpanID(sp.SpanID()) {
		// A span cannot be its own parent: the tree would have a cycle.
		parent = ktrace.SpanID{}
	}
	s := ktrace.Span{
		TraceID:       ktrace.TraceID(sp.TraceID()),
		SpanID:        ktrace.SpanID(sp.SpanID()),
		ParentSpanID:  parent,
		Service:       service,
		Name:          sp.Name(),
		Kind:          kind(sp.Kind()),
		Start:         time.Unix(0, int64(start)).UTC(),
		Duration:      d,
		Tags:          tags,
		Status:        status(sp.Status().Code()),
		StatusMessage: sp.Status().Message(),
		Process:       process,
	}
	if evs := sp.Events(); evs.Len() > 0 {
		s.Annotations = make([]ktrace.Annotation, evs.Len())
		for i := 0; i < evs.Len(); i++ {
			ev := evs.At(i)
			s.Annotations[i] = ktrace.Annotation{
				Time:  eventTime(ev.Timestamp()),
				Value: ev.Name(),
				Tags:  attrMap(ev.Attributes()),
			}
		}
	}
	return s
}

// eventTime is an event's timestamp; one past what time.Time holds as Unix
// nanoseconds (the year 2262) is treated as missing.
func eventTime(ts pcommon.Timestamp) time.Time {
	if ts > math.MaxInt64 {
		ts = 0
	}
	return time.Unix(0, int64(ts)).UTC()
}

// attrMap renders attributes as strings: arrays and maps as JSON, bytes as
// base64 (pcommon's AsString), so that every backend stores one flat map.
func attrMap(m pcommon.Map) map[string]string {
	if m.Len() == 0 {
		return nil
	}
	out := make(map[string]string, m.Len())
	m.Range(func(k string, v pcommon.Value) bool {
		out[k] = v.AsString()
		return true
	})
	return out
}

func kind(k ptrace.SpanKind) ktrace.Kind {
	switch k {
	case ptrace.SpanKindInternal:
		return ktrace.KindInternal
	case ptrace.SpanKindServer:
		return ktrace.KindServer
	case ptrace.SpanKindClient:
		return ktrace.KindClient
	case ptrace.SpanKindProducer:
		return ktrace.KindProducer
	case ptrace.SpanKindConsumer:
		return ktrace.KindConsumer
	}
	return ktrace.KindUnspecified
}

func status(c ptrace.StatusCode) ktrace.StatusCode {
	switch c {
	case ptrace.StatusCodeOk:
		return ktrace.StatusOK
	case ptrace.StatusCodeError:
		return ktrace.StatusError
	}
	return ktrace.StatusUnset
}

// EncodeResponse encodes the ExportTraceServiceResponse for a decoded
// batch: empty on full success, a partial success naming the first
// problem when spans were rejected.
func EncodeResponse(enc Encoding, b Batch) ([]byte, error) {
	if b.Rejected == 0 {
		// pdata always encodes partial_success, even empty; OTLP says a
		// full success leaves it unset.
		if enc == JSON {
			return []byte("{}"), nil
		}
		return []byte{}, nil
	}
	resp := ptraceotlp.NewExportResponse()
	ps := resp.PartialSuccess()
	ps.SetRejectedSpans(int64(b.Rejected))
	msg := b.RejectReason
	if b.Rejected > 1 {
		msg = fmt.Sprintf("%d spans rejected; first: %s", b.Rejected, msg)
	}
	ps.SetErrorMessage(msg)
	if enc == JSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}
