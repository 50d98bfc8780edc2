package sdk

import (
	"fmt"
	"math"
	"os"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ScopeName is the OTLP instrumentation scope of the SDK's spans.
const ScopeName = "github.com/kplane/kplane/ktrace/sdk"

// OTLP span flags: the low byte is the W3C trace flags; the next two bits
// say whether the parent was remote (OTLP 1.1).
const (
	flagSampled           = 0x01
	flagHasIsRemote       = 0x100
	flagParentIsRemote    = 0x200
	otlpKindOffset        = 1 // Kind is OTLP's SpanKind minus one
	deploymentEnvironment = "deployment.environment"
)

// encoder turns ended spans into OTLP export requests.
type encoder struct {
	resource *resourcepb.Resource
	scope    *commonpb.InstrumentationScope
}

func newEncoder(cfg Config) *encoder {
	attrs := []*commonpb.KeyValue{
		kv("service.name", cfg.ServiceName),
		kv("telemetry.sdk.name", "ktrace"),
		kv("telemetry.sdk.language", "go"),
		kv("process.pid", os.Getpid()),
	}
	if cfg.Version != "" {
		attrs = append(attrs, kv("service.version", cfg.Version))
	}
	if cfg.Env != "" {
		attrs = append(attrs, kv(deploymentEnvironment, cfg.Env))
	}
	if host, err := os.Hostname(); err == nil {
		attrs = append(attrs, kv("host.name", host))
	}
	return &encoder{
		resource: &resourcepb.Resource{Attributes: attrs},
		scope:    &commonpb.InstrumentationScope{Name: ScopeName},
	}
}

// request encodes ended spans, which nobody changes any more.
func (e *encoder) request(batch []*Span) *coltracepb.ExportTraceServiceRequest {
	spans := make([]*tracepb.Span, len(batch))
	for i, s := range batch {
		spans[i] = encodeSpan(s)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   e.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: e.scope, Spans: spans}},
	}}}
}

func encodeSpan(s *Span) *tracepb.Span {
	out := &tracepb.Span{
		TraceId:           append([]byte(nil), s.sc.TraceID[:]...),
		SpanId:            append([]byte(nil), s.sc.SpanID[:]...),
		TraceState:        s.sc.TraceState,
		Flags:             flagSampled | flagHasIsRemote,
		Name:              s.name,
		Kind:              tracepb.Span_SpanKind(int32(s.kind) + otlpKindOffset),
		StartTimeUnixNano: unixNano(s.start),
		EndTimeUnixNano:   unixNano(s.end),
		Attributes:        keyValues(s.attrs),
	}
	if !s.parent.IsZero() {
		out.ParentSpanId = append([]byte(nil), s.parent[:]...)
		if s.parentRemote {
			out.Flags |= flagParentIsRemote
		}
	}
	for _, ev := range s.events {
		out.Events = append(out.Events, &tracepb.Span_Event{
			TimeUnixNano: unixNano(ev.time),
			Name:         ev.name,
			Attributes:   keyValues(ev.attrs),
		})
	}
	switch s.status {
	case StatusOK:
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	case StatusError:
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: s.statusMsg}
	}
	return out
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func keyValues(attrs []attribute) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, len(attrs))
	for i, a := range attrs {
		out[i] = kv(a.key, a.value)
	}
	return out
}

// kv keeps the type of strings, bools, integers and floats; anything else
// is text.
func kv(key string, v any) *commonpb.KeyValue {
	var av commonpb.AnyValue
	switch x := v.(type) {
	case string:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: x}
	case bool:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: x}
	case int:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case int8:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case int16:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case int32:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case int64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: x}
	case uint8:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case uint16:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case uint32:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(x)}
	case uint:
		return &commonpb.KeyValue{Key: key, Value: uintValue(uint64(x))}
	case uint64:
		return &commonpb.KeyValue{Key: key, Value: uintValue(x)}
	case float32:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: float64(x)}
	case float64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: x}
	case time.Duration:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: x.String()}
	case error:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: x.Error()}
	default:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint(x)}
	}
	return &commonpb.KeyValue{Key: key, Value: &av}
}

// uintValue keeps values beyond int64 exact as text rather than wrapping.
func uintValue(x uint64) *commonpb.AnyValue {
	if x > math.MaxInt64 {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint(x)}}
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(x)}}
}
