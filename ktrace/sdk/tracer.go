package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultQueueSize     = 4096
	DefaultBatchSize     = 512
	DefaultFlushInterval = time.Second
	DefaultMaxRetries    = 3
	DefaultRetryBackoff  = 250 * time.Millisecond
	// DefaultExportTimeout bounds one export request of the default
	// HTTP client.
	DefaultExportTimeout = 10 * time.Second
)

// Config configures a Tracer. Every field but ServiceName has a safe zero
// value.
type Config struct {
	// ServiceName is the service.name of every span; required.
	ServiceName string
	// Version and Env become service.version and deployment.environment.
	Version string
	Env     string
	// Endpoint is the collector's base URL (ktrace's HTTP address, or any
	// OTLP/HTTP collector); spans go to Endpoint + "/v1/traces". "" means
	// spans are not exported: IDs are still made and propagated (for logs
	// and downstream services) but nothing is recorded.
	Endpoint string
	// Sampler decides for new traces; nil means AlwaysSample. Spans with
	// a parent follow the parent's decision.
	Sampler Sampler
	// Inject selects the headers Inject and Transport write; 0 means
	// DefaultFormats. Extract reads every format whatever this says.
	Inject Format
	// QueueSize bounds the ended spans waiting for export; beyond it
	// spans are dropped. 0 means DefaultQueueSize.
	QueueSize int
	// BatchSize is the most spans per export request; 0 means
	// DefaultBatchSize.
	BatchSize int
	// FlushInterval is the longest a span waits for its batch to fill; 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxRetries is how many times a failed batch is sent again before it
	// is dropped; 0 means DefaultMaxRetries, negative means none.
	MaxRetries int
	// RetryBackoff is the wait before the first retry, doubled each time;
	// 0 means DefaultRetryBackoff.
	RetryBackoff time.Duration
	// HTTPClient sends the batches; nil means a client with a
	// DefaultExportTimeout timeout.
	HTTPClient *http.Client
	// Registerer receives the reporter's metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Logger reports failed exports (at most one line per failed batch);
	// nil discards.
	Logger *slog.Logger
}

// Tracer starts spans and reports them. It is safe for concurrent use.
type Tracer struct {
	service string
	sampler Sampler
	inject  Format
	rep     *reporter // nil when nothing is exported
}

// New builds a Tracer and, if cfg.Endpoint is set, starts its reporter;
// call Shutdown to flush and stop it.
func New(cfg Config) (*Tracer, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("ktrace sdk: service name is empty")
	}
	t := &Tracer{service: cfg.ServiceName, sampler: cfg.Sampler, inject: cfg.Inject}
	if t.sampler == nil {
		t.sampler = AlwaysSample()
	}
	if t.inject == 0 {
		t.inject = DefaultFormats
	}
	if cfg.Endpoint == "" {
		return t, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ktrace sdk: endpoint %q: want a base URL like http://127.0.0.1:8080", cfg.Endpoint)
	}
	rep, err := newReporter(cfg, strings.TrimSuffix(cfg.Endpoint, "/")+"/v1/traces")
	if err != nil {
		return nil, err
	}
	t.rep = rep
	return t, nil
}

// StartOption adjusts a span being started.
type StartOption func(*startConfig)

type startConfig struct {
	kind      Kind
	parent    SpanContext
	hasParent bool
	start     time.Time
	attrs     []attribute
	noRecord  bool
}

// WithKind sets the span's kind; the default is KindInternal.
func WithKind(k Kind) StartOption { return func(c *startConfig) { c.kind = k } }

// WithParent makes sc the parent instead of ctx's current span: how a
// server span continues the trace its request arrived with.
func WithParent(sc SpanContext) StartOption {
	return func(c *startConfig) { c.parent, c.hasParent = sc, true }
}

// WithTags sets attributes from alternating keys and values, as AddEvent.
func WithTags(keyvals ...any) StartOption {
	return func(c *startConfig) { c.attrs = append(c.attrs, pairs(keyvals)...) }
}

// WithStartTime backdates the span.
func WithStartTime(t time.Time) StartOption { return func(c *startConfig) { c.start = t } }

// withoutRecording keeps IDs and propagation but records nothing, for
// requests a middleware filter excludes.
func withoutRecording() StartOption { return func(c *startConfig) { c.noRecord = true } }

// Start starts a span as a child of ctx's current span (or of the remote
// span context ctx carries), else as the root of a new trace, and returns
// ctx with the span as current. End the span when the work is done.
func (t *Tracer) Start(ctx context.Context, name string, opts ...StartOption) (context.Context, *Span) {
	var c startConfig
	for _, o := range opts {
		o(&c)
	}
	if !c.hasParent {
		c.parent, c.hasParent = SpanContextFromContext(ctx)
	}
	s := &Span{tracer: t}
	now := c.start
	if now.IsZero() {
		now = time.Now()
	}
	p := c.parent
	switch {
	case p.IsValid():
		s.sc = SpanContext{TraceID: p.TraceID, Sampled: p.Sampled, TraceState: p.TraceState}
		s.parent, s.parentRemote = p.SpanID, p.Remote
		if p.Deferred {
			s.sc.Sampled = t.sampler.Sample(SamplingParams{TraceID: p.TraceID, Name: name, Now: now})
		}
	case c.hasParent && p.Remote && !p.Deferred && p.TraceID.IsZero():
		// A decision without IDs (B3 "0" or "1"): a new trace that keeps it.
		s.sc = SpanContext{TraceID: newTraceID(), Sampled: p.Sampled}
	default:
		s.sc.TraceID = newTraceID()
		s.sc.Sampled = t.sampler.Sample(SamplingParams{TraceID: s.sc.TraceID, Name: name, Now: now})
	}
	s.sc.SpanID = newSpanID()
	if s.sc.Sampled && t.rep != nil && !c.noRecord {
		s.recording = true
		s.name, s.kind, s.start, s.attrs = name, c.kind, now, c.attrs
	}
	return ContextWithSpan(ctx, s), s
}

// Inject writes the span context of ctx into h in the formats of
// Config.Inject. It writes nothing if ctx has no span context.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if sc, ok := SpanContextFromContext(ctx); ok {
		Inject(sc, h, t.inject)
	}
}

// Shutdown stops accepting spans and exports what is queued, waiting until
// done or until ctx ends (then what is left is dropped and counted, and
// ctx's error returned). Spans ended afterwards are dropped.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t.rep == nil {
		return nil
	}
	return t.rep.shutdown(ctx)
}
