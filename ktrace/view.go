package ktrace

import (
	"cmp"
	"slices"
	"time"
)

// View is a trace laid out for reading: its spans as a tree in depth-first
// order, clock skew between client and server spans adjusted, and the
// critical path marked. BuildView makes one; the web console, the API and
// `kplane trace get` all show the same View.
type View struct {
	// Spans in depth-first order: every span comes right after its parent
	// and before its later siblings, so that a span's subtree is the
	// Descendants spans that follow it.
	Spans []ViewSpan
	// Start is the earliest (adjusted) span start; Duration reaches the
	// latest (adjusted) span end.
	Start    time.Time
	Duration time.Duration
	// Services are the services taking part, with their span counts,
	// sorted by name.
	Services   []ServiceCount
	ErrorCount int
	// MaxDepth is the depth of the deepest span (roots have depth 0).
	MaxDepth int
	// Adjusted counts the spans shifted for clock skew.
	Adjusted int
	// Orphans counts the spans whose parent is not in the trace.
	Orphans int
}

// ServiceCount is how many spans of a trace one service emitted.
type ServiceCount struct {
	Service string
	Spans   int
}

// ViewSpan is a span placed in the tree.
type ViewSpan struct {
	// Span is a copy of the stored span with Start (and its annotations)
	// shifted by Skew.
	Span
	// Depth is 0 for roots and orphans.
	Depth int
	// Parent is the index of the parent in View.Spans, or -1 at the root
	// level.
	Parent int
	// Children is the number of direct children; Descendants the size of
	// the whole subtree below the span.
	Children, Descendants int
	// Orphan marks a span whose ParentSpanID is set but not in the trace
	// (not received yet, lost, or expired): it is shown at the root level
	// rather than hidden.
	Orphan bool
	// Skew is how far the span (with its subtree) was moved to fit its
	// client parent; zero if it was not adjusted.
	Skew time.Duration
	// Critical marks the spans on the critical path: the chain of work
	// that the trace's end-to-end latency waited for.
	Critical bool
}

// Offset is the span's start relative to the trace start.
func (v *View) Offset(i int) time.Duration { return v.Spans[i].Start.Sub(v.Start) }

// BuildView lays spans of one trace out as a View. It does not modify
// spans or anything they reference. Spans may come in any order; duplicate
// span IDs (which a store does not keep, but a decoded payload may hold)
// keep the first span as the parent of the ID's children.
func BuildView(spans []Span) View {
	n := len(spans)
	v := View{}
	if n == 0 {
		return v
	}
	byID := make(map[SpanID]int, n)
	for i := range spans {
		if _, dup := byID[spans[i].SpanID]; !dup {
			byID[spans[i].SpanID] = i
		}
	}
	// parent[i] is the input index of i's parent, or -1.
	parent := make([]int, n)
	children := make([][]int, n)
	var roots []int
	orphan := make([]bool, n)
	for i := range spans {
		parent[i] = -1
		p := spans[i].ParentSpanID
		if p.IsZero() {
			roots = append(roots, i)
			continue
		}
		pi, ok := byID[p]
		if !ok || pi == i {
			orphan[i] = true
			roots = append(roots, i)
			continue
		}
		parent[i] = pi
		children[pi] = append(children[pi], i)
	}
	byStart := func(a, b int) int {
		return cmp.Or(spans[a].Start.Compare(spans[b].Start), cmp.Compare(spans[a].Name, spans[b].Name), cmp.Compare(a, b))
	}
	for _, c := range children {
		slices.SortFunc(c, byStart)
	}

	order := make([]int, 0, n) // input indexes in depth-first order
	pos := make([]int, n)      // input index → index in order
	visited := make([]bool, n)
	depth := make([]int, n)
	walk := func(root int) {
		stack := []int{root}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if visited[i] {
				continue
			}
			visited[i] = true
			pos[i] = len(order)
			order = append(order, i)
			if parent[i] >= 0 {
				depth[i] = depth[parent[i]] + 1
			}
			for k := len(children[i]) - 1; k >= 0; k-- {
				stack = append(stack, children[i][k])
			}
		}
	}
	slices.SortFunc(roots, byStart)
	for _, r := range roots {
		walk(r)
	}
	// Spans still unvisited sit on a parent cycle, which only a broken
	// client produces: cut the cycle at its earliest span and show that one
	// as an orphan.
	if len(order) < n {
		rest := make([]int, 0, n-len(order))
		for i := range spans {
			if !visited[i] {
				rest = append(rest, i)
			}
		}
		slices.SortFunc(rest, byStart)
		for _, i := range rest {
			if visited[i] {
				continue
			}
			if p := parent[i]; p >= 0 {
				children[p] = slices.DeleteFunc(children[p], func(c int) bool { return c == i })
			}
			parent[i] = -1
			orphan[i] = true
			walk(i)
		}
	}

	v.Spans = make([]ViewSpan, n)
	for k, i := range order {
		vs := ViewSpan{Span: spans[i], Depth: depth[i], Parent: -1, Children: len(children[i]), Orphan: orphan[i]}
		if parent[i] >= 0 {
			vs.Parent = pos[parent[i]]
		}
		v.Spans[k] = vs
	}
	// Subtree sizes: walking the depth-first order backwards reaches every
	// span before its parent.
	for k := n - 1; k >= 0; k-- {
		if p := v.Spans[k].Parent; p >= 0 {
			v.Spans[p].Descendants += v.Spans[k].Descendants + 1
		}
	}

	adjustSkew(&v)
	summarize(&v)
	markCritical(&v)
	return v
}

// adjustSkew moves a server span that does not fit inside its client
// parent, and with it the server's whole subtree, the way Jaeger and
// Zipkin do: a server cannot start before its caller sent the request nor
// end after the caller got the answer, so the difference is the two hosts'
// clock offset, not latency. The server span is centred in the client
// span (the network latency split evenly both ways). A server span longer
// than its client cannot fit at all; it is aligned with the client's start
// so that at least the call order is right.
//
// Spans are processed in depth-first order, so a parent is already shifted
// by its own ancestors' skew when its children are compared with it.
func adjustSkew(v *View) {
	shift := make([]time.Duration, len(v.Spans)) // total shift per span
	for k := range v.Spans {
		s := &v.Spans[k]
		var inherited time.Duration
		if s.Parent >= 0 {
			inherited = shift[s.Parent]
		}
		start := s.Start.Add(inherited)
		var own time.Duration
		if s.Parent >= 0 && s.Kind == KindServer && v.Spans[s.Parent].Kind == KindClient {
			p := &v.Spans[s.Parent] // already shifted
			pStart, pEnd := p.Start, p.Start.Add(p.Duration)
			if start.Before(pStart) || start.Add(s.Duration).After(pEnd) {
				target := pStart
				if s.Duration <= p.Duration {
					target = pStart.Add((p.Duration - s.Duration) / 2)
				}
				own = target.Sub(start)
			}
		}
		shift[k] = inherited + own
		s.Skew = own
		if shift[k] != 0 {
			s.Start = s.Start.Add(shift[k])
			if len(s.Annotations) > 0 {
				ann := make([]Annotation, len(s.Annotations))
				for j, a := range s.Annotations {
					a.Time = a.Time.Add(shift[k])
					ann[j] = a
				}
				s.Annotations = ann
			}
		}
		if own != 0 {
			v.Adjusted++
		}
	}
}

func summarize(v *View) {
	counts := map[string]int{}
	v.Start = v.Spans[0].Start
	end := v.Spans[0].End()
	for k := range v.Spans {
		s := &v.Spans[k]
		if s.Start.Before(v.Start) {
			v.Start = s.Start
		}
		if e := s.End(); e.After(end) {
			end = e
		}
		counts[s.Service]++
		if s.Error() {
			v.ErrorCount++
		}
		if s.Orphan {
			v.Orphans++
		}
		v.MaxDepth = max(v.MaxDepth, s.Depth)
	}
	v.Duration = end.Sub(v.Start)
	for svc, c := range counts {
		v.Services = append(v.Services, ServiceCount{Service: svc, Spans: c})
	}
	slices.SortFunc(v.Services, func(a, b ServiceCount) int { return cmp.Compare(a.Service, b.Service) })
}

// markCritical marks the critical path, as Jaeger computes it: starting
// from the end of a span, the child that finished last before that point
// is what the span waited for; follow it, then continue backwards from
// where that child started, with the last child that had finished by
// then. Work that overlapped a child on the path did not delay the trace. The root level acts
// as the children of one virtual span covering the whole trace.
func markCritical(v *View) {
	kids := make([][]int, len(v.Spans))
	var roots []int
	for k := range v.Spans {
		if p := v.Spans[k].Parent; p >= 0 {
			kids[p] = append(kids[p], k)
		} else {
			roots = append(roots, k)
		}
	}
	byEndDesc := func(a, b int) int {
		return cmp.Or(v.Spans[b].End().Compare(v.Spans[a].End()), cmp.Compare(a, b))
	}
	// walk marks along the children of one span, backwards from cursor,
	// pushing each chosen child for its own walk. An explicit stack keeps a
	// 10,000-deep trace off the goroutine stack.
	type item struct {
		k      int // span to mark and descend into
		cursor time.Time
	}
	var stack []item
	// A child that outlives its parent (asynchronous work) counts only up
	// to the parent's end; one that started after it counts not at all.
	choose := func(children []int, from, cursor time.Time) {
		limit := cursor
		slices.SortFunc(children, byEndDesc)
		for _, c := range children {
			if !cursor.After(from) {
				return
			}
			start, end := v.Spans[c].Start, v.Spans[c].End()
			if end.After(limit) {
				end = limit
			}
			if start.Before(cursor) && !end.After(cursor) {
				stack = append(stack, item{c, end})
				cursor = start
			}
		}
	}
	choose(roots, v.Start, v.Start.Add(v.Duration))
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v.Spans[it.k].Critical = true
		choose(kids[it.k], v.Spans[it.k].Start, it.cursor)
	}
}
