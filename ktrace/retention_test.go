package ktrace_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

func TestRetainerExpiresOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		store := inmem.New(inmem.Config{})
		defer store.Close()
		status := func(id ktrace.TraceID) ktrace.LookupStatus {
			tr, err := store.Trace(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status
		}
		write := func(id ktrace.TraceID, start time.Time) {
			if err := store.WriteSpans(ctx, []ktrace.Span{{TraceID: id, SpanID: ktrace.SpanID{7: 1}, Service: "s", Name: "o", Start: start}}); err != nil {
				t.Fatal(err)
			}
		}
		old, recent := ktrace.TraceID{15: 1}, ktrace.TraceID{15: 2}
		write(old, time.Now().Add(-2*time.Hour))
		write(recent, time.Now().Add(-30*time.Minute))

		r := ktrace.NewRetainer(ktrace.RetainerConfig{Store: store, TTL: time.Hour, Interval: 10 * time.Minute})
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()

		synctest.Wait() // the first sweep runs at once
		if status(old) != ktrace.Expired || status(recent) != ktrace.Found {
			t.Fatalf("after the first sweep: old %s, recent %s; want expired, found", status(old), status(recent))
		}
		time.Sleep(25 * time.Minute) // ticks at +10 and +20 min: recent was 50 min old
		synctest.Wait()
		if status(recent) != ktrace.Found {
			t.Fatalf("a 50-minute-old trace was expired with a 1 h TTL")
		}
		time.Sleep(20 * time.Minute) // ticks at +30 (60 min old) and +40 (70 min old)
		synctest.Wait()
		if status(recent) != ktrace.Expired {
			t.Fatalf("a 70-minute-old trace is %s, want expired", status(recent))
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	})
}

func TestRetainerWithoutStore(t *testing.T) {
	if err := ktrace.NewRetainer(ktrace.RetainerConfig{}).Run(t.Context()); err == nil {
		t.Fatal("Run without a store succeeded")
	}
}
