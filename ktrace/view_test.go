package ktrace

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sp is a span named name with span ID derived from name, parent from
// parent ("" for a root), starting at ms milliseconds after t0.
func sp(name, parent string, kind Kind, ms, durMS int) Span {
	s := Span{
		TraceID:  TraceID{1},
		SpanID:   testSpanID(name),
		Service:  strings.SplitN(name, ".", 2)[0],
		Name:     name,
		Kind:     kind,
		Start:    t0.Add(time.Duration(ms) * time.Millisecond),
		Duration: time.Duration(durMS) * time.Millisecond,
	}
	if parent != "" {
		s.ParentSpanID = testSpanID(parent)
	}
	return s
}

func testSpanID(name string) SpanID {
	var id SpanID
	copy(id[:], fmt.Sprintf("%-8s", name))
	if len(name) > 8 {
		// Names are kept short in these tables; fail loudly if not.
		panic("span name too long for a test span ID: " + name)
	}
	return id
}

// layout renders a view as "name@depth" in depth-first order, with marks:
// ~ orphan, * critical, and the skew in ms.
func layout(v View) string {
	var b []string
	for _, s := range v.Spans {
		e := fmt.Sprintf("%s@%d", s.Name, s.Depth)
		if s.Orphan {
			e += "~"
		}
		if s.Critical {
			e += "*"
		}
		if s.Skew != 0 {
			e += fmt.Sprintf("%+dms", s.Skew.Milliseconds())
		}
		b = append(b, e)
	}
	return strings.Join(b, " ")
}

func TestBuildViewTree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []Span
		want  string
	}{
		{
			name: "children in start order below their parent, whatever the input order",
			spans: []Span{
				sp("c", "a", KindInternal, 50, 40),
				sp("d", "b", KindInternal, 15, 5),
				sp("a", "", KindServer, 0, 100),
				sp("b", "a", KindInternal, 10, 30),
			},
			want: "a@0* b@1* d@2* c@1*",
		},
		{
			name: "a span whose parent is missing is an orphan at the root level",
			spans: []Span{
				sp("a", "", KindServer, 0, 100),
				sp("x", "gone", KindServer, 20, 10),
				sp("y", "x", KindInternal, 22, 5),
			},
			want: "a@0* x@0~ y@1",
		},
		{
			name: "a parent cycle is cut, not dropped",
			spans: []Span{
				sp("p", "q", KindInternal, 0, 10),
				sp("q", "p", KindInternal, 5, 10),
			},
			want: "p@0~* q@1*",
		},
		{
			name: "a span naming itself as parent is an orphan",
			spans: []Span{
				sp("s", "s", KindInternal, 0, 10),
			},
			want: "s@0~*",
		},
		{
			name: "several roots sort by start",
			spans: []Span{
				sp("late", "", KindInternal, 50, 10),
				sp("early", "", KindInternal, 0, 10),
			},
			want: "early@0* late@0*",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := BuildView(tc.spans)
			if got := layout(v); got != tc.want {
				t.Fatalf("layout\n got %s\nwant %s", got, tc.want)
			}
			if len(v.Spans) != len(tc.spans) {
				t.Fatalf("%d spans in the view, %d given", len(v.Spans), len(tc.spans))
			}
		})
	}
}

func TestBuildViewDescendantsAndSummary(t *testing.T) {
	spans := []Span{
		sp("api.root", "", KindServer, 0, 100),
		sp("api.call", "api.root", KindClient, 10, 50),
		sp("db.query", "api.call", KindServer, 20, 30),
		sp("db.scan", "db.query", KindInternal, 25, 10),
		sp("api.log", "api.root", KindInternal, 70, 40),
	}
	spans[3].Status = StatusError
	v := BuildView(spans)
	var got []string
	for _, s := range v.Spans {
		got = append(got, fmt.Sprintf("%s:%d/%d/p%d", s.Name, s.Children, s.Descendants, s.Parent))
	}
	want := []string{"api.root:2/4/p-1", "api.call:1/2/p0", "db.query:1/1/p1", "db.scan:0/0/p2", "api.log:0/0/p0"}
	if !slices.Equal(got, want) {
		t.Errorf("children/descendants/parent\n got %v\nwant %v", got, want)
	}
	if !v.Start.Equal(t0) || v.Duration != 110*time.Millisecond {
		t.Errorf("trace window %v + %v, want %v + 110ms (a child outliving the root counts)", v.Start, v.Duration, t0)
	}
	wantSvc := []ServiceCount{{"api", 3}, {"db", 2}}
	if !slices.Equal(v.Services, wantSvc) {
		t.Errorf("services %v, want %v", v.Services, wantSvc)
	}
	if v.ErrorCount != 1 || v.MaxDepth != 3 || v.Orphans != 0 || v.Adjusted != 0 {
		t.Errorf("errors %d, depth %d, orphans %d, adjusted %d; want 1, 3, 0, 0", v.ErrorCount, v.MaxDepth, v.Orphans, v.Adjusted)
	}
	if off := v.Offset(2); off != 20*time.Millisecond {
		t.Errorf("offset of db.query %v, want 20ms", off)
	}
}

func TestBuildViewClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []Span
		want  string
		// wantStart is the adjusted start (ms after t0) of each span, in
		// depth-first order.
		wantStart []int
	}{
		{
			name: "a server starting before its client is centred in it, with its subtree",
			spans: []Span{
				sp("cli", "", KindClient, 100, 100),
				sp("srv", "cli", KindServer, 40, 60),
				sp("work", "srv", KindInternal, 45, 10),
			},
			want:      "cli@0* srv@1*+80ms work@2*",
			wantStart: []int{100, 120, 125},
		},
		{
			name: "a server ending after its client is moved back",
			spans: []Span{
				sp("cli", "", KindClient, 0, 50),
				sp("srv", "cli", KindServer, 40, 30),
			},
			want:      "cli@0* srv@1*-30ms",
			wantStart: []int{0, 10},
		},
		{
			name: "a server inside its client is left alone",
			spans: []Span{
				sp("cli", "", KindClient, 0, 50),
				sp("srv", "cli", KindServer, 5, 30),
			},
			want:      "cli@0* srv@1*",
			wantStart: []int{0, 5},
		},
		{
			name: "a server longer than its client is aligned with its start",
			spans: []Span{
				sp("cli", "", KindClient, 100, 20),
				sp("srv", "cli", KindServer, 90, 50),
			},
			want:      "cli@0* srv@1*+10ms",
			wantStart: []int{100, 100},
		},
		{
			name: "only server children of client spans are adjusted",
			spans: []Span{
				sp("root", "", KindServer, 100, 20),
				sp("inner", "root", KindInternal, 90, 5),
			},
			want:      "root@0* inner@1*",
			wantStart: []int{100, 90},
		},
		{
			name: "skews add up down the tree",
			spans: []Span{
				sp("c1", "", KindClient, 0, 100),
				sp("s1", "c1", KindServer, -50, 80),
				sp("c2", "s1", KindClient, -40, 40),
				sp("s2", "c2", KindServer, 500, 20),
			},
			want:      "c1@0* s1@1*+60ms c2@2* s2@3*-530ms",
			wantStart: []int{0, 10, 20, 30},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.spans)
			v := BuildView(tc.spans)
			if got := layout(v); got != tc.want {
				t.Fatalf("layout\n got %s\nwant %s", got, tc.want)
			}
			for k, ms := range tc.wantStart {
				if want := t0.Add(time.Duration(ms) * time.Millisecond); !v.Spans[k].Start.Equal(want) {
					t.Errorf("%s starts at %v, want +%dms", v.Spans[k].Name, v.Spans[k].Start.Sub(t0), ms)
				}
			}
			for i := range in {
				if !in[i].Start.Equal(tc.spans[i].Start) {
					t.Errorf("BuildView modified its input span %s", in[i].Name)
				}
			}
		})
	}
}

func TestBuildViewShiftsAnnotationsNotTheInput(t *testing.T) {
	srv := sp("srv", "cli", KindServer, 40, 60)
	srv.Annotations = []Annotation{{Time: srv.Start, Value: "sr"}, {Time: srv.End(), Value: "ss"}}
	spans := []Span{sp("cli", "", KindClient, 100, 100), srv}
	v := BuildView(spans)
	got := v.Spans[1].Annotations
	if !got[0].Time.Equal(t0.Add(120*time.Millisecond)) || !got[1].Time.Equal(t0.Add(180*time.Millisecond)) {
		t.Errorf("annotations after adjustment at %v and %v, want +120ms and +180ms", got[0].Time.Sub(t0), got[1].Time.Sub(t0))
	}
	if !spans[1].Annotations[0].Time.Equal(t0.Add(40 * time.Millisecond)) {
		t.Errorf("the input's annotations were modified")
	}
}

func TestBuildViewCriticalPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []Span
		want  string
	}{
		{
			name: "of two parallel calls, the one finishing last",
			spans: []Span{
				sp("root", "", KindServer, 0, 100),
				sp("fast", "root", KindInternal, 5, 30),
				sp("slow", "root", KindInternal, 10, 80),
			},
			want: "root@0* fast@1 slow@1*",
		},
		{
			name: "sequential calls are all on the path",
			spans: []Span{
				sp("root", "", KindServer, 0, 100),
				sp("first", "root", KindInternal, 0, 40),
				sp("second", "root", KindInternal, 50, 40),
			},
			want: "root@0* first@1* second@1*",
		},
		{
			name: "follows the path down into grandchildren",
			spans: []Span{
				sp("root", "", KindServer, 0, 100),
				sp("a", "root", KindInternal, 0, 90),
				sp("a1", "a", KindInternal, 0, 20),
				sp("a2", "a", KindInternal, 10, 70),
				sp("b", "root", KindInternal, 5, 20),
			},
			want: "root@0* a@1* a1@2 a2@2* b@1",
		},
		{
			name: "work started after the parent ended is not on its path",
			spans: []Span{
				sp("root", "", KindServer, 0, 50),
				sp("async", "root", KindProducer, 60, 10),
				sp("sync", "root", KindInternal, 10, 30),
			},
			want: "root@0* sync@1* async@1",
		},
		{
			name: "a child outliving its parent counts up to the parent's end",
			spans: []Span{
				sp("root", "", KindServer, 0, 50),
				sp("long", "root", KindInternal, 30, 100),
				sp("early", "root", KindInternal, 0, 20),
			},
			want: "root@0* early@1* long@1*",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := layout(BuildView(tc.spans)); got != tc.want {
				t.Fatalf("layout\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBuildViewEmpty(t *testing.T) {
	v := BuildView(nil)
	if len(v.Spans) != 0 || v.Duration != 0 {
		t.Fatalf("empty view %+v", v)
	}
}

// A 10,000-span trace shaped like a deep chain must not overflow anything
// and keep every span.
func TestBuildViewDeepTrace(t *testing.T) {
	const n = 10000
	spans := make([]Span, n)
	for i := range spans {
		spans[i] = Span{TraceID: TraceID{1}, SpanID: SpanID{byte(i >> 8), byte(i), 1}, Name: "op", Service: "svc",
			Start: t0.Add(time.Duration(i) * time.Microsecond), Duration: time.Duration(2*n-2*i) * time.Microsecond}
		if i > 0 {
			spans[i].ParentSpanID = spans[i-1].SpanID
		}
	}
	v := BuildView(spans)
	if len(v.Spans) != n || v.MaxDepth != n-1 || v.Spans[0].Descendants != n-1 || !v.Spans[n-1].Critical {
		t.Fatalf("deep trace: %d spans, depth %d, root descendants %d, leaf critical %v",
			len(v.Spans), v.MaxDepth, v.Spans[0].Descendants, v.Spans[n-1].Critical)
	}
}
