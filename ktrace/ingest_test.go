package ktrace

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recordingStore is the Store half the ingester uses: it records every
// WriteSpans, can be held (to let requests pile up) and can fail.
type recordingStore struct {
	Store // other methods are never called by the ingester

	mu      sync.Mutex
	batches [][]Span
	stored  map[spanKey]bool
	hold    chan struct{} // when non-nil, WriteSpans waits for it to close
	entered chan struct{} // receives once per WriteSpans call, if non-nil
	err     error
}

func newRecordingStore() *recordingStore {
	return &recordingStore{stored: map[spanKey]bool{}}
}

func (s *recordingStore) WriteSpans(ctx context.Context, spans []Span) error {
	s.mu.Lock()
	hold, entered, err := s.hold, s.entered, s.err
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]Span(nil), spans...))
	for _, sp := range spans {
		s.stored[spanKey{sp.TraceID, sp.SpanID}] = true
	}
	return nil
}

func (s *recordingStore) has(sp Span) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored[spanKey{sp.TraceID, sp.SpanID}]
}

func (s *recordingStore) batchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

func testSpans(trace byte, n int) []Span {
	out := make([]Span, n)
	for i := range out {
		out[i] = Span{
			TraceID: TraceID{0: 0xab, 15: trace},
			SpanID:  SpanID{6: byte(i >> 8), 7: byte(i) + 1},
			Service: "svc",
			Name:    fmt.Sprintf("op-%d", i),
			Start:   time.Unix(1700000000, 0),
		}
	}
	return out
}

// startIngester runs an ingester until the test ends and returns a stop
// function that cancels Run and waits for it.
func startIngester(t *testing.T, cfg IngesterConfig) (*Ingester, func() error) {
	t.Helper()
	in, err := NewIngester(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return in, stop
}

func TestIngestIsDurableOnReturn(t *testing.T) {
	st := newRecordingStore()
	in, _ := startIngester(t, IngesterConfig{Store: st})
	spans := testSpans(1, 3)
	if err := in.Ingest(t.Context(), spans); err != nil {
		t.Fatal(err)
	}
	for _, sp := range spans {
		if !st.has(sp) {
			t.Fatalf("Ingest returned before span %s was written", sp.SpanID)
		}
	}
}

func TestIngestGroupsConcurrentRequestsIntoOneCommit(t *testing.T) {
	st := newRecordingStore()
	st.hold = make(chan struct{})
	st.entered = make(chan struct{}, 100)
	in, _ := startIngester(t, IngesterConfig{Store: st, FlushInterval: -1})

	// The first request occupies the committer; the next ten queue behind
	// it and must share the following commit.
	errs := make(chan error, 11)
	go func() { errs <- in.Ingest(t.Context(), testSpans(0, 1)) }()
	<-st.entered
	for i := 1; i <= 10; i++ {
		go func() { errs <- in.Ingest(t.Context(), testSpans(byte(i), 5)) }()
	}
	waitFor(t, func() bool { return in.queueDepth() == 50 })
	st.mu.Lock()
	st.entered = nil
	st.mu.Unlock()
	close(st.hold)
	for range 11 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := st.batchCount(); got != 2 {
		t.Fatalf("11 requests took %d commits, want 2 (one, then the ten queued together)", got)
	}
}

func TestIngestOverloadedFailsAtOnce(t *testing.T) {
	st := newRecordingStore()
	st.hold = make(chan struct{})
	st.entered = make(chan struct{}, 10)
	reg := prometheus.NewRegistry()
	in, _ := startIngester(t, IngesterConfig{Store: st, MaxQueuedSpans: 10, FlushInterval: -1, Registerer: reg})

	errs := make(chan error, 3)
	go func() { errs <- in.Ingest(t.Context(), testSpans(1, 4)) }() // being written
	<-st.entered
	go func() { errs <- in.Ingest(t.Context(), testSpans(2, 8)) }() // queued
	waitFor(t, func() bool { return in.queueDepth() == 8 })

	err := in.Ingest(t.Context(), testSpans(3, 3)) // 8+3 > 10
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Ingest with a full queue = %v, want ErrOverloaded", err)
	}
	if got := counterValue(in.m.rejected.WithLabelValues("overloaded")); got != 3 {
		t.Errorf("rejected{overloaded} = %v, want 3", got)
	}
	close(st.hold)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Room again: the same request now goes through.
	if err := in.Ingest(t.Context(), testSpans(3, 3)); err != nil {
		t.Fatalf("Ingest after the queue drained: %v", err)
	}
	if got := counterValue(in.m.stored); got != 15 {
		t.Errorf("stored = %v, want 15", got)
	}
}

func TestIngestAcceptsOneOversizedRequestWhenIdle(t *testing.T) {
	st := newRecordingStore()
	in, _ := startIngester(t, IngesterConfig{Store: st, MaxQueuedSpans: 10, MaxBatchSpans: 4})
	if err := in.Ingest(t.Context(), testSpans(1, 25)); err != nil {
		t.Fatalf("a 25-span request into an empty 10-span queue: %v", err)
	}
	if st.batchCount() != 1 {
		t.Fatalf("the request was split over %d commits; want one", st.batchCount())
	}
}

func TestIngestReportsStoreErrors(t *testing.T) {
	st := newRecordingStore()
	st.err = fmt.Errorf("dial db: %w", ErrUnavailable)
	in, _ := startIngester(t, IngesterConfig{Store: st})
	err := in.Ingest(t.Context(), testSpans(1, 2))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ingest = %v, want the store's ErrUnavailable", err)
	}
}

func TestIngestRejectsZeroIDs(t *testing.T) {
	in, _ := startIngester(t, IngesterConfig{Store: newRecordingStore()})
	spans := testSpans(1, 2)
	spans[1].SpanID = SpanID{}
	if err := in.Ingest(t.Context(), spans); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Ingest = %v, want ErrInvalid", err)
	}
}

func TestIngestDropsDuplicatesWithinABatch(t *testing.T) {
	st := newRecordingStore()
	st.hold = make(chan struct{})
	st.entered = make(chan struct{}, 10)
	in, _ := startIngester(t, IngesterConfig{Store: st, FlushInterval: -1})

	errs := make(chan error, 3)
	go func() { errs <- in.Ingest(t.Context(), testSpans(9, 1)) }()
	<-st.entered
	// A client retrying while its first attempt is queued.
	go func() { errs <- in.Ingest(t.Context(), testSpans(1, 3)) }()
	waitFor(t, func() bool { return in.queueDepth() == 3 })
	go func() { errs <- in.Ingest(t.Context(), testSpans(1, 3)) }()
	waitFor(t, func() bool { return in.queueDepth() == 6 })
	st.mu.Lock()
	st.entered = nil
	st.mu.Unlock()
	close(st.hold)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.batches) != 2 || len(st.batches[1]) != 3 {
		t.Fatalf("batches = %d, second of %d spans; want the two copies written as 3 spans", len(st.batches), len(st.batches[len(st.batches)-1]))
	}
}

func TestDropDuplicatesLeavesCallerSliceAlone(t *testing.T) {
	spans := append(testSpans(1, 2), testSpans(1, 2)...)
	orig := append([]Span(nil), spans...)
	got := dropDuplicates(spans, false)
	if len(got) != 2 {
		t.Fatalf("got %d spans, want 2", len(got))
	}
	for i := range spans {
		if spans[i].Name != orig[i].Name || spans[i].SpanID != orig[i].SpanID {
			t.Fatalf("input slice modified at %d", i)
		}
	}
}

func TestShutdownDrainsAcceptedSpans(t *testing.T) {
	st := newRecordingStore()
	st.hold = make(chan struct{})
	st.entered = make(chan struct{}, 10)
	in, stop := startIngester(t, IngesterConfig{Store: st, FlushInterval: -1})

	errs := make(chan error, 2)
	first, second := testSpans(1, 2), testSpans(2, 2)
	go func() { errs <- in.Ingest(t.Context(), first) }()
	<-st.entered
	go func() { errs <- in.Ingest(t.Context(), second) }()
	waitFor(t, func() bool { return in.queueDepth() == 2 })

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// New requests are refused once shutdown began ...
	waitFor(t, func() bool {
		// A probe that slips in before the cancellation is queued (and
		// written in the drain); the short ctx keeps it from blocking.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		defer cancel()
		return errors.Is(in.Ingest(ctx, testSpans(3, 1)), ErrUnavailable)
	})
	st.mu.Lock()
	st.entered = nil
	st.mu.Unlock()
	close(st.hold)
	// ... and what was accepted before is written.
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, sp := range append(first, second...) {
		if !st.has(sp) {
			t.Fatalf("span %s accepted before shutdown was not written", sp.SpanID)
		}
	}
}

func TestIngesterMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	in, _ := startIngester(t, IngesterConfig{Store: newRecordingStore(), Registerer: reg})
	if err := in.Ingest(t.Context(), testSpans(1, 4)); err != nil {
		t.Fatal(err)
	}
	in.Reject(2)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range families {
		registered[f.GetName()] = true
	}
	for _, name := range []string{
		"kplane_ktrace_ingest_spans_accepted_total",
		"kplane_ktrace_ingest_spans_stored_total",
		"kplane_ktrace_ingest_spans_rejected_total",
		"kplane_ktrace_ingest_batch_spans",
		"kplane_ktrace_ingest_commit_seconds",
		"kplane_ktrace_ingest_queue_spans",
	} {
		if !registered[name] {
			t.Errorf("metric %s not registered", name)
		}
	}
	if got := counterValue(in.m.accepted); got != 4 {
		t.Errorf("accepted = %v, want 4", got)
	}
	if got := counterValue(in.m.rejected.WithLabelValues("invalid")); got != 2 {
		t.Errorf("rejected{invalid} = %v, want 2", got)
	}
	var h dto.Metric
	if err := in.m.batchSpans.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 1 || h.GetHistogram().GetSampleSum() != 4 {
		t.Errorf("batch size histogram = %v (%v), want one batch of 4", h.GetHistogram(), err)
	}
}

func TestNewIngesterNeedsStore(t *testing.T) {
	if _, err := NewIngester(IngesterConfig{}); err == nil {
		t.Fatal("NewIngester without a store succeeded")
	}
}

// waitFor polls cond: the conditions here are reached by other goroutines
// within microseconds, and the test's deadline bounds a broken one.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
