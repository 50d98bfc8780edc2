package sdk

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"github.com/kplane/kplane/ktrace"
)

// TraceID and SpanID are ktrace's IDs, so that an ID printed in a log line
// is the one the trace is stored under.
type (
	TraceID = ktrace.TraceID
	SpanID  = ktrace.SpanID
)

// SpanContext is what crosses process boundaries: the IDs of a span and the
// trace's sampling decision.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	// Sampled is the trace's sampling decision: only sampled spans are
	// recorded and exported.
	Sampled bool
	// Deferred means the caller sent IDs but left the sampling decision to
	// this service (B3 without a sampling state); the local Sampler
	// decides, and the decision then travels on.
	Deferred bool
	// TraceState is the W3C tracestate header, passed through untouched.
	TraceState string
	// Remote is set on contexts extracted from a request.
	Remote bool
}

// IsValid reports whether both IDs are set.
func (sc SpanContext) IsValid() bool { return !sc.TraceID.IsZero() && !sc.SpanID.IsZero() }

type spanKey struct{}
type remoteKey struct{}

// SpanFromContext returns the current span of ctx, or nil. Every Span
// method is safe on nil, so callers need not check.
func SpanFromContext(ctx context.Context) *Span {
	s, _ := ctx.Value(spanKey{}).(*Span)
	return s
}

// ContextWithSpan returns ctx with s as its current span.
func ContextWithSpan(ctx context.Context, s *Span) context.Context {
	return context.WithValue(ctx, spanKey{}, s)
}

// ContextWithRemoteSpanContext returns ctx carrying sc as the parent of the
// next span started from it, as if sc had arrived in a request. A current
// span of ctx takes precedence.
func ContextWithRemoteSpanContext(ctx context.Context, sc SpanContext) context.Context {
	sc.Remote = true
	return context.WithValue(ctx, remoteKey{}, sc)
}

// SpanContextFromContext returns the span context of ctx's current span,
// else the remote one ctx carries; ok is false if there is neither.
func SpanContextFromContext(ctx context.Context) (sc SpanContext, ok bool) {
	if s := SpanFromContext(ctx); s != nil {
		return s.sc, true
	}
	sc, ok = ctx.Value(remoteKey{}).(SpanContext)
	return sc, ok
}

// newTraceID and newSpanID use math/rand/v2's global generator: it is
// ChaCha8 seeded by the OS, so IDs are unpredictable and unique across
// processes without coordination, and it is lock-free per goroutine.
func newTraceID() TraceID {
	var id TraceID
	for id.IsZero() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() SpanID {
	var id SpanID
	for id.IsZero() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
