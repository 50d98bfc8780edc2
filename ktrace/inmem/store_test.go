package inmem_test

import (
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
	"github.com/kplane/kplane/ktrace/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ktrace.Store { return inmem.New(inmem.Config{}) })
}

func traceOf(n byte, spans int, start time.Time) []ktrace.Span {
	var out []ktrace.Span
	for i := range spans {
		out = append(out, ktrace.Span{
			TraceID: ktrace.TraceID{15: n},
			SpanID:  ktrace.SpanID{7: byte(i + 1)},
			Service: "svc", Name: "op", Start: start,
		})
	}
	return out
}

func TestEvictsOldestTracesAsExpired(t *testing.T) {
	s := inmem.New(inmem.Config{MaxSpans: 10, MaxExpired: 2})
	defer s.Close()
	ctx := t.Context()
	now := time.Now()
	for n := byte(1); n <= 5; n++ {
		if err := s.WriteSpans(ctx, traceOf(n, 4, now)); err != nil {
			t.Fatal(err)
		}
	}
	// 5 traces of 4 spans in room for 10: traces 4 and 5 stay, 1 to 3 were
	// evicted and only the last two evicted are remembered.
	want := map[byte]ktrace.LookupStatus{1: ktrace.Unknown, 2: ktrace.Expired, 3: ktrace.Expired, 4: ktrace.Found, 5: ktrace.Found}
	for n, st := range want {
		tr, err := s.Trace(ctx, ktrace.TraceID{15: n})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != st {
			t.Errorf("trace %d: %s, want %s", n, tr.Status, st)
		}
	}
}

func TestClosed(t *testing.T) {
	s := inmem.New(inmem.Config{})
	s.Close()
	if _, err := s.Trace(t.Context(), ktrace.TraceID{15: 1}); err == nil {
		t.Fatal("Trace on a closed store succeeded")
	}
}
