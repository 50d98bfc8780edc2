package ktrace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ingester defaults, used when the IngesterConfig field is zero.
const (
	// DefaultMaxQueuedSpans bounds the spans waiting for a commit. At
	// ~1 KiB per decoded span this is ~200 MiB at worst.
	DefaultMaxQueuedSpans = 200_000
	// DefaultMaxBatchSpans is the most spans one WriteSpans receives
	// (unless a single request is larger: a request is never split, so
	// that it is acknowledged by exactly one commit).
	DefaultMaxBatchSpans = 20_000
	// DefaultFlushInterval is how long the oldest queued request waits for
	// company before its batch is written anyway.
	DefaultFlushInterval = 2 * time.Millisecond
)

// IngesterConfig configures an Ingester. Store is required; every other
// zero value is usable.
type IngesterConfig struct {
	// Store receives the batches. Required.
	Store Store
	// MaxQueuedSpans bounds memory: Ingest fails with ErrOverloaded when
	// accepting a request would queue more. Zero is DefaultMaxQueuedSpans.
	MaxQueuedSpans int
	// MaxBatchSpans bounds one WriteSpans. Zero is DefaultMaxBatchSpans.
	MaxBatchSpans int
	// FlushInterval is the longest a request waits for others to share its
	// commit while the store is idle. Zero is DefaultFlushInterval; a
	// negative value writes at once.
	FlushInterval time.Duration
	// Logger receives commit failures. Nil discards.
	Logger *slog.Logger
	// Registerer receives the ingest metrics. Nil registers nothing.
	Registerer prometheus.Registerer
}

// Ingester is the write path from decoded spans to the Store: a group
// commit. Concurrent Ingest calls queue their spans; one committer writes
// everything queued as one WriteSpans (the cost of a durable commit is
// paid once per batch, not per request), then wakes every caller whose
// spans that batch held.
//
// Guarantees: Ingest returns nil only after its spans are durable, so an
// acknowledged span survives a crash. It never waits for room in the
// queue: a full queue fails at once with ErrOverloaded, so memory stays
// bounded and the client's retry (with backoff) is the back-pressure.
// Shutdown writes everything already accepted before Run returns.
type Ingester struct {
	store    Store
	log      *slog.Logger
	maxQueue int
	maxBatch int
	linger   time.Duration
	m        *ingestMetrics

	mu      sync.Mutex
	queue   []*ingestRequest
	queued  int  // spans in queue
	closed  bool // Run is draining or has returned: refuse new requests
	running bool
	// stopping is Run's ctx.Done(): once it is closed new requests are
	// refused even while the committer is still busy with a write.
	stopping <-chan struct{}
	wake     chan struct{} // capacity 1: "the queue changed"
}

// ingestRequest is one Ingest call waiting for its commit.
type ingestRequest struct {
	spans []Span
	at    time.Time
	done  chan error // capacity 1, receives exactly once
}

// NewIngester checks the configuration and registers the metrics.
func NewIngester(cfg IngesterConfig) (*Ingester, error) {
	if cfg.Store == nil {
		return nil, errors.New("ktrace: IngesterConfig.Store is required")
	}
	if cfg.MaxQueuedSpans < 0 || cfg.MaxBatchSpans < 0 {
		return nil, fmt.Errorf("ktrace: negative ingest limits (MaxQueuedSpans %d, MaxBatchSpans %d)", cfg.MaxQueuedSpans, cfg.MaxBatchSpans)
	}
	in := &Ingester{
		store:    cfg.Store,
		log:      cfg.Logger,
		maxQueue: cfg.MaxQueuedSpans,
		maxBatch: cfg.MaxBatchSpans,
		linger:   cfg.FlushInterval,
		wake:     make(chan struct{}, 1),
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.maxQueue == 0 {
		in.maxQueue = DefaultMaxQueuedSpans
	}
	if in.maxBatch == 0 {
		in.maxBatch = DefaultMaxBatchSpans
	}
	if in.linger == 0 {
		in.linger = DefaultFlushInterval
	}
	var err error
	if in.m, err = newIngestMetrics(cfg.Registerer, in.queueDepth); err != nil {
		return nil, fmt.Errorf("ktrace: %w", err)
	}
	return in, nil
}

// Ingest queues spans for the next commit and waits for it. It returns nil
// once they are durable; ErrOverloaded (wrapped) at once if the queue is
// full; ErrUnavailable if the ingester is shutting down; ErrInvalid if a
// span has a zero trace ID, span ID or start time (decoders filter those
// out first); or
// the store's error. If ctx ends first Ingest returns ctx.Err(): the spans
// may still be written, and a retry is deduplicated by the store.
//
// The caller must not modify spans after the call, even after a ctx
// cancellation: they stay queued until written.
func (in *Ingester) Ingest(ctx context.Context, spans []Span) error {
	if len(spans) == 0 {
		return nil
	}
	// Checked here, per request, because the store refuses a whole batch
	// for one bad span, and a batch holds other clients' spans too.
	for i := range spans {
		if spans[i].TraceID.IsZero() || spans[i].SpanID.IsZero() || spans[i].Start.IsZero() {
			in.m.rejected.WithLabelValues("invalid").Add(float64(len(spans)))
			return fmt.Errorf("%w: span %d has a zero trace ID, span ID or start time", ErrInvalid, i)
		}
	}
	req := &ingestRequest{spans: spans, at: time.Now(), done: make(chan error, 1)}
	in.mu.Lock()
	switch {
	case in.closed || isClosed(in.stopping):
		in.mu.Unlock()
		in.m.rejected.WithLabelValues("shutdown").Add(float64(len(spans)))
		return fmt.Errorf("%w: span ingest is shutting down", ErrUnavailable)
	// One request larger than the whole queue is still accepted when the
	// queue is empty: it is bounded by the HTTP body limit, and refusing
	// it would make it fail forever.
	case in.queued > 0 && in.queued+len(spans) > in.maxQueue:
		in.mu.Unlock()
		in.m.rejected.WithLabelValues("overloaded").Add(float64(len(spans)))
		return fmt.Errorf("%w: %d spans already queued for the store", ErrOverloaded, in.maxQueue)
	}
	in.queue = append(in.queue, req)
	in.queued += len(spans)
	in.mu.Unlock()
	in.m.accepted.Add(float64(len(spans)))
	in.signal()

	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reject counts spans a decoder refused (zero IDs, no start time), so the
// rejected metric covers every span that was sent but not stored.
func (in *Ingester) Reject(n int) {
	if n > 0 {
		in.m.rejected.WithLabelValues("invalid").Add(float64(n))
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (in *Ingester) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *Ingester) queueDepth() float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return float64(in.queued)
}

// Run commits queued spans until ctx is cancelled, then refuses new
// requests, writes everything already accepted and returns nil. It must be
// called once.
func (in *Ingester) Run(ctx context.Context) error {
	in.mu.Lock()
	if in.running {
		in.mu.Unlock()
		return errors.New("ktrace: Ingester.Run called twice")
	}
	in.running = true
	in.stopping = ctx.Done()
	in.mu.Unlock()

	// The final drain must not be cancelled by the very cancellation that
	// triggered it: those spans were acknowledged as accepted.
	writeCtx := context.WithoutCancel(ctx)
	var timer *time.Timer
	for {
		batch, wait := in.take(false)
		if batch != nil {
			in.commit(writeCtx, batch)
			continue
		}
		var timeout <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		select {
		case <-in.wake:
		case <-timeout:
		case <-ctx.Done():
			in.mu.Lock()
			in.closed = true
			in.mu.Unlock()
			for {
				batch, _ := in.take(true)
				if batch == nil {
					return nil
				}
				in.commit(writeCtx, batch)
			}
		}
		if timer != nil {
			// Since Go 1.23 Stop and Reset discard a pending tick.
			timer.Stop()
		}
	}
}

// take removes the next batch from the queue: whole requests, up to
// maxBatch spans (at least one request). Unless force is set it holds a
// small batch back until the oldest request has waited linger, returning
// how much longer to wait; (nil, 0) means the queue is empty.
func (in *Ingester) take(force bool) ([]*ingestRequest, time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.queue) == 0 {
		return nil, 0
	}
	if !force && in.queued < in.maxBatch && in.linger > 0 {
		if wait := in.linger - time.Since(in.queue[0].at); wait > 0 {
			return nil, wait
		}
	}
	n, spans := 0, 0
	for n < len(in.queue) && (n == 0 || spans+len(in.queue[n].spans) <= in.maxBatch) {
		spans += len(in.queue[n].spans)
		n++
	}
	batch := make([]*ingestRequest, n)
	copy(batch, in.queue[:n])
	// Shift rather than reslice so the queue's backing array does not
	// keep finished requests (and their spans) alive.
	rest := copy(in.queue, in.queue[n:])
	clear(in.queue[rest:])
	in.queue = in.queue[:rest]
	in.queued -= spans
	return batch, 0
}

// commit writes one batch and answers every request in it.
func (in *Ingester) commit(ctx context.Context, batch []*ingestRequest) {
	spans := batch[0].spans
	if len(batch) > 1 {
		total := 0
		for _, r := range batch {
			total += len(r.spans)
		}
		spans = make([]Span, 0, total)
		for _, r := range batch {
			spans = append(spans, r.spans...)
		}
	}
	spans = dropDuplicates(spans, len(batch) > 1)
	start := time.Now()
	err := in.store.WriteSpans(ctx, spans)
	in.m.commitSeconds.Observe(time.Since(start).Seconds())
	in.m.batchSpans.Observe(float64(len(spans)))
	if err != nil {
		in.m.rejected.WithLabelValues("store").Add(float64(len(spans)))
		in.log.Error("write spans", "spans", len(spans), "requests", len(batch), "err", err)
		err = fmt.Errorf("write spans: %w", err)
	} else {
		in.m.stored.Add(float64(len(spans)))
	}
	for _, r := range batch {
		r.done <- err
	}
}

// spanKey identifies a span in the store.
type spanKey struct {
	trace TraceID
	span  SpanID
}

// dropDuplicates removes repeated (TraceID, SpanID) pairs, keeping the
// first: a client that retries while its first attempt is still queued
// puts the same spans in one batch twice. owned says spans may be
// modified in place; otherwise a copy is made only if there is a
// duplicate.
func dropDuplicates(spans []Span, owned bool) []Span {
	seen := make(map[spanKey]struct{}, len(spans))
	out := spans[:0:0]
	dup := false
	for i := range spans {
		k := spanKey{spans[i].TraceID, spans[i].SpanID}
		if _, ok := seen[k]; ok {
			if !dup {
				dup = true
				if owned {
					out = spans[:i]
				} else {
					out = append(make([]Span, 0, len(spans)-1), spans[:i]...)
				}
			}
			continue
		}
		seen[k] = struct{}{}
		if dup {
			out = append(out, spans[i])
		}
	}
	if !dup {
		return spans
	}
	return out
}

type ingestMetrics struct {
	accepted      prometheus.Counter
	stored        prometheus.Counter
	rejected      *prometheus.CounterVec
	batchSpans    prometheus.Histogram
	commitSeconds prometheus.Histogram
}

func newIngestMetrics(reg prometheus.Registerer, depth func() float64) (*ingestMetrics, error) {
	m := &ingestMetrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kplane_ktrace_ingest_spans_accepted_total",
			Help: "Spans queued for the store.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kplane_ktrace_ingest_spans_stored_total",
			Help: "Spans written durably (a retried span counts again; the store keeps it once).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kplane_ktrace_ingest_spans_rejected_total",
			Help: "Spans refused, by reason: invalid, overloaded, shutdown, store (the write failed and the client was told).",
		}, []string{"reason"}),
		batchSpans: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kplane_ktrace_ingest_batch_spans",
			Help:    "Spans per store commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kplane_ktrace_ingest_commit_seconds",
			Help:    "Duration of one store commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kplane_ktrace_ingest_queue_spans",
		Help: "Spans waiting for a store commit.",
	}, depth)
	for _, reason := range []string{"invalid", "overloaded", "shutdown", "store"} {
		m.rejected.WithLabelValues(reason)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.accepted, m.stored, m.rejected, m.batchSpans, m.commitSeconds, queue} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register ingest metrics: %w", err)
			}
		}
	}
	return m, nil
}
