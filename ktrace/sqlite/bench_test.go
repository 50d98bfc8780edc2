package sqlite_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/sqlite"
)

// batch returns n spans in traces of 15, with the tags, events and
// resource attributes an instrumented HTTP service sends.
func batch(seq *uint64, n int, start time.Time) []ktrace.Span {
	out := make([]ktrace.Span, 0, n)
	var tid ktrace.TraceID
	for i := range n {
		if i%15 == 0 {
			*seq++
			binary.BigEndian.PutUint64(tid[:8], *seq*0x9E3779B97F4A7C15)
			binary.BigEndian.PutUint64(tid[8:], *seq)
		}
		sp := ktrace.Span{
			TraceID: tid, SpanID: ktrace.SpanID{0: 1, 7: byte(i%15 + 1)},
			Service: fmt.Sprintf("svc-%d", i%5), Name: fmt.Sprintf("GET /api/v1/op-%d", i%12),
			Kind: ktrace.KindServer, Start: start.Add(time.Duration(i) * time.Microsecond), Duration: 3 * time.Millisecond,
			Tags: map[string]string{
				"http.method": "GET", "http.route": "/api/v1/tickets/{id}", "http.status_code": "200",
				"net.peer.ip": "10.0.3.17", "user_agent.original": "Go-http-client/1.1", "ticket.id": "48213",
			},
			Annotations: []ktrace.Annotation{{Time: start, Value: "cache miss"}},
			Process:     map[string]string{"host.name": "node-3", "service.version": "1.8.2", "telemetry.sdk.name": "opentelemetry"},
		}
		if i%15 != 0 {
			sp.ParentSpanID = ktrace.SpanID{0: 1, 7: byte((i%15-1)/2 + 1)}
		}
		out = append(out, sp)
	}
	return out
}

// BenchmarkWriteSpans measures the store's share of the ingest goal
// (≥ 100k spans/s end to end): batches of 1000 new spans.
func BenchmarkWriteSpans(b *testing.B) {
	s, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "traces.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq uint64
	now := time.Now()
	const size = 1000
	b.ResetTimer()
	for b.Loop() {
		if err := s.WriteSpans(b.Context(), batch(&seq, size, now)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkTrace measures a lookup by trace ID among 100k stored spans,
// with a cancellable context as an HTTP handler passes.
func BenchmarkTrace(b *testing.B) {
	s, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "traces.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq uint64
	now := time.Now()
	var ids []ktrace.TraceID
	for range 100 {
		spans := batch(&seq, 1000, now)
		for i := 0; i < len(spans); i += 15 {
			ids = append(ids, spans[i].TraceID)
		}
		if err := s.WriteSpans(b.Context(), spans); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tr, err := s.Trace(ctx, ids[i%len(ids)])
		if err != nil || len(tr.Spans) < 10 {
			b.Fatalf("Trace = %d spans, %v", len(tr.Spans), err)
		}
		i += 7919
	}
}

// BenchmarkFindTraces measures searches over 100k spans written in the last
// minutes, newest 20 first.
func BenchmarkFindTraces(b *testing.B) {
	s, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "traces.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq uint64
	now := time.Now()
	for i := range 100 {
		if err := s.WriteSpans(b.Context(), batch(&seq, 1000, now.Add(time.Duration(i-100)*time.Second))); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []struct {
		name string
		q    ktrace.Query
	}{
		{"any", ktrace.Query{}},
		{"service", ktrace.Query{Service: "svc-3"}},
		{"operation", ktrace.Query{Service: "svc-3", Operation: "GET /api/v1/op-7"}},
		{"tag", ktrace.Query{Tags: map[string]string{"http.method": "GET"}}},
		{"min duration", ktrace.Query{MinDuration: time.Millisecond}},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := s.FindTraces(b.Context(), q.q)
				if err != nil || len(res) != 20 {
					b.Fatalf("FindTraces = %d results, %v", len(res), err)
				}
			}
		})
	}
}
