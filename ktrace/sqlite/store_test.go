package sqlite_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/sqlite"
	"github.com/kplane/kplane/ktrace/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ktrace.Store {
		return open(t, filepath.Join(t.TempDir(), "traces.db"))
	})
}

func TestReopenKeepsSpansAndExpiredIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traces.db")
	ctx := t.Context()
	s := open(t, path)
	now := time.Now().UTC()
	kept, gone := ktrace.TraceID{0: 1, 15: 1}, ktrace.TraceID{0: 1, 15: 2}
	if err := s.WriteSpans(ctx, []ktrace.Span{
		{TraceID: kept, SpanID: ktrace.SpanID{7: 1}, Service: "svc", Name: "op", Start: now, Tags: map[string]string{"k": "v"}},
		{TraceID: gone, SpanID: ktrace.SpanID{7: 1}, Service: "svc", Name: "op", Start: now.Add(-48 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	for id, want := range map[ktrace.TraceID]ktrace.LookupStatus{kept: ktrace.Found, gone: ktrace.Expired} {
		tr, err := s.Trace(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != want {
			t.Errorf("after reopening, trace %s is %s, want %s", id, tr.Status, want)
		}
	}
}

func TestExpiredIDsForgottenAfterRememberExpired(t *testing.T) {
	now := time.Now().UTC()
	clock := now
	s, err := sqlite.Open(t.Context(), sqlite.Config{
		Path:            filepath.Join(t.TempDir(), "traces.db"),
		RememberExpired: 24 * time.Hour,
		Now:             func() time.Time { return clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	id := ktrace.TraceID{0: 1, 15: 3}
	if err := s.WriteSpans(ctx, []ktrace.Span{{TraceID: id, SpanID: ktrace.SpanID{7: 1}, Service: "s", Name: "o", Start: now.Add(-48 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	status := func() ktrace.LookupStatus {
		tr, err := s.Trace(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status
	}
	if _, err := s.Expire(ctx, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(23 * time.Hour)
	if _, err := s.Expire(ctx, clock.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != ktrace.Expired {
		t.Fatalf("23 h after expiry: %s, want expired", st)
	}
	clock = now.Add(25 * time.Hour)
	if _, err := s.Expire(ctx, clock.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != ktrace.Unknown {
		t.Fatalf("25 h after expiry: %s, want unknown (forgotten)", st)
	}
}

func sp(tid ktrace.TraceID, id byte, service, name string, start time.Time) ktrace.Span {
	return ktrace.Span{TraceID: tid, SpanID: ktrace.SpanID{7: id}, Service: service, Name: name, Start: start, Duration: time.Millisecond}
}

func find(t *testing.T, s *sqlite.Store, q ktrace.Query) []ktrace.TraceID {
	t.Helper()
	res, err := s.FindTraces(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ktrace.TraceID
	for _, r := range res {
		ids = append(ids, r.ID)
	}
	return ids
}

// A trace written over many batches is stored in as many chunks; a lookup
// joins them and a retried span is still stored once.
func TestTraceAcrossBatches(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "traces.db"))
	defer s.Close()
	tid := ktrace.TraceID{0: 1, 15: 1}
	at := time.Now().UTC()
	for i := range 40 {
		batch := []ktrace.Span{sp(tid, byte(i+1), "svc", "op", at.Add(time.Duration(i)*time.Millisecond))}
		if i > 0 {
			batch = append(batch, sp(tid, byte(i), "svc", "op", at.Add(time.Duration(i-1)*time.Millisecond)))
		}
		if err := s.WriteSpans(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := s.Trace(t.Context(), tid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Spans) != 40 {
		t.Fatalf("%d spans, want 40", len(tr.Spans))
	}
	for i, got := range tr.Spans {
		if got.SpanID != (ktrace.SpanID{7: byte(i + 1)}) {
			t.Fatalf("span %d is %s", i, got.SpanID)
		}
	}
}

// Search rows are split at the hour, so a chunk whose spans are hours
// apart is found from either end and by neither's hour alone.
func TestFindTracesAcrossHours(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "traces.db"))
	defer s.Close()
	hour := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	tid := ktrace.TraceID{0: 1, 15: 2}
	if err := s.WriteSpans(t.Context(), []ktrace.Span{
		sp(tid, 1, "batch", "nightly", hour.Add(10*time.Minute)),
		sp(tid, 2, "batch", "step", hour.Add(3*time.Hour+50*time.Minute)),
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		q          ktrace.Query
		start, end time.Duration
		found      bool
	}{
		{"early span", ktrace.Query{Service: "batch", Operation: "nightly"}, 0, time.Hour, true},
		{"late span", ktrace.Query{Service: "batch", Operation: "step"}, 3 * time.Hour, 4 * time.Hour, true},
		{"late op in early hour", ktrace.Query{Service: "batch", Operation: "step"}, 0, time.Hour, false},
		{"between", ktrace.Query{Service: "batch"}, time.Hour, 3 * time.Hour, false},
		{"any service, late", ktrace.Query{}, 3*time.Hour + 49*time.Minute, 3*time.Hour + 51*time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Start, q.End = hour.Add(tt.start), hour.Add(tt.end)
			if got := find(t, s, q); (len(got) == 1) != tt.found {
				t.Fatalf("FindTraces = %v, want found %v", got, tt.found)
			}
		})
	}
}

// With more matches than Limit, search returns the traces whose latest
// matching span started last, whatever order they were written in.
func TestFindTracesLimitKeepsNewest(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "traces.db"))
	defer s.Close()
	at := time.Now().UTC().Add(-30 * time.Minute)
	var batch []ktrace.Span
	for i := range 60 {
		// Written in a scrambled order, in batches of 7.
		n := (i * 37) % 60
		batch = append(batch, sp(ktrace.TraceID{0: 1, 15: byte(n + 1)}, 1, "svc", fmt.Sprint("op", n%2), at.Add(time.Duration(n)*time.Second)))
		if len(batch) == 7 || i == 59 {
			if err := s.WriteSpans(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	got := find(t, s, ktrace.Query{Service: "svc", Operation: "op1", Limit: 3})
	want := []ktrace.TraceID{{0: 1, 15: 60}, {0: 1, 15: 58}, {0: 1, 15: 56}}
	if !slices.Equal(got, want) {
		t.Fatalf("FindTraces = %v, want %v", got, want)
	}
	if got := find(t, s, ktrace.Query{Limit: 100}); len(got) != 60 {
		t.Fatalf("FindTraces without filter found %d traces, want 60", len(got))
	}
}

// Expire rewrites a chunk that straddles the cutoff: the spans after it
// stay findable by ID and by search, the ones before it are gone.
func TestExpireRewritesStraddlingChunk(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "traces.db"))
	defer s.Close()
	now := time.Now().UTC()
	tid := ktrace.TraceID{0: 1, 15: 3}
	if err := s.WriteSpans(t.Context(), []ktrace.Span{
		sp(tid, 1, "old", "root", now.Add(-30*time.Hour)),
		sp(tid, 2, "new", "child", now.Add(-time.Minute)),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Expire(t.Context(), now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	tr, err := s.Trace(t.Context(), tid)
	if err != nil || tr.Status != ktrace.Found || len(tr.Spans) != 1 || tr.Spans[0].Name != "child" {
		t.Fatalf("Trace = %+v, %v; want the child only", tr, err)
	}
	if got := find(t, s, ktrace.Query{Service: "new", Operation: "child"}); len(got) != 1 {
		t.Fatalf("search for the kept span = %v", got)
	}
	if got := find(t, s, ktrace.Query{Service: "old", Start: now.Add(-31 * time.Hour)}); len(got) != 0 {
		t.Fatalf("search for the expired span = %v", got)
	}
	// Writing the expired span again stores it again: it is new to the
	// store.
	if err := s.WriteSpans(t.Context(), []ktrace.Span{sp(tid, 1, "old", "root", now.Add(-30*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if tr, _ := s.Trace(t.Context(), tid); len(tr.Spans) != 2 {
		t.Fatalf("after rewriting the expired span: %d spans, want 2", len(tr.Spans))
	}
}
