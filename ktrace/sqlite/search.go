package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// Search rows are an inverted index written once per batch: for each
// (service, name, hour of span start) that the batch's spans have, one row
// lists the chunks holding such spans, with the latest such start in each
// (a posting). A batch of thousands of spans writes a handful of rows, not
// one per span, and a search still reads only the chunks that can match.
// Service '' stands for any service and name '' for any name: a query
// cannot ask for an empty service or name, so they need no rows of their
// own.

// searchKey identifies a search row of one batch.
type searchKey struct {
	service, name string
	hour          int64
}

// posting is a search row being built.
type posting struct {
	first, last int64
	entries     []postingEntry
}

// postingEntry is one chunk of a posting and the latest start of its spans
// that the row covers.
type postingEntry struct{ chunk, last int64 }

// searchIndex accumulates the search rows of one batch.
type searchIndex struct {
	rows  map[searchKey]*posting
	local []localKey // the current chunk's keys, merged into rows per chunk
}

type localKey struct {
	key         searchKey
	first, last int64
}

// localKeys bounds the linear scan over one chunk's keys; a chunk with
// more distinct keys merges into the map more often.
const localKeys = 32

func (ix *searchIndex) reset() {
	if ix.rows == nil {
		ix.rows = map[searchKey]*posting{}
	}
	clear(ix.rows)
	ix.local = ix.local[:0]
}

// addChunk adds the spans of chunk id.
func (ix *searchIndex) addChunk(id int64, spans []*ktrace.Span) {
	for _, sp := range spans {
		start := sp.Start.UnixNano()
		hour := floorHour(start)
		ix.add(id, searchKey{hour: hour}, start)
		if sp.Service != "" {
			ix.add(id, searchKey{service: sp.Service, hour: hour}, start)
			if sp.Name != "" {
				ix.add(id, searchKey{service: sp.Service, name: sp.Name, hour: hour}, start)
			}
		}
	}
	ix.merge(id)
}

func (ix *searchIndex) add(id int64, k searchKey, start int64) {
	for i := range ix.local {
		l := &ix.local[i]
		if l.key == k {
			l.first, l.last = min(l.first, start), max(l.last, start)
			return
		}
	}
	if len(ix.local) == localKeys {
		ix.merge(id)
	}
	ix.local = append(ix.local, localKey{key: k, first: start, last: start})
}

func (ix *searchIndex) merge(id int64) {
	for _, l := range ix.local {
		p := ix.rows[l.key]
		if p == nil {
			p = &posting{first: l.first, last: l.last}
			ix.rows[l.key] = p
		}
		p.first, p.last = min(p.first, l.first), max(p.last, l.last)
		if n := len(p.entries); n > 0 && p.entries[n-1].chunk == id {
			p.entries[n-1].last = max(p.entries[n-1].last, l.last)
		} else {
			p.entries = append(p.entries, postingEntry{chunk: id, last: l.last})
		}
	}
	ix.local = ix.local[:0]
}

// write inserts the rows. The posting is encoded latest first: the lowest
// chunk ID is the row's chunk column and each entry is its ID relative to
// that and its last relative to the row's.
func (ix *searchIndex) write(in *rowInserter, buf []byte) ([]byte, error) {
	for k, p := range ix.rows {
		lo := p.entries[0].chunk
		for _, e := range p.entries {
			lo = min(lo, e.chunk)
		}
		slices.SortFunc(p.entries, func(a, b postingEntry) int {
			if a.last != b.last {
				return cmpInt64(b.last, a.last)
			}
			return cmpInt64(a.chunk, b.chunk)
		})
		n := len(buf)
		buf = binary.AppendUvarint(buf, uint64(len(p.entries)))
		for _, e := range p.entries {
			buf = binary.AppendUvarint(buf, uint64(e.chunk-lo))
			buf = binary.AppendUvarint(buf, uint64(p.last-e.last))
		}
		if err := in.add(k.service, k.name, p.last, lo, p.first, buf[n:len(buf):len(buf)]); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func decodePosting(b []byte, chunk, last int64) ([]postingEntry, error) {
	d := decoder{b: b}
	n := d.count()
	out := make([]postingEntry, 0, n)
	for range n {
		c := int64(d.uvarint())
		l := int64(d.uvarint())
		out = append(out, postingEntry{chunk: chunk + c, last: last - l})
	}
	if d.err != nil {
		return nil, fmt.Errorf("search posting: %w", d.err)
	}
	return out, nil
}

func floorHour(ns int64) int64 {
	h := ns / int64(time.Hour)
	if ns%int64(time.Hour) < 0 {
		h--
	}
	return h
}

// FindTraces walks the search rows of the query's service and operation
// (or of any service) newest first, decodes each candidate chunk and
// matches its spans with inmem.Matches. The traces are the Limit whose
// latest matching span started last; a row or chunk whose latest span
// started before the Limit-th of those cannot change them, which ends the
// walk.
func (s *Store) FindTraces(ctx context.Context, q ktrace.Query) ([]ktrace.TraceSummary, error) {
	q, err := inmem.Normalize(q, s.now())
	if err != nil {
		return nil, err
	}
	ids, err := s.candidates(ctx, q)
	if err != nil {
		return nil, fail(ctx, "search", err)
	}
	res := make([]ktrace.TraceSummary, 0, len(ids))
	for _, id := range ids {
		spans, err := s.readTrace(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(spans) > 0 { // expired between the two reads
			res = append(res, inmem.Summarize(id, spans))
		}
	}
	inmem.SortNewestFirst(res)
	return res, nil
}

// unixNano is t in Unix ns, clamped so that an hour can be added (a
// query's bounds come from users).
func unixNano(t time.Time) int64 {
	const lo, hi = math.MinInt64 + int64(time.Hour), math.MaxInt64 - int64(time.Hour)
	switch {
	case t.Before(time.Unix(0, lo)):
		return lo
	case t.After(time.Unix(0, hi)):
		return hi
	}
	return t.UnixNano()
}

func (s *Store) candidates(ctx context.Context, q ktrace.Query) ([]ktrace.TraceID, error) {
	// One connection for the walk and the chunk reads: one snapshot, and
	// no second connection to wait for.
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	read, err := conn.PrepareContext(ctx, `SELECT trace_id, data FROM chunks WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	defer read.Close()
	// A row's spans start within an hour (last − first < 1 h), so a row
	// with a span in [Start, End] has last in [Start, End + 1 h).
	start, end := unixNano(q.Start), unixNano(q.End)
	rows, err := conn.QueryContext(ctx, `SELECT last, chunk, chunks FROM search
		WHERE service = ? AND name = ? AND last >= ? AND last < ? AND first <= ?
		ORDER BY last DESC`, q.Service, q.Operation, start, end+int64(time.Hour), end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	top := topTraces{limit: q.Limit, best: map[ktrace.TraceID]int64{}}
	visited := map[int64]bool{}
	var spans []ktrace.Span
	for rows.Next() {
		var last, chunk int64
		var blob []byte
		if err := rows.Scan(&last, &chunk, &blob); err != nil {
			return nil, err
		}
		if last < top.floor() {
			break
		}
		entries, err := decodePosting(blob, chunk, last)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.last < top.floor() {
				break
			}
			if visited[e.chunk] {
				continue
			}
			visited[e.chunk] = true
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// As in Trace: a one-row read is not worth two watcher
			// goroutines; cancellation is checked per chunk instead.
			var tid, data []byte
			switch err := read.QueryRowContext(context.WithoutCancel(ctx), e.chunk).Scan(&tid, &data); {
			case errors.Is(err, sql.ErrNoRows):
				// Expired since the row was written. (Retention may also
				// have let a newer chunk reuse the ID: its spans are
				// matched like any others.)
				continue
			case err != nil:
				return nil, err
			}
			var id ktrace.TraceID
			copy(id[:], tid)
			if spans, err = decodeChunk(spans[:0], id, data, len(q.Tags) > 0); err != nil {
				return nil, fmt.Errorf("chunk %d of trace %s: %w", e.chunk, id, err)
			}
			for i := range spans {
				if inmem.Matches(q, &spans[i]) {
					top.offer(id, spans[i].Start.UnixNano())
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ids := make([]ktrace.TraceID, 0, len(top.best))
	for id := range top.best {
		ids = append(ids, id)
	}
	return ids, nil
}

// topTraces keeps the limit traces with the latest matching span start.
type topTraces struct {
	limit int
	best  map[ktrace.TraceID]int64
	// min is the lowest value in best once it holds limit traces.
	min int64
}

// floor is the start a span must reach to change the result.
func (t *topTraces) floor() int64 {
	if len(t.best) < t.limit {
		return math.MinInt64
	}
	return t.min
}

func (t *topTraces) offer(id ktrace.TraceID, start int64) {
	if b, ok := t.best[id]; ok {
		if start > b {
			t.best[id] = start
			t.recompute()
		}
		return
	}
	if len(t.best) >= t.limit && start <= t.min {
		return
	}
	t.best[id] = start
	if len(t.best) > t.limit {
		// Drop the one with the lowest start (ties: any one of them).
		var drop ktrace.TraceID
		lowest := int64(math.MaxInt64)
		for k, v := range t.best {
			if v < lowest {
				drop, lowest = k, v
			}
		}
		delete(t.best, drop)
	}
	t.recompute()
}

func (t *topTraces) recompute() {
	if len(t.best) < t.limit {
		return
	}
	t.min = math.MaxInt64
	for _, v := range t.best {
		t.min = min(t.min, v)
	}
}
