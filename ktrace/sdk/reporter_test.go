package sdk

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

func TestExportIsValidOTLP(t *testing.T) {
	c := newCollector(t)
	tr, reg := newTracer(t, Config{ServiceName: "inventory", Version: "1.2.3", Env: "qa", Endpoint: c.URL + "/"})

	ctx, root := tr.Start(t.Context(), "root", WithKind(KindServer), WithTags("http.route", "GET /x"))
	_, child := tr.Start(ctx, "child", WithKind(KindClient))
	child.SetTag("count", 3)
	child.SetTag("ratio", 0.5)
	child.SetTag("ok", true)
	child.SetTag("big", uint64(1)<<63)
	child.SetTag("count", 4) // replaces
	child.AddEvent("retry", "attempt", 2)
	child.SetError(errors.New("inventory down"))
	child.End()
	child.SetTag("late", "ignored after End")
	root.SetStatus(StatusOK, "ignored message")
	root.End()
	root.End() // once only
	shutdown(t, tr)

	if c.Malformed() != 0 {
		t.Fatalf("%d malformed requests", c.Malformed())
	}
	reqs := c.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d export requests, want 1 batch", len(reqs))
	}
	res := reqs[0].GetResourceSpans()[0].GetResource().GetAttributes()
	for key, want := range map[string]string{"service.name": "inventory", "service.version": "1.2.3", "deployment.environment": "qa"} {
		if got := sdktest.Attr(res, key).GetStringValue(); got != want {
			t.Errorf("resource %s = %q, want %q", key, got, want)
		}
	}
	if got := reqs[0].GetResourceSpans()[0].GetScopeSpans()[0].GetScope().GetName(); got != ScopeName {
		t.Errorf("scope = %q", got)
	}
	spans := c.Spans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	gotChild, gotRoot := spans[0], spans[1]
	if gotChild.GetName() != "child" || gotRoot.GetName() != "root" {
		t.Fatalf("spans in order %q, %q", gotChild.GetName(), gotRoot.GetName())
	}
	if gotChild.TraceID() != root.TraceID().String() || gotRoot.TraceID() != root.TraceID().String() {
		t.Errorf("trace IDs %s %s, want %s", gotChild.TraceID(), gotRoot.TraceID(), root.TraceID())
	}
	if gotChild.ParentSpanID() != gotRoot.SpanID() || len(gotRoot.GetParentSpanId()) != 0 {
		t.Errorf("child's parent %s, root %s (root's parent %x)", gotChild.ParentSpanID(), gotRoot.SpanID(), gotRoot.GetParentSpanId())
	}
	if gotRoot.GetKind() != tracepb.Span_SPAN_KIND_SERVER || gotChild.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("kinds %v %v", gotRoot.GetKind(), gotChild.GetKind())
	}
	if gotRoot.GetFlags()&0x1 == 0 || gotRoot.GetStartTimeUnixNano() == 0 || gotRoot.GetEndTimeUnixNano() < gotRoot.GetStartTimeUnixNano() {
		t.Errorf("root flags %x, times %d..%d", gotRoot.GetFlags(), gotRoot.GetStartTimeUnixNano(), gotRoot.GetEndTimeUnixNano())
	}
	if gotRoot.Attr("http.route").GetStringValue() != "GET /x" || gotRoot.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_OK || gotRoot.GetStatus().GetMessage() != "" {
		t.Errorf("root attrs %v status %v", gotRoot.GetAttributes(), gotRoot.GetStatus())
	}
	if gotChild.Attr("count").GetIntValue() != 4 || gotChild.Attr("ratio").GetDoubleValue() != 0.5 ||
		!gotChild.Attr("ok").GetBoolValue() || gotChild.Attr("big").GetStringValue() != "9223372036854775808" ||
		gotChild.Attr("late") != nil || len(gotChild.GetAttributes()) != 4 {
		t.Errorf("child attrs %v", gotChild.GetAttributes())
	}
	if gotChild.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || gotChild.GetStatus().GetMessage() != "inventory down" {
		t.Errorf("child status %v", gotChild.GetStatus())
	}
	evs := gotChild.GetEvents()
	if len(evs) != 2 || evs[0].GetName() != "retry" || sdktest.Attr(evs[0].GetAttributes(), "attempt").GetIntValue() != 2 ||
		evs[1].GetName() != "exception" || sdktest.Attr(evs[1].GetAttributes(), "exception.message").GetStringValue() != "inventory down" {
		t.Errorf("child events %v", evs)
	}
	if got := counter(t, reg, "ktrace_sdk_spans_exported_total"); got != 2 {
		t.Errorf("exported counter %v, want 2", got)
	}
	if got := counter(t, reg, "ktrace_sdk_spans_queued_total"); got != 2 {
		t.Errorf("queued counter %v, want 2", got)
	}
}

func TestBatching(t *testing.T) {
	c := newCollector(t)
	tr, _ := newTracer(t, Config{Endpoint: c.URL, BatchSize: 10, FlushInterval: time.Hour})
	for range 25 {
		_, s := tr.Start(t.Context(), "op")
		s.End()
	}
	shutdown(t, tr)
	var sizes []int
	for _, r := range c.Requests() {
		sizes = append(sizes, len(r.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()))
	}
	if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 10 || sizes[2] != 5 {
		t.Errorf("batch sizes %v, want [10 10 5]", sizes)
	}
}

func TestFlushInterval(t *testing.T) {
	c := newCollector(t)
	tr, _ := newTracer(t, Config{Endpoint: c.URL, FlushInterval: 10 * time.Millisecond})
	_, s := tr.Start(t.Context(), "op")
	s.End()
	// Without Shutdown, the ticker alone must send the lone span.
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Spans()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(c.Spans()) != 1 {
		t.Fatal("a partial batch was not flushed by the interval")
	}
}

// deadEndpoint is an address nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestNeverBlocksWhenCollectorIsDownOrStuck(t *testing.T) {
	stuck := make(chan struct{})
	stuckSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuckSrv.Close)
	t.Cleanup(func() { close(stuck) })

	for name, endpoint := range map[string]string{"down": deadEndpoint(t), "stuck": stuckSrv.URL} {
		t.Run(name, func(t *testing.T) {
			const n, queue = 20000, 100
			tr, reg := newTracer(t, Config{Endpoint: endpoint, QueueSize: queue, BatchSize: 10, RetryBackoff: time.Hour})
			done := make(chan time.Duration)
			go func() {
				start := time.Now()
				for range n {
					ctx, s := tr.Start(context.Background(), "op")
					_, c := tr.Start(ctx, "child")
					c.End()
					s.End()
				}
				done <- time.Since(start)
			}()
			// A blocking reporter would hang here (the collector never
			// answers, the retry waits an hour); the bound is generous
			// for a shared machine, timing goals are in bench/ktrace-sdk.
			select {
			case d := <-done:
				t.Logf("%d spans ended in %v", 2*n, d)
			case <-time.After(30 * time.Second):
				t.Fatal("Start/End blocked on a dead collector")
			}
			queued := counter(t, reg, "ktrace_sdk_spans_queued_total")
			full := counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", DropQueueFull)
			if queued+full != 2*n {
				t.Errorf("queued %v + dropped %v != %d ended", queued, full, 2*n)
			}
			if queued > queue+10 { // the queue plus the batch being sent
				t.Errorf("queued %v spans with a queue of %d", queued, queue)
			}
			// Shutdown gives up at its deadline and counts the rest.
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			if err := tr.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want deadline exceeded", err)
			}
			lost := counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", DropShutdown) +
				counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", DropExportFailed)
			if lost != queued {
				t.Errorf("dropped at shutdown %v, want every queued span (%v)", lost, queued)
			}
			before := counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", DropShutdown)
			_, late := tr.Start(t.Context(), "late")
			late.End()
			if got := counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", DropShutdown); got != before+1 {
				t.Errorf("span ended after Shutdown: dropped{shutdown} %v, want %v", got, before+1)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		status   func(n int) int
		requests int
		exported float64
		dropped  string
	}{
		{"503 twice then ok", func(n int) int { return map[int]int{0: 503, 1: 503}[n] }, 3, 1, ""},
		{"429 then ok", func(n int) int { return map[int]int{0: 429}[n] }, 2, 1, ""},
		{"always 500: bounded retries", func(int) int { return 500 }, 3, 0, DropExportFailed},
		{"400 is not retried", func(int) int { return 400 }, 1, 0, DropRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t)
			c.FailWith(tt.status)
			tr, reg := newTracer(t, Config{Endpoint: c.URL, MaxRetries: 2, RetryBackoff: time.Millisecond})
			_, s := tr.Start(t.Context(), "op")
			s.End()
			shutdown(t, tr)
			if got := c.Received(); got != tt.requests {
				t.Errorf("collector got %d requests, want %d", got, tt.requests)
			}
			if got := counter(t, reg, "ktrace_sdk_spans_exported_total"); got != tt.exported {
				t.Errorf("exported %v, want %v", got, tt.exported)
			}
			if tt.dropped != "" {
				if got := counter(t, reg, "ktrace_sdk_spans_dropped_total", "reason", tt.dropped); got != 1 {
					t.Errorf("dropped{%s} = %v, want 1", tt.dropped, got)
				}
			}
		})
	}
}

func TestShutdownFlushesEverythingQueued(t *testing.T) {
	c := newCollector(t)
	tr, reg := newTracer(t, Config{Endpoint: c.URL, FlushInterval: time.Hour, BatchSize: 100})
	for range 250 {
		_, s := tr.Start(t.Context(), "op")
		s.End()
	}
	shutdown(t, tr)
	if got := len(c.Spans()); got != 250 {
		t.Errorf("collector has %d spans after Shutdown, want 250", got)
	}
	if got := counter(t, reg, "ktrace_sdk_spans_exported_total"); got != 250 {
		t.Errorf("exported %v", got)
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

func TestNoEndpointRecordsNothing(t *testing.T) {
	tr, err := New(Config{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, s := tr.Start(t.Context(), "op")
	if s.IsRecording() || !s.SpanContext().IsValid() || !s.SpanContext().Sampled {
		t.Errorf("span %+v recording %v: want IDs, a sampled decision, no recording", s.SpanContext(), s.IsRecording())
	}
	if SpanFromContext(ctx) != s {
		t.Error("span is not current in its context")
	}
	s.SetTag("k", "v")
	s.End()
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
	var nilSpan *Span
	nilSpan.SetTag("k", 1)
	nilSpan.SetError(errors.New("x"))
	nilSpan.End()
	if nilSpan.SpanContext().IsValid() || SpanFromContext(t.Context()) != nil {
		t.Error("nil span or empty context has a span context")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no service":        {Endpoint: "http://127.0.0.1:1"},
		"endpoint not URL":  {ServiceName: "s", Endpoint: "127.0.0.1:8080"},
		"endpoint not http": {ServiceName: "s", Endpoint: "ftp://x"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
