package ktrace

import (
	"context"
	"time"
)

// LookupStatus says what the store knows about a trace ID.
type LookupStatus string

const (
	// Found: the spans are returned.
	Found LookupStatus = "found"
	// Expired: the store had this trace, and retention removed it.
	Expired LookupStatus = "expired"
	// Unknown: the store never had this trace (or forgot even that).
	Unknown LookupStatus = "unknown"
)

// Trace is the answer to a lookup by trace ID.
type Trace struct {
	ID     TraceID
	Status LookupStatus
	// Spans in start-time order; empty unless Status is Found.
	Spans []Span
}

// Query selects traces for search. Zero fields do not filter, except Limit
// (0 means 20) and the time range (zero End means now, zero Start means
// End − 1 h).
type Query struct {
	Service     string
	Operation   string // span name; requires Service
	MinDuration time.Duration
	MaxDuration time.Duration
	Start, End  time.Time
	Tags        map[string]string // every tag must match one span of the trace
	Limit       int
}

// TraceSummary is one search result.
type TraceSummary struct {
	ID          TraceID
	RootService string
	RootName    string
	Start       time.Time
	Duration    time.Duration
	SpanCount   int
	ErrorCount  int
	Services    []string // sorted
}

// Dependency is a call edge between two services, counted at ingest.
type Dependency struct {
	Parent     string
	Child      string
	CallCount  int64
	ErrorCount int64
}

// Store is the span store contract that every backend implements and the
// conformance suite (ktrace/storetest) proves.
//
// Concurrency: all methods are safe for concurrent use.
//
// Durability and idempotency: WriteSpans returns nil only once every span
// is durable (a crash or restart after that loses none). Writing a span
// whose (TraceID, SpanID) is already stored stores nothing new, so a
// retried batch is stored once. WriteSpans is all-or-nothing.
//
// Ownership: the store does not keep references to the slices and maps it
// is given, and returned values belong to the caller.
//
// Cancellation: a cancelled ctx makes a call return ctx.Err() (wrapped);
// a cancelled WriteSpans stored either all or none of its spans.
//
// Errors: ErrInvalid for a bad query; ErrUnavailable (wrapped) when the
// backend cannot be reached; a missing trace is not an error but a Trace
// with Status Unknown or Expired.
type Store interface {
	WriteSpans(ctx context.Context, spans []Span) error
	Trace(ctx context.Context, id TraceID) (Trace, error)
	FindTraces(ctx context.Context, q Query) ([]TraceSummary, error)
	Services(ctx context.Context) ([]string, error)
	Operations(ctx context.Context, service string) ([]string, error)
	// Dependencies returns the edges counted between start and end.
	Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error)
	// Expire removes spans that started before cutoff, remembering their
	// trace IDs as expired, and returns how many spans it removed.
	Expire(ctx context.Context, cutoff time.Time) (int64, error)
	Close() error
}
