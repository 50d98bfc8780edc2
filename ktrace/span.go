package ktrace

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// TraceID is a 128-bit trace ID. 64-bit IDs are zero-padded on the left,
// as Zipkin and B3 do.
type TraceID [16]byte

// SpanID is a 64-bit span ID. The zero SpanID means "none" (a root span
// has a zero ParentSpanID).
type SpanID [8]byte

// ParseTraceID accepts 16 or 32 hex digits, upper or lower case.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	s = strings.TrimSpace(s)
	switch len(s) {
	case 16, 32:
	default:
		return id, fmt.Errorf("%w: trace ID %q: want 16 or 32 hex digits", ErrInvalid, s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("%w: trace ID %q: not hex", ErrInvalid, s)
	}
	copy(id[16-len(b):], b)
	if id.IsZero() {
		return id, fmt.Errorf("%w: trace ID is all zeros", ErrInvalid)
	}
	return id, nil
}

// ParseSpanID accepts 16 hex digits.
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if len(s) != 16 {
		return id, fmt.Errorf("%w: span ID %q: want 16 hex digits", ErrInvalid, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: span ID %q: not hex", ErrInvalid, s)
	}
	return id, nil
}

func (id TraceID) String() string { return hex.EncodeToString(id[:]) }
func (id TraceID) IsZero() bool   { return id == TraceID{} }
func (id SpanID) String() string  { return hex.EncodeToString(id[:]) }
func (id SpanID) IsZero() bool    { return id == SpanID{} }

// Kind is the role of a span in a call.
type Kind string

const (
	KindUnspecified Kind = ""
	KindInternal    Kind = "internal"
	KindServer      Kind = "server"
	KindClient      Kind = "client"
	KindProducer    Kind = "producer"
	KindConsumer    Kind = "consumer"
)

// StatusCode is a span's outcome, as OpenTelemetry defines it.
type StatusCode string

const (
	StatusUnset StatusCode = ""
	StatusOK    StatusCode = "ok"
	StatusError StatusCode = "error"
)

// Annotation is a timestamped event in a span: an OpenTelemetry event or
// a Zipkin annotation (cs, sr, ss, cr, or free text).
type Annotation struct {
	Time  time.Time         `json:"time"`
	Value string            `json:"value"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// Span is one unit of work in a trace, whatever format it arrived in.
//
// Zipkin's shared client/server spans (one span ID for both halves) are
// split at ingest: the server half gets a span ID derived from the shared
// one and the client half as parent, so that (TraceID, SpanID) is unique
// and the tree is not broken.
type Span struct {
	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID
	Service      string
	Name         string
	Kind         Kind
	Start        time.Time
	Duration     time.Duration
	// Tags are the span's attributes, rendered as strings.
	Tags map[string]string
	// Annotations are the span's events, in time order.
	Annotations []Annotation
	Status      StatusCode
	// StatusMessage explains an error status.
	StatusMessage string
	// Process holds the resource attributes of the process that emitted
	// the span (host, SDK, service version ...).
	Process map[string]string
}

// Error reports whether the span failed.
func (s *Span) Error() bool { return s.Status == StatusError }

// End is Start + Duration.
func (s *Span) End() time.Time { return s.Start.Add(s.Duration) }
