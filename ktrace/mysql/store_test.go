package mysql_test

import (
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/mysql"
	"github.com/kplane/kplane/ktrace/storetest"
)

func TestConformance(t *testing.T) {
	srv := mariadbtest.Start(t)
	storetest.Run(t, func(t *testing.T) ktrace.Store {
		s, err := mysql.Open(t.Context(), mysql.Config{DSN: srv.NewDatabase(t)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func partitionNames(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT PARTITION_NAME FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'spans' ORDER BY PARTITION_ORDINAL_POSITION`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestDailyPartitionsCreatedAheadAndDropped(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.NewDatabase(t)
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := start
	s, err := mysql.Open(t.Context(), mysql.Config{DSN: dsn, DaysAhead: 2, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := []string{"p_min", "d20260309", "d20260310", "d20260311", "d20260312"}
	if got := partitionNames(t, dsn); !slices.Equal(got, want) {
		t.Fatalf("partitions after Open = %v, want %v", got, want)
	}
	ctx := t.Context()
	yesterday := ktrace.TraceID{0: 1, 15: 1}
	today := ktrace.TraceID{0: 1, 15: 2}
	if err := s.WriteSpans(ctx, []ktrace.Span{
		{TraceID: yesterday, SpanID: ktrace.SpanID{7: 1}, Service: "s", Name: "o", Start: start.Add(-24 * time.Hour)},
		{TraceID: today, SpanID: ktrace.SpanID{7: 1}, Service: "s", Name: "o", Start: start},
	}); err != nil {
		t.Fatal(err)
	}
	// A day later, a retention of 30 h: 9 March ended before the cutoff
	// and its partition goes as a whole.
	clock = start.Add(24 * time.Hour)
	n, err := s.Expire(ctx, clock.Add(-30*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("Expire removed %d spans, want 1", n)
	}
	want = []string{"p_min", "d20260310", "d20260311", "d20260312", "d20260313"}
	if got := partitionNames(t, dsn); !slices.Equal(got, want) {
		t.Fatalf("partitions after Expire = %v, want %v", got, want)
	}
	for id, st := range map[ktrace.TraceID]ktrace.LookupStatus{yesterday: ktrace.Expired, today: ktrace.Found} {
		tr, err := s.Trace(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != st {
			t.Errorf("trace %s: %s, want %s", id, tr.Status, st)
		}
	}
}
