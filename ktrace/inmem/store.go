package inmem

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// Config configures a Store. The zero value is usable.
type Config struct {
	// MaxSpans bounds memory: beyond it the oldest traces are evicted.
	// 0 means 1,000,000 (roughly 1 GiB with typical tags).
	MaxSpans int
	// MaxExpired is how many evicted or expired trace IDs are remembered
	// (24 bytes each plus map overhead). 0 means 1,000,000.
	MaxExpired int
	// Now is the clock for search defaults; nil means time.Now.
	Now func() time.Time
}

// Store is a bounded in-memory ktrace.Store.
type Store struct {
	maxSpans, maxExpired int
	now                  func() time.Time

	mu     sync.RWMutex
	closed bool
	traces map[ktrace.TraceID]*trace
	// arrival holds trace IDs in the order they were first written; an
	// entry whose seq no longer matches the trace is stale (expired).
	arrival []arrival
	seq     uint64
	spans   int
	// expired remembers evicted and expired trace IDs, oldest first in
	// expiredOrder.
	expired      map[ktrace.TraceID]struct{}
	expiredOrder []ktrace.TraceID
	// ops holds, per service and operation, the latest span start seen.
	ops  map[string]map[string]time.Time
	deps map[depKey]*ktrace.Dependency
}

type trace struct {
	seq   uint64
	spans map[ktrace.SpanID]*ktrace.Span
}

type arrival struct {
	id  ktrace.TraceID
	seq uint64
}

type depKey struct {
	hour          int64
	parent, child string
}

var _ ktrace.Store = (*Store)(nil)

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.MaxSpans <= 0 {
		cfg.MaxSpans = 1_000_000
	}
	if cfg.MaxExpired <= 0 {
		cfg.MaxExpired = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{
		maxSpans:   cfg.MaxSpans,
		maxExpired: cfg.MaxExpired,
		now:        cfg.Now,
		traces:     map[ktrace.TraceID]*trace{},
		expired:    map[ktrace.TraceID]struct{}{},
		ops:        map[string]map[string]time.Time{},
		deps:       map[depKey]*ktrace.Dependency{},
	}
}

func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("span store: %w", err)
	}
	if s.closed {
		return fmt.Errorf("%w: closed", ktrace.ErrUnavailable)
	}
	return nil
}

// WriteSpans stores the spans that are not stored yet.
func (s *Store) WriteSpans(ctx context.Context, spans []ktrace.Span) error {
	if err := Validate(spans); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	added := map[ktrace.TraceID][]Node{}
	for i := range spans {
		in := &spans[i]
		tr := s.traces[in.TraceID]
		if tr == nil {
			s.seq++
			tr = &trace{seq: s.seq, spans: map[ktrace.SpanID]*ktrace.Span{}}
			s.traces[in.TraceID] = tr
			s.arrival = append(s.arrival, arrival{in.TraceID, s.seq})
		}
		if _, dup := tr.spans[in.SpanID]; dup {
			continue
		}
		cp := Clone(in)
		cp.Start = cp.Start.UTC()
		tr.spans[in.SpanID] = &cp
		s.spans++
		added[in.TraceID] = append(added[in.TraceID], node(&cp))
		byName := s.ops[cp.Service]
		if byName == nil {
			byName = map[string]time.Time{}
			s.ops[cp.Service] = byName
		}
		if last, ok := byName[cp.Name]; !ok || cp.Start.After(last) {
			byName[cp.Name] = cp.Start
		}
	}
	for tid, nodes := range added {
		isNew := make(map[ktrace.SpanID]bool, len(nodes))
		for _, n := range nodes {
			isNew[n.SpanID] = true
		}
		var stored []Node
		for id, sp := range s.traces[tid].spans {
			if !isNew[id] {
				stored = append(stored, node(sp))
			}
		}
		for _, e := range NewEdges(stored, nodes) {
			k := depKey{e.Hour.Unix(), e.Parent, e.Child}
			d := s.deps[k]
			if d == nil {
				d = &ktrace.Dependency{Parent: e.Parent, Child: e.Child}
				s.deps[k] = d
			}
			d.CallCount++
			if e.Error {
				d.ErrorCount++
			}
		}
	}
	s.evict()
	return nil
}

func node(sp *ktrace.Span) Node {
	return Node{SpanID: sp.SpanID, Parent: sp.ParentSpanID, Service: sp.Service, Error: sp.Error(), Start: sp.Start}
}

// evict drops the oldest-written traces until the store is within bounds.
func (s *Store) evict() {
	i := 0
	for ; s.spans > s.maxSpans && i < len(s.arrival); i++ {
		a := s.arrival[i]
		tr := s.traces[a.id]
		if tr == nil || tr.seq != a.seq {
			continue
		}
		s.spans -= len(tr.spans)
		delete(s.traces, a.id)
		s.remember(a.id)
	}
	s.arrival = s.arrival[i:]
	// Expire leaves stale arrivals behind; rebuild before they outgrow
	// the live traces.
	if len(s.arrival) > 2*len(s.traces)+1024 {
		live := make([]arrival, 0, len(s.traces))
		for _, a := range s.arrival {
			if tr := s.traces[a.id]; tr != nil && tr.seq == a.seq {
				live = append(live, a)
			}
		}
		s.arrival = live
	}
}

func (s *Store) remember(id ktrace.TraceID) {
	if _, ok := s.expired[id]; ok {
		return
	}
	s.expired[id] = struct{}{}
	s.expiredOrder = append(s.expiredOrder, id)
	for len(s.expiredOrder) > s.maxExpired {
		delete(s.expired, s.expiredOrder[0])
		s.expiredOrder = s.expiredOrder[1:]
	}
}

// Trace looks a trace up by ID.
func (s *Store) Trace(ctx context.Context, id ktrace.TraceID) (ktrace.Trace, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return ktrace.Trace{}, err
	}
	out := ktrace.Trace{ID: id, Status: ktrace.Unknown}
	if tr := s.traces[id]; tr != nil {
		out.Status, out.Spans = ktrace.Found, cloneAll(tr)
		return out, nil
	}
	if _, ok := s.expired[id]; ok {
		out.Status = ktrace.Expired
	}
	return out, nil
}

func cloneAll(tr *trace) []ktrace.Span {
	out := make([]ktrace.Span, 0, len(tr.spans))
	for _, sp := range tr.spans {
		out = append(out, Clone(sp))
	}
	SortSpans(out)
	return out
}

// FindTraces scans every stored span: the store is bounded, and search is
// not on the path a user waits for after pasting a trace ID.
func (s *Store) FindTraces(ctx context.Context, q ktrace.Query) ([]ktrace.TraceSummary, error) {
	q, err := Normalize(q, s.now())
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var res []ktrace.TraceSummary
	for id, tr := range s.traces {
		for _, sp := range tr.spans {
			if Matches(q, sp) {
				res = append(res, Summarize(id, cloneAll(tr)))
				break
			}
		}
	}
	SortNewestFirst(res)
	if len(res) > q.Limit {
		res = res[:q.Limit]
	}
	return res, nil
}

// Services lists the services with stored spans, sorted.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(s.ops)), nil
}

// Operations lists a service's span names, sorted.
func (s *Store) Operations(ctx context.Context, service string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(s.ops[service])), nil
}

// Dependencies sums the hourly edge counts of the hours overlapping
// [start, end).
func (s *Store) Dependencies(ctx context.Context, start, end time.Time) ([]ktrace.Dependency, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	from, to := start.UTC().Truncate(DependencyBucket).Unix(), end.Unix()
	sum := map[[2]string]*ktrace.Dependency{}
	for k, d := range s.deps {
		if k.hour < from || k.hour >= to {
			continue
		}
		acc := sum[[2]string{k.parent, k.child}]
		if acc == nil {
			acc = &ktrace.Dependency{Parent: k.parent, Child: k.child}
			sum[[2]string{k.parent, k.child}] = acc
		}
		acc.CallCount += d.CallCount
		acc.ErrorCount += d.ErrorCount
	}
	out := make([]ktrace.Dependency, 0, len(sum))
	for _, d := range sum {
		out = append(out, *d)
	}
	SortDependencies(out)
	return out, nil
}

// Expire removes spans that started before cutoff, with the operations
// and dependency hours that ended before it.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	for id, tr := range s.traces {
		for sid, sp := range tr.spans {
			if sp.Start.Before(cutoff) {
				delete(tr.spans, sid)
				n++
			}
		}
		if len(tr.spans) == 0 {
			delete(s.traces, id)
			s.remember(id)
		}
	}
	s.spans -= int(n)
	for svc, byName := range s.ops {
		for name, last := range byName {
			if last.Before(cutoff) {
				delete(byName, name)
			}
		}
		if len(byName) == 0 {
			delete(s.ops, svc)
		}
	}
	for k := range s.deps {
		if time.Unix(k.hour, 0).Add(DependencyBucket).Compare(cutoff) <= 0 {
			delete(s.deps, k)
		}
	}
	return n, nil
}

// Close makes every later call fail with ErrUnavailable and frees memory.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.traces, s.arrival, s.deps = nil, nil, nil
	return nil
}

// Clone deep-copies a span, so that neither the caller nor the store sees
// the other's later changes. Empty maps and slices become nil: the stores
// do not distinguish them.
func Clone(in *ktrace.Span) ktrace.Span {
	out := *in
	out.Tags = cloneMap(in.Tags)
	out.Process = cloneMap(in.Process)
	out.Annotations = nil
	if len(in.Annotations) > 0 {
		out.Annotations = make([]ktrace.Annotation, len(in.Annotations))
		for i, a := range in.Annotations {
			a.Tags = cloneMap(a.Tags)
			out.Annotations[i] = a
		}
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
