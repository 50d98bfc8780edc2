package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// NewStore returns a fresh, empty store; the suite closes it.
type NewStore func(t *testing.T) ktrace.Store

// Run runs the conformance suite, each case against its own store.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s ktrace.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Unknown", testUnknown},
		{"RetriedBatch", testRetriedBatch},
		{"AllOrNothing", testAllOrNothing},
		{"Expired", testExpired},
		{"ShortTraceIDs", testShortTraceIDs},
		{"FindTraces", testFindTraces},
		{"FindTracesDefaultRange", testFindTracesDefaultRange},
		{"InvalidQuery", testInvalidQuery},
		{"ServicesAndOperations", testServicesAndOperations},
		{"Dependencies", testDependencies},
		{"Concurrency", testConcurrency},
		{"Ownership", testOwnership},
		{"Cancellation", testCancellation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.fn(t, s)
		})
	}
}

// base is a recent hour, so that backends which partition by day or keep
// data near "now" hold every fixture.
func base() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour) }

func newTraceID() ktrace.TraceID {
	var id ktrace.TraceID
	for i := range id {
		id[i] = byte(rand.UintN(256))
	}
	id[0] |= 0x80 // never zero, never mistaken for a padded 64-bit ID
	return id
}

func sid(n uint64) ktrace.SpanID {
	var id ktrace.SpanID
	for i := 7; i >= 0; i-- {
		id[i] = byte(n)
		n >>= 8
	}
	return id
}

func span(tid ktrace.TraceID, id, parent uint64, service, name string, start time.Time, d time.Duration) ktrace.Span {
	s := ktrace.Span{TraceID: tid, SpanID: sid(id), Service: service, Name: name, Start: start, Duration: d, Kind: ktrace.KindServer}
	if parent != 0 {
		s.ParentSpanID = sid(parent)
	}
	return s
}

func write(t *testing.T, s ktrace.Store, spans ...ktrace.Span) {
	t.Helper()
	if err := s.WriteSpans(t.Context(), spans); err != nil {
		t.Fatalf("WriteSpans: %v", err)
	}
}

func lookup(t *testing.T, s ktrace.Store, id ktrace.TraceID) ktrace.Trace {
	t.Helper()
	tr, err := s.Trace(t.Context(), id)
	if err != nil {
		t.Fatalf("Trace(%s): %v", id, err)
	}
	if tr.ID != id {
		t.Fatalf("Trace(%s) answered for %s", id, tr.ID)
	}
	if tr.Status != ktrace.Found && len(tr.Spans) != 0 {
		t.Fatalf("Trace(%s) is %s with %d spans", id, tr.Status, len(tr.Spans))
	}
	return tr
}

func wantStatus(t *testing.T, s ktrace.Store, id ktrace.TraceID, want ktrace.LookupStatus, wantSpans int) ktrace.Trace {
	t.Helper()
	tr := lookup(t, s, id)
	if tr.Status != want || len(tr.Spans) != wantSpans {
		t.Fatalf("Trace(%s) = %s with %d spans, want %s with %d", id, tr.Status, len(tr.Spans), want, wantSpans)
	}
	return tr
}

// diffSpan describes how got differs from want, or returns "".
func diffSpan(got, want ktrace.Span) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.TraceID != want.TraceID {
		add("TraceID", got.TraceID, want.TraceID)
	}
	if got.SpanID != want.SpanID {
		add("SpanID", got.SpanID, want.SpanID)
	}
	if got.ParentSpanID != want.ParentSpanID {
		add("ParentSpanID", got.ParentSpanID, want.ParentSpanID)
	}
	if got.Service != want.Service || got.Name != want.Name || got.Kind != want.Kind {
		add("Service/Name/Kind", []any{got.Service, got.Name, got.Kind}, []any{want.Service, want.Name, want.Kind})
	}
	if !got.Start.Equal(want.Start) {
		add("Start", got.Start.Format(time.RFC3339Nano), want.Start.Format(time.RFC3339Nano))
	}
	if got.Duration != want.Duration {
		add("Duration", got.Duration, want.Duration)
	}
	if got.Status != want.Status || got.StatusMessage != want.StatusMessage {
		add("Status", []any{got.Status, got.StatusMessage}, []any{want.Status, want.StatusMessage})
	}
	if !maps.Equal(got.Tags, want.Tags) {
		add("Tags", got.Tags, want.Tags)
	}
	if !maps.Equal(got.Process, want.Process) {
		add("Process", got.Process, want.Process)
	}
	if len(got.Annotations) != len(want.Annotations) {
		add("Annotations", got.Annotations, want.Annotations)
	} else {
		for i := range got.Annotations {
			g, w := got.Annotations[i], want.Annotations[i]
			if !g.Time.Equal(w.Time) || g.Value != w.Value || !maps.Equal(g.Tags, w.Tags) {
				add(fmt.Sprintf("Annotations[%d]", i), g, w)
			}
		}
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func testRoundTrip(t *testing.T, s ktrace.Store) {
	b := base()
	tid := newTraceID()
	root := span(tid, 1, 0, "checkpoint", "POST /scan", b.Add(123456789*time.Nanosecond), 42*time.Millisecond+7)
	root.Tags = map[string]string{"http.method": "POST", "http.status_code": "200", "unicode": "äöü ✓", "empty": ""}
	root.Process = map[string]string{"host.name": "node-1", "service.version": "1.4.2"}
	root.Annotations = []ktrace.Annotation{
		{Time: root.Start.Add(time.Millisecond), Value: "sr"},
		{Time: root.Start.Add(2 * time.Millisecond), Value: "cache miss", Tags: map[string]string{"key": "ticket:42"}},
	}
	root.Kind = ktrace.KindServer
	client := span(tid, 2, 1, "checkpoint", "GET inventory", root.Start.Add(5*time.Millisecond), 30*time.Millisecond)
	client.Kind = ktrace.KindClient
	client.Annotations = []ktrace.Annotation{{Time: client.Start, Value: "cs"}, {Time: client.End(), Value: "cr"}}
	server := span(tid, 3, 2, "inventory", "GET /tickets/{id}", root.Start.Add(6*time.Millisecond), 28*time.Millisecond)
	server.Status, server.StatusMessage = ktrace.StatusError, "ticket already used"
	server.Process = map[string]string{"host.name": "node-2"}
	// Same start as server: the order among equal starts is not pinned.
	internal := span(tid, 4, 1, "checkpoint", "render", root.Start.Add(40*time.Millisecond), 1)
	internal.Kind = ktrace.KindInternal
	internal.Status = ktrace.StatusOK

	want := []ktrace.Span{root, client, server, internal}
	// Written out of order and in two batches: the store orders by start.
	write(t, s, internal, server)
	write(t, s, client, root)

	tr := wantStatus(t, s, tid, ktrace.Found, len(want))
	for i := range want {
		if d := diffSpan(tr.Spans[i], want[i]); d != "" {
			t.Errorf("span %d (%s): %s", i, want[i].Name, d)
		}
	}
}

func testUnknown(t *testing.T, s ktrace.Store) {
	write(t, s, span(newTraceID(), 1, 0, "a", "op", base(), time.Millisecond))
	wantStatus(t, s, newTraceID(), ktrace.Unknown, 0)
}

func testRetriedBatch(t *testing.T, s ktrace.Store) {
	b := base()
	tid := newTraceID()
	batch := []ktrace.Span{
		span(tid, 1, 0, "frontend", "GET /", b, 10*time.Millisecond),
		span(tid, 2, 1, "inventory", "list", b.Add(time.Millisecond), 5*time.Millisecond),
	}
	write(t, s, batch...)
	write(t, s, batch...) // the client did not see the acknowledgement and retried
	// A batch that repeats a span inside itself and adds a new one.
	third := span(tid, 3, 1, "inventory", "count", b.Add(2*time.Millisecond), time.Millisecond)
	write(t, s, batch[1], third, batch[1], third)

	wantStatus(t, s, tid, ktrace.Found, 3)
	res, err := s.FindTraces(t.Context(), ktrace.Query{Service: "frontend", Start: b.Add(-time.Minute), End: b.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].SpanCount != 3 {
		t.Fatalf("FindTraces = %+v, want one trace of 3 spans", res)
	}
	deps, err := s.Dependencies(t.Context(), b.Add(-time.Hour), b.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []ktrace.Dependency{{Parent: "frontend", Child: "inventory", CallCount: 2}}; !slices.Equal(sortDeps(deps), want) {
		t.Fatalf("Dependencies after retries = %+v, want %+v", deps, want)
	}
}

func testAllOrNothing(t *testing.T, s ktrace.Store) {
	b := base()
	good := span(newTraceID(), 1, 0, "a", "op", b, time.Millisecond)
	tests := []struct {
		name string
		bad  ktrace.Span
	}{
		{"zero trace ID", span(ktrace.TraceID{}, 2, 0, "a", "op", b, time.Millisecond)},
		{"zero span ID", span(good.TraceID, 0, 0, "a", "op", b, time.Millisecond)},
		{"zero start", span(good.TraceID, 3, 0, "a", "op", time.Time{}, time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.WriteSpans(t.Context(), []ktrace.Span{good, tt.bad})
			if !errors.Is(err, ktrace.ErrInvalid) {
				t.Fatalf("WriteSpans = %v, want ErrInvalid", err)
			}
			wantStatus(t, s, good.TraceID, ktrace.Unknown, 0)
		})
	}
	// An empty batch is not an error.
	if err := s.WriteSpans(t.Context(), nil); err != nil {
		t.Fatalf("WriteSpans(nil) = %v", err)
	}
}

func testExpired(t *testing.T, s ktrace.Store) {
	b := base()
	old, fresh, straddling := newTraceID(), newTraceID(), newTraceID()
	write(t, s,
		span(old, 1, 0, "legacy", "old-op", b.Add(-48*time.Hour), time.Second),
		span(old, 2, 1, "legacy", "old-child", b.Add(-48*time.Hour+time.Millisecond), time.Millisecond),
		span(old, 3, 1, "inventory", "old-call", b.Add(-48*time.Hour+2*time.Millisecond), time.Millisecond),
		span(fresh, 1, 0, "frontend", "GET /", b, time.Millisecond),
		span(fresh, 2, 1, "inventory", "list", b.Add(time.Millisecond), time.Millisecond),
		// A long-running trace whose root is older than the cutoff.
		span(straddling, 1, 0, "batch", "nightly", b.Add(-30*time.Hour), 30*time.Hour),
		span(straddling, 2, 1, "batch", "step", b, time.Millisecond),
	)
	n, err := s.Expire(t.Context(), b.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("Expire removed %d spans, want 4", n)
	}
	wantStatus(t, s, old, ktrace.Expired, 0)
	wantStatus(t, s, fresh, ktrace.Found, 2)
	tr := wantStatus(t, s, straddling, ktrace.Found, 1)
	if tr.Spans[0].Name != "step" {
		t.Fatalf("straddling trace kept %q, want the span after the cutoff", tr.Spans[0].Name)
	}
	wantStatus(t, s, newTraceID(), ktrace.Unknown, 0)

	res, err := s.FindTraces(t.Context(), ktrace.Query{Service: "legacy", Start: b.Add(-72 * time.Hour), End: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 0 {
		t.Fatalf("FindTraces found expired traces: %+v", res)
	}
	svcs, err := s.Services(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(svcs, "legacy") {
		t.Fatalf("Services = %v still lists a service whose spans all expired", svcs)
	}

	// Expiring again removes nothing and forgets nothing.
	if n, err := s.Expire(t.Context(), b.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second Expire = %d, %v; want 0, nil", n, err)
	}
	wantStatus(t, s, old, ktrace.Expired, 0)
}

func testShortTraceIDs(t *testing.T, s ktrace.Store) {
	short, err := ktrace.ParseTraceID("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	padded, err := ktrace.ParseTraceID("000000000000000000f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	if short != padded {
		t.Fatalf("64-bit ID %s != padded %s", short, padded)
	}
	// A 128-bit ID with the same low 64 bits is another trace.
	long, err := ktrace.ParseTraceID("4bf92f3577b34da600f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, span(short, 1, 0, "zipkin-app", "op", base(), time.Millisecond))
	tr := wantStatus(t, s, padded, ktrace.Found, 1)
	if tr.Spans[0].TraceID != short {
		t.Fatalf("stored trace ID %s, want %s", tr.Spans[0].TraceID, short)
	}
	wantStatus(t, s, long, ktrace.Unknown, 0)
}

type searchFixture struct {
	a, b, c, d ktrace.TraceID
	start      time.Time
}

func writeSearchFixture(t *testing.T, s ktrace.Store) searchFixture {
	t0 := base()
	f := searchFixture{a: newTraceID(), b: newTraceID(), c: newTraceID(), d: newTraceID(), start: t0}
	aRoot := span(f.a, 1, 0, "frontend", "GET /checkout", t0.Add(time.Minute), 300*time.Millisecond)
	aRoot.Tags = map[string]string{"http.method": "GET"}
	aChild := span(f.a, 2, 1, "inventory", "reserve", t0.Add(time.Minute+time.Millisecond), 100*time.Millisecond)
	aChild.Tags = map[string]string{"sku": "42"}
	aChild.Status = ktrace.StatusError
	bRoot := span(f.b, 1, 0, "frontend", "GET /home", t0.Add(2*time.Minute), 20*time.Millisecond)
	bRoot.Tags = map[string]string{"http.method": "GET"}
	cRoot := span(f.c, 1, 0, "checkpoint", "POST /scan", t0.Add(3*time.Minute), 50*time.Millisecond)
	cChild := span(f.c, 2, 1, "inventory", "validate", t0.Add(3*time.Minute+10*time.Millisecond), 30*time.Millisecond)
	cChild.Tags = map[string]string{"sku": "7"}
	dRoot := span(f.d, 1, 0, "frontend", "GET /checkout", t0.Add(-3*time.Hour), 500*time.Millisecond)
	write(t, s, aChild, bRoot, cRoot)
	write(t, s, cChild, aRoot, dRoot)
	return f
}

func testFindTraces(t *testing.T, s ktrace.Store) {
	f := writeSearchFixture(t, s)
	from, to := f.start, f.start.Add(10*time.Minute)
	tests := []struct {
		name string
		q    ktrace.Query
		want []ktrace.TraceID
	}{
		{"service", ktrace.Query{Service: "frontend"}, []ktrace.TraceID{f.b, f.a}},
		{"operation", ktrace.Query{Service: "frontend", Operation: "GET /checkout"}, []ktrace.TraceID{f.a}},
		{"child service", ktrace.Query{Service: "inventory"}, []ktrace.TraceID{f.c, f.a}},
		{"min duration", ktrace.Query{MinDuration: 200 * time.Millisecond}, []ktrace.TraceID{f.a}},
		{"max duration", ktrace.Query{MaxDuration: 25 * time.Millisecond}, []ktrace.TraceID{f.b}},
		{"duration window", ktrace.Query{MinDuration: 40 * time.Millisecond, MaxDuration: 60 * time.Millisecond}, []ktrace.TraceID{f.c}},
		{"tag", ktrace.Query{Tags: map[string]string{"sku": "42"}}, []ktrace.TraceID{f.a}},
		{"tag and service", ktrace.Query{Service: "inventory", Tags: map[string]string{"sku": "7"}}, []ktrace.TraceID{f.c}},
		{"tags on different spans", ktrace.Query{Tags: map[string]string{"sku": "42", "http.method": "GET"}}, nil},
		{"tag value differs", ktrace.Query{Tags: map[string]string{"sku": "43"}}, nil},
		{"all", ktrace.Query{}, []ktrace.TraceID{f.c, f.b, f.a}},
		{"limit", ktrace.Query{Limit: 1}, []ktrace.TraceID{f.c}},
		{"unknown service", ktrace.Query{Service: "nobody"}, nil},
		{"wide range", ktrace.Query{Service: "frontend", Operation: "GET /checkout", Start: f.start.Add(-4 * time.Hour)}, []ktrace.TraceID{f.a, f.d}},
		{"range excludes", ktrace.Query{Service: "checkpoint", Start: f.start.Add(4 * time.Minute)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			if q.Start.IsZero() {
				q.Start = from
			}
			q.End = to
			res, err := s.FindTraces(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			var got []ktrace.TraceID
			for _, r := range res {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("FindTraces(%+v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}

	res, err := s.FindTraces(t.Context(), ktrace.Query{Service: "frontend", Operation: "GET /checkout", Start: from, End: to})
	if err != nil || len(res) != 1 {
		t.Fatalf("FindTraces = %v, %v", res, err)
	}
	want := ktrace.TraceSummary{
		ID: f.a, RootService: "frontend", RootName: "GET /checkout",
		Start: f.start.Add(time.Minute), Duration: 300 * time.Millisecond,
		SpanCount: 2, ErrorCount: 1, Services: []string{"frontend", "inventory"},
	}
	got := res[0]
	if got.ID != want.ID || got.RootService != want.RootService || got.RootName != want.RootName ||
		!got.Start.Equal(want.Start) || got.Duration != want.Duration || got.SpanCount != want.SpanCount ||
		got.ErrorCount != want.ErrorCount || !slices.Equal(got.Services, want.Services) {
		t.Fatalf("summary = %+v, want %+v", got, want)
	}
}

func testFindTracesDefaultRange(t *testing.T, s ktrace.Store) {
	now := time.Now().UTC()
	recent, old := newTraceID(), newTraceID()
	write(t, s,
		span(recent, 1, 0, "svc", "op", now.Add(-time.Minute), time.Millisecond),
		span(old, 1, 0, "svc", "op", now.Add(-2*time.Hour), time.Millisecond))
	res, err := s.FindTraces(t.Context(), ktrace.Query{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].ID != recent {
		t.Fatalf("FindTraces with no range = %+v, want only the trace of the last hour", res)
	}
}

func testInvalidQuery(t *testing.T, s ktrace.Store) {
	b := base()
	tests := []struct {
		name string
		q    ktrace.Query
	}{
		{"operation without service", ktrace.Query{Operation: "op"}},
		{"negative limit", ktrace.Query{Limit: -1}},
		{"min above max", ktrace.Query{MinDuration: time.Second, MaxDuration: time.Millisecond}},
		{"start after end", ktrace.Query{Start: b, End: b.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.FindTraces(t.Context(), tt.q); !errors.Is(err, ktrace.ErrInvalid) {
				t.Fatalf("FindTraces(%+v) = %v, want ErrInvalid", tt.q, err)
			}
		})
	}
}

func testServicesAndOperations(t *testing.T, s ktrace.Store) {
	svcs, err := s.Services(t.Context())
	if err != nil || len(svcs) != 0 {
		t.Fatalf("Services of an empty store = %v, %v", svcs, err)
	}
	writeSearchFixture(t, s)
	svcs, err = s.Services(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"checkpoint", "frontend", "inventory"}; !slices.Equal(svcs, want) {
		t.Fatalf("Services = %v, want %v", svcs, want)
	}
	ops, err := s.Operations(t.Context(), "frontend")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"GET /checkout", "GET /home"}; !slices.Equal(ops, want) {
		t.Fatalf("Operations(frontend) = %v, want %v", ops, want)
	}
	ops, err = s.Operations(t.Context(), "nobody")
	if err != nil || len(ops) != 0 {
		t.Fatalf("Operations(nobody) = %v, %v; want none", ops, err)
	}
}

func sortDeps(deps []ktrace.Dependency) []ktrace.Dependency {
	out := slices.Clone(deps)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Parent != out[j].Parent {
			return out[i].Parent < out[j].Parent
		}
		return out[i].Child < out[j].Child
	})
	return out
}

func testDependencies(t *testing.T, s ktrace.Store) {
	b := base()
	t1, t2, t3, t4 := newTraceID(), newTraceID(), newTraceID(), newTraceID()

	// The child arrives before its parent, in an earlier batch.
	write(t, s, span(t1, 2, 1, "inventory", "reserve", b.Add(time.Millisecond), time.Millisecond))
	write(t, s, span(t1, 1, 0, "checkpoint", "POST /scan", b, 5*time.Millisecond))

	// Parent and failed child in one batch, retried; a same-service child
	// is not an edge.
	failed := span(t2, 2, 1, "inventory", "reserve", b.Add(time.Millisecond), time.Millisecond)
	failed.Status = ktrace.StatusError
	batch := []ktrace.Span{
		span(t2, 1, 0, "frontend", "GET /", b, 5*time.Millisecond),
		failed,
		span(t2, 3, 1, "frontend", "render", b.Add(2*time.Millisecond), time.Millisecond),
	}
	write(t, s, batch...)
	write(t, s, batch...)

	// A middle span arrives last and closes two edges at once.
	write(t, s, span(t3, 1, 0, "frontend", "GET /", b, 5*time.Millisecond),
		span(t3, 3, 2, "inventory", "reserve", b.Add(2*time.Millisecond), time.Millisecond))
	write(t, s, span(t3, 2, 1, "checkpoint", "POST /scan", b.Add(time.Millisecond), 3*time.Millisecond))

	// Five hours earlier: outside a narrow window.
	old := b.Add(-5 * time.Hour)
	write(t, s, span(t4, 1, 0, "checkpoint", "POST /scan", old, 5*time.Millisecond),
		span(t4, 2, 1, "inventory", "reserve", old.Add(time.Millisecond), time.Millisecond))

	deps, err := s.Dependencies(t.Context(), b, b.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []ktrace.Dependency{
		{Parent: "checkpoint", Child: "inventory", CallCount: 2},
		{Parent: "frontend", Child: "checkpoint", CallCount: 1},
		{Parent: "frontend", Child: "inventory", CallCount: 1, ErrorCount: 1},
	}
	if got := sortDeps(deps); !slices.Equal(got, want) {
		t.Fatalf("Dependencies(last hour) = %+v, want %+v", got, want)
	}
	deps, err = s.Dependencies(t.Context(), b.Add(-6*time.Hour), b.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want[0].CallCount = 3
	if got := sortDeps(deps); !slices.Equal(got, want) {
		t.Fatalf("Dependencies(6 hours) = %+v, want %+v", got, want)
	}
	deps, err = s.Dependencies(t.Context(), b.Add(2*time.Hour), b.Add(3*time.Hour))
	if err != nil || len(deps) != 0 {
		t.Fatalf("Dependencies(empty window) = %+v, %v", deps, err)
	}
}

func testConcurrency(t *testing.T, s ktrace.Store) {
	const writers, tracesPerWriter = 4, 20
	b := base()
	ctx := t.Context()
	ids := make([][]ktrace.TraceID, writers)
	for w := range ids {
		for range tracesPerWriter {
			ids[w] = append(ids[w], newTraceID())
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*writers)
	for w := range writers {
		// Root and child of each trace are written by different goroutines
		// at the same time: the edge must be counted exactly once.
		for half := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, tid := range ids[w] {
					start := b.Add(time.Duration(w*tracesPerWriter+i) * time.Millisecond)
					sp := span(tid, 1, 0, "frontend", "GET /", start, 3*time.Millisecond)
					if half == 1 {
						sp = span(tid, 2, 1, "inventory", "list", start.Add(time.Millisecond), time.Millisecond)
					}
					if err := s.WriteSpans(ctx, []ktrace.Span{sp}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tid := range ids[(w+1)%writers] {
				if _, err := s.Trace(ctx, tid); err != nil {
					errs <- err
					return
				}
				if _, err := s.FindTraces(ctx, ktrace.Query{Service: "frontend", Start: b, End: b.Add(time.Minute)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, w := range ids {
		for _, tid := range w {
			wantStatus(t, s, tid, ktrace.Found, 2)
		}
	}
	deps, err := s.Dependencies(ctx, b, b.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []ktrace.Dependency{{Parent: "frontend", Child: "inventory", CallCount: writers * tracesPerWriter}}
	if !slices.Equal(deps, want) {
		t.Fatalf("Dependencies after concurrent writes = %+v, want %+v", deps, want)
	}
	res, err := s.FindTraces(ctx, ktrace.Query{Service: "frontend", Start: b, End: b.Add(time.Minute), Limit: 1000})
	if err != nil || len(res) != writers*tracesPerWriter {
		t.Fatalf("FindTraces = %d traces, %v; want %d", len(res), err, writers*tracesPerWriter)
	}
}

func testOwnership(t *testing.T, s ktrace.Store) {
	b := base()
	tid := newTraceID()
	in := span(tid, 1, 0, "svc", "op", b, time.Millisecond)
	in.Tags = map[string]string{"k": "v"}
	in.Process = map[string]string{"host": "h"}
	in.Annotations = []ktrace.Annotation{{Time: b, Value: "a", Tags: map[string]string{"x": "y"}}}
	want := in
	want.Tags = maps.Clone(in.Tags)
	want.Process = maps.Clone(in.Process)
	want.Annotations = []ktrace.Annotation{{Time: b, Value: "a", Tags: map[string]string{"x": "y"}}}
	batch := []ktrace.Span{in}
	write(t, s, batch...)

	// The caller reuses its batch and maps.
	in.Tags["k"] = "changed"
	in.Process["host"] = "changed"
	in.Annotations[0].Tags["x"] = "changed"
	batch[0].Name = "changed"

	tr := wantStatus(t, s, tid, ktrace.Found, 1)
	if d := diffSpan(tr.Spans[0], want); d != "" {
		t.Fatalf("store kept a reference to the written span: %s", d)
	}
	got := tr.Spans[0]
	got.Tags["k"] = "mutated"
	got.Process["host"] = "mutated"
	got.Annotations[0].Tags["x"] = "mutated"
	got.Annotations[0].Value = "mutated"
	tr.Spans[0].Name = "mutated"

	res, err := s.FindTraces(t.Context(), ktrace.Query{Service: "svc", Start: b, End: b.Add(time.Minute)})
	if err != nil || len(res) != 1 {
		t.Fatalf("FindTraces = %v, %v", res, err)
	}
	res[0].Services[0] = "mutated"

	again := wantStatus(t, s, tid, ktrace.Found, 1)
	if d := diffSpan(again.Spans[0], want); d != "" {
		t.Fatalf("mutating a returned span changed the store: %s", d)
	}
	res, err = s.FindTraces(t.Context(), ktrace.Query{Service: "svc", Start: b, End: b.Add(time.Minute)})
	if err != nil || len(res) != 1 || !slices.Equal(res[0].Services, []string{"svc"}) {
		t.Fatalf("mutating a returned summary changed the store: %+v, %v", res, err)
	}
}

func testCancellation(t *testing.T, s ktrace.Store) {
	b := base()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tid := newTraceID()
	calls := []struct {
		name string
		call func() error
	}{
		{"WriteSpans", func() error {
			return s.WriteSpans(ctx, []ktrace.Span{span(tid, 1, 0, "svc", "op", b, time.Millisecond)})
		}},
		{"Trace", func() error { _, err := s.Trace(ctx, tid); return err }},
		{"FindTraces", func() error { _, err := s.FindTraces(ctx, ktrace.Query{Service: "svc"}); return err }},
		{"Services", func() error { _, err := s.Services(ctx); return err }},
		{"Operations", func() error { _, err := s.Operations(ctx, "svc"); return err }},
		{"Dependencies", func() error { _, err := s.Dependencies(ctx, b, b.Add(time.Hour)); return err }},
		{"Expire", func() error { _, err := s.Expire(ctx, b); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", c.name, err)
		}
	}
	wantStatus(t, s, tid, ktrace.Unknown, 0)
}
