package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// Reasons a span is dropped, the values of the reason label.
const (
	DropQueueFull    = "queue_full"    // the queue was full: the collector is slow or down
	DropExportFailed = "export_failed" // every attempt to send its batch failed
	DropRejected     = "rejected"      // the collector refused the batch as malformed or too large
	DropShutdown     = "shutdown"      // ended after Shutdown, or not sent before its deadline
)

// maxRetryAfter caps how long a collector's Retry-After can hold the
// reporter: the queue fills (and drops) meanwhile.
const maxRetryAfter = 30 * time.Second

// reporter batches ended spans and exports them from one goroutine. The
// request path only ever does a non-blocking channel send.
type reporter struct {
	queue    chan *Span
	stop     chan struct{} // closed by shutdown: drain and exit
	done     chan struct{} // closed when run returns
	stopOnce sync.Once
	closed   atomic.Bool
	// ctx is cancelled when shutdown's deadline passes, aborting the
	// export in flight and the retry waits.
	ctx    context.Context
	cancel context.CancelFunc

	url           string
	client        *http.Client
	batchSize     int
	flushInterval time.Duration
	maxRetries    int
	backoff       time.Duration
	encoder       *encoder
	log           *slog.Logger

	queued   prometheus.Counter
	exported prometheus.Counter
	dropped  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

func newReporter(cfg Config, url string) (*reporter, error) {
	r := &reporter{
		queue:         make(chan *Span, orDefault(cfg.QueueSize, DefaultQueueSize)),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
		url:           url,
		client:        cfg.HTTPClient,
		batchSize:     orDefault(cfg.BatchSize, DefaultBatchSize),
		flushInterval: cfg.FlushInterval,
		maxRetries:    cfg.MaxRetries,
		backoff:       cfg.RetryBackoff,
		encoder:       newEncoder(cfg),
		log:           cfg.Logger,
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ktrace_sdk_spans_queued_total",
			Help: "Spans ended and queued for export.",
		}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ktrace_sdk_spans_exported_total",
			Help: "Spans the collector acknowledged.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktrace_sdk_spans_dropped_total",
			Help: "Spans ended but never acknowledged by the collector, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktrace_sdk_export_requests_total",
			Help: "Export requests sent, retries included, by result (ok, error).",
		}, []string{"result"}),
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: DefaultExportTimeout}
	}
	if r.flushInterval <= 0 {
		r.flushInterval = DefaultFlushInterval
	}
	switch {
	case r.maxRetries == 0:
		r.maxRetries = DefaultMaxRetries
	case r.maxRetries < 0:
		r.maxRetries = 0
	}
	if r.backoff <= 0 {
		r.backoff = DefaultRetryBackoff
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	// Every reason is visible from the start, at zero, so that alerts on
	// increase() see the first drop.
	for _, reason := range []string{DropQueueFull, DropExportFailed, DropRejected, DropShutdown} {
		r.dropped.WithLabelValues(reason)
	}
	for _, result := range []string{"ok", "error"} {
		r.requests.WithLabelValues(result)
	}
	if cfg.Registerer != nil {
		queueLen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ktrace_sdk_queue_length",
			Help: "Spans waiting for export.",
		}, func() float64 { return float64(len(r.queue)) })
		for _, c := range []prometheus.Collector{r.queued, r.exported, r.dropped, r.requests, queueLen} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ktrace sdk: register metrics: %w", err)
			}
		}
	}
	// The reporter outlives any request; only shutdown ends it.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	return r, nil
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// enqueue never blocks: a full queue drops the span.
func (r *reporter) enqueue(s *Span) {
	if r.closed.Load() {
		r.dropped.WithLabelValues(DropShutdown).Inc()
		return
	}
	select {
	case r.queue <- s:
		r.queued.Inc()
	default:
		r.dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

func (r *reporter) run() {
	defer close(r.done)
	defer r.cancel()
	tick := time.NewTicker(r.flushInterval)
	defer tick.Stop()
	batch := make([]*Span, 0, r.batchSize)
	flush := func() {
		if len(batch) > 0 {
			r.export(batch)
			clear(batch) // let the spans be collected
			batch = batch[:0]
		}
	}
	for {
		select {
		case s := <-r.queue:
			batch = append(batch, s)
			if len(batch) == r.batchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-r.stop:
			for {
				select {
				case s := <-r.queue:
					batch = append(batch, s)
					if len(batch) == r.batchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// export sends one batch, retrying with exponential backoff. Producers
// are not held meanwhile: they keep filling the queue, and drop once it is
// full.
func (r *reporter) export(batch []*Span) {
	body, err := proto.Marshal(r.encoder.request(batch))
	if err != nil { // cannot happen with well-formed messages; counted anyway
		r.drop(DropRejected, len(batch), err)
		return
	}
	wait := r.backoff
	for attempt := 0; ; attempt++ {
		retryAfter, err := r.post(body)
		if err == nil {
			r.requests.WithLabelValues("ok").Inc()
			r.exported.Add(float64(len(batch)))
			return
		}
		r.requests.WithLabelValues("error").Inc()
		var perm permanentError
		switch {
		case r.ctx.Err() != nil:
			r.drop(DropShutdown, len(batch), err)
			return
		case errors.As(err, &perm):
			r.drop(DropRejected, len(batch), err)
			return
		case attempt >= r.maxRetries:
			r.drop(DropExportFailed, len(batch), err)
			return
		}
		d := max(wait, min(retryAfter, maxRetryAfter))
		wait *= 2
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			r.drop(DropShutdown, len(batch), err)
			return
		}
	}
}

func (r *reporter) drop(reason string, n int, err error) {
	r.dropped.WithLabelValues(reason).Add(float64(n))
	if reason != DropShutdown || !errors.Is(err, context.Canceled) {
		r.log.Warn("spans dropped", "reason", reason, "spans", n, "err", err)
	}
}

// permanentError is a refusal that sending again cannot fix.
type permanentError struct{ status int }

func (e permanentError) Error() string {
	return "collector refused the batch: " + http.StatusText(e.status)
}

// post sends one export request. It returns the collector's Retry-After,
// if any, with a retryable error.
func (r *reporter) post(body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain a little so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		var after time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return after, fmt.Errorf("collector answered %s", resp.Status)
	default:
		return 0, permanentError{resp.StatusCode}
	}
}

func (r *reporter) shutdown(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.closed.Store(true)
		close(r.stop)
	})
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done // quick: the export in flight and every later one fail at once
		return fmt.Errorf("ktrace sdk: shutdown: %w", context.Cause(ctx))
	}
}
