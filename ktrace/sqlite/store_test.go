package sqlite_test

import (
	"path/filepath"
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
