package inmem

import (
	"fmt"
	"slices"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// DefaultLimit is the number of search results when Query.Limit is 0.
const DefaultLimit = 20

// DefaultRange is the search window when Query.Start is zero.
const DefaultRange = time.Hour

// Normalize checks q and fills in the defaults ktrace.Query documents
// (Limit, End = now, Start = End − 1 h). It returns ktrace.ErrInvalid for
// a query no backend can answer.
func Normalize(q ktrace.Query, now time.Time) (ktrace.Query, error) {
	switch {
	case q.Operation != "" && q.Service == "":
		return q, fmt.Errorf("%w: an operation needs a service", ktrace.ErrInvalid)
	case q.Limit < 0:
		return q, fmt.Errorf("%w: negative limit %d", ktrace.ErrInvalid, q.Limit)
	case q.MinDuration < 0 || q.MaxDuration < 0:
		return q, fmt.Errorf("%w: negative duration bound", ktrace.ErrInvalid)
	case q.MaxDuration != 0 && q.MinDuration > q.MaxDuration:
		return q, fmt.Errorf("%w: min duration %s above max duration %s", ktrace.ErrInvalid, q.MinDuration, q.MaxDuration)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.End.IsZero() {
		q.End = now
	}
	if q.Start.IsZero() {
		q.Start = q.End.Add(-DefaultRange)
	}
	if q.Start.After(q.End) {
		return q, fmt.Errorf("%w: start %s after end %s", ktrace.ErrInvalid,
			q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	return q, nil
}

// Matches reports whether one span satisfies every condition of a
// normalized query. A trace matches when one of its spans does.
func Matches(q ktrace.Query, s *ktrace.Span) bool {
	if q.Service != "" && s.Service != q.Service {
		return false
	}
	if q.Operation != "" && s.Name != q.Operation {
		return false
	}
	if s.Duration < q.MinDuration || (q.MaxDuration != 0 && s.Duration > q.MaxDuration) {
		return false
	}
	if s.Start.Before(q.Start) || s.Start.After(q.End) {
		return false
	}
	for k, v := range q.Tags {
		got, ok := s.Tags[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// Summarize builds the search result of a trace from all its spans. The
// root is the span without a parent (the earliest if several lost theirs);
// with no such span, the earliest span stands in for it.
func Summarize(id ktrace.TraceID, spans []ktrace.Span) ktrace.TraceSummary {
	sum := ktrace.TraceSummary{ID: id, SpanCount: len(spans)}
	if len(spans) == 0 {
		return sum
	}
	var root *ktrace.Span
	start, end := spans[0].Start, spans[0].End()
	var services []string
	for i := range spans {
		s := &spans[i]
		if s.Start.Before(start) {
			start = s.Start
		}
		if e := s.End(); e.After(end) {
			end = e
		}
		if s.Error() {
			sum.ErrorCount++
		}
		if !slices.Contains(services, s.Service) {
			services = append(services, s.Service)
		}
		if s.ParentSpanID.IsZero() && (root == nil || s.Start.Before(root.Start)) {
			root = s
		}
	}
	if root == nil {
		for i := range spans {
			if root == nil || spans[i].Start.Before(root.Start) {
				root = &spans[i]
			}
		}
	}
	slices.Sort(services)
	sum.RootService, sum.RootName = root.Service, root.Name
	sum.Start, sum.Duration, sum.Services = start, end.Sub(start), services
	return sum
}

// SortNewestFirst orders search results by trace start, newest first, and
// by ID among equal starts so that every backend answers the same order.
func SortNewestFirst(res []ktrace.TraceSummary) {
	slices.SortFunc(res, func(a, b ktrace.TraceSummary) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
}

// SortSpans orders a trace's spans by start, then span ID.
func SortSpans(spans []ktrace.Span) {
	slices.SortFunc(spans, func(a, b ktrace.Span) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return slices.Compare(a.SpanID[:], b.SpanID[:])
	})
}

// Validate rejects a batch holding a span no store can key or place in
// time; the error names the first bad span.
func Validate(spans []ktrace.Span) error {
	for i := range spans {
		s := &spans[i]
		switch {
		case s.TraceID.IsZero():
			return fmt.Errorf("%w: span %d (%s): zero trace ID", ktrace.ErrInvalid, i, s.SpanID)
		case s.SpanID.IsZero():
			return fmt.Errorf("%w: span %d of trace %s: zero span ID", ktrace.ErrInvalid, i, s.TraceID)
		case s.Start.IsZero():
			return fmt.Errorf("%w: span %s of trace %s: no start time", ktrace.ErrInvalid, s.SpanID, s.TraceID)
		}
	}
	return nil
}
