package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

type opKey struct{ service, name string }

type depKey struct {
	hour          int64
	parent, child string
}

type depCount struct{ calls, errors int64 }

// batchTrace is the spans of one trace in a batch, repeats removed.
type batchTrace struct {
	id    ktrace.TraceID
	spans []*ktrace.Span
}

// WriteSpans stores a batch in one transaction: per trace, one chunk of the
// spans not stored yet, its search rows, the operations the spans name and
// the dependency edges they close. Either all of it commits or none of it
// does.
//
// It first reads the chunks already stored of the batch's traces (a few
// queries for the whole batch), which both drops retried spans and finds
// the parent or children that an edge needs when the spans of a trace
// arrive in different batches. The single writer connection serialises
// batches, so two batches cannot both miss the other's half of an edge.
func (s *Store) WriteSpans(ctx context.Context, spans []ktrace.Span) error {
	if err := inmem.Validate(spans); err != nil {
		return err
	}
	if len(spans) == 0 {
		return nil
	}
	traces := groupByTrace(spans)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids := make([]ktrace.TraceID, len(traces))
		for i, t := range traces {
			ids[i] = t.id
		}
		stored, err := storedNodes(ctx, tx, ids)
		if err != nil {
			return err
		}
		var next int64
		if err := tx.QueryRowContext(ctx, `SELECT IFNULL(MAX(id), 0) FROM chunks`).Scan(&next); err != nil {
			return err
		}
		return s.writeChunks(ctx, tx, traces, stored, next+1)
	})
	if err != nil {
		return fail(ctx, "write spans", err)
	}
	return nil
}

// groupByTrace groups spans by trace in order of first appearance,
// dropping repeated (TraceID, SpanID) pairs.
func groupByTrace(spans []ktrace.Span) []*batchTrace {
	byID := make(map[ktrace.TraceID]*batchTrace, len(spans)/8+1)
	var out []*batchTrace
	for i := range spans {
		sp := &spans[i]
		t := byID[sp.TraceID]
		if t == nil {
			t = &batchTrace{id: sp.TraceID}
			byID[sp.TraceID] = t
			out = append(out, t)
		}
		t.spans = append(t.spans, sp)
	}
	for _, t := range out {
		t.spans = dropRepeats(t.spans)
	}
	return out
}

// smallSet is the size below which a linear scan beats a map.
const smallSet = 16

// dropRepeats keeps the first span of each span ID.
func dropRepeats(spans []*ktrace.Span) []*ktrace.Span {
	if len(spans) <= smallSet {
		out := spans[:0]
	next:
		for _, sp := range spans {
			for _, o := range out {
				if o.SpanID == sp.SpanID {
					continue next
				}
			}
			out = append(out, sp)
		}
		return out
	}
	seen := make(map[ktrace.SpanID]struct{}, len(spans))
	out := spans[:0]
	for _, sp := range spans {
		if _, ok := seen[sp.SpanID]; !ok {
			seen[sp.SpanID] = struct{}{}
			out = append(out, sp)
		}
	}
	return out
}

// writeChunks inserts the new spans of each trace as one chunk with id
// next, next+1 ...
func (s *Store) writeChunks(ctx context.Context, tx *sql.Tx, traces []*batchTrace, stored map[ktrace.TraceID][]inmem.Node, next int64) error {
	w := &s.writer
	chunks := w.chunks.start(ctx, tx)
	w.index.reset()
	ops := map[opKey]int64{}
	deps := map[depKey]*depCount{}
	buf := w.buf[:0]
	var fresh []*ktrace.Span
	var added []inmem.Node
	for _, t := range traces {
		have := stored[t.id]
		fresh = appendFresh(fresh[:0], t.spans, have)
		if len(fresh) == 0 {
			continue
		}
		first, last := fresh[0].Start.UnixNano(), fresh[0].Start.UnixNano()
		added = added[:0]
		for _, sp := range fresh {
			start := sp.Start.UnixNano()
			first, last = min(first, start), max(last, start)
			added = append(added, inmem.Node{SpanID: sp.SpanID, Parent: sp.ParentSpanID, Service: sp.Service, Error: sp.Error(), Start: sp.Start})
			if k := (opKey{sp.Service, sp.Name}); start > ops[k] {
				ops[k] = start
			}
		}
		n := len(buf)
		buf = w.enc.encode(buf, fresh, first)
		id := next
		next++
		if err := chunks.add(id, t.id[:], first, last, len(fresh), buf[n:len(buf):len(buf)]); err != nil {
			return err
		}
		w.index.addChunk(id, fresh)
		if len(have) == 0 && oneService(fresh) {
			continue // a pair within one service is not an edge
		}
		for _, e := range inmem.NewEdges(have, added) {
			k := depKey{e.Hour.Unix(), e.Parent, e.Child}
			c := deps[k]
			if c == nil {
				c = &depCount{}
				deps[k] = c
			}
			c.calls++
			if e.Error {
				c.errors++
			}
		}
	}
	if err := chunks.flush(); err != nil {
		return err
	}
	search := w.search.start(ctx, tx)
	buf, err := w.index.write(search, buf[:0])
	if err != nil {
		return err
	}
	if err := search.flush(); err != nil {
		return err
	}
	// Keep a moderate buffer for the next batch, not the largest ever.
	if cap(buf) <= 8<<20 {
		w.buf = buf[:0]
	}
	for k, last := range ops {
		if _, err := tx.ExecContext(ctx, `INSERT INTO operations (service, name, last_seen) VALUES (?, ?, ?)
			ON CONFLICT (service, name) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)`,
			k.service, k.name, last); err != nil {
			return err
		}
	}
	for k, c := range deps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dependencies (hour, parent, child, calls, errors) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (hour, parent, child) DO UPDATE SET calls = calls + excluded.calls, errors = errors + excluded.errors`,
			k.hour, k.parent, k.child, c.calls, c.errors); err != nil {
			return err
		}
	}
	return nil
}

func oneService(spans []*ktrace.Span) bool {
	for _, sp := range spans[1:] {
		if sp.Service != spans[0].Service {
			return false
		}
	}
	return true
}

// appendFresh appends the spans whose IDs are not among the stored nodes.
func appendFresh(out, spans []*ktrace.Span, stored []inmem.Node) []*ktrace.Span {
	if len(stored) == 0 {
		return append(out, spans...)
	}
	if len(stored) <= smallSet {
	next:
		for _, sp := range spans {
			for i := range stored {
				if stored[i].SpanID == sp.SpanID {
					continue next
				}
			}
			out = append(out, sp)
		}
		return out
	}
	have := make(map[ktrace.SpanID]struct{}, len(stored))
	for i := range stored {
		have[stored[i].SpanID] = struct{}{}
	}
	for _, sp := range spans {
		if _, ok := have[sp.SpanID]; !ok {
			out = append(out, sp)
		}
	}
	return out
}

// storedNodes reads what is stored of the given traces, a few hundred
// traces per query.
func storedNodes(ctx context.Context, tx *sql.Tx, ids []ktrace.TraceID) (map[ktrace.TraceID][]inmem.Node, error) {
	out := map[ktrace.TraceID][]inmem.Node{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), keysPerQuery)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i][:]
		}
		rows, err := tx.QueryContext(ctx, `SELECT trace_id, data FROM chunks
			WHERE trace_id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var tid, data []byte
			if err := rows.Scan(&tid, &data); err != nil {
				rows.Close()
				return nil, err
			}
			var id ktrace.TraceID
			copy(id[:], tid)
			if out[id], err = decodeNodes(out[id], data); err != nil {
				rows.Close()
				return nil, fmt.Errorf("trace %s: %w", id, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// keysPerQuery bounds the parameters of one lookup statement: SQLite
// allows 32766, and statements of this size amortise the per-statement
// cost.
const keysPerQuery = 200

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// writerState is what the writer connection's transactions reuse from one
// batch to the next; only the transaction holding the writer connection
// touches it.
type writerState struct {
	enc    chunkEncoder
	index  searchIndex
	buf    []byte
	chunks rowInserter
	search rowInserter
}

// rowInserter batches rows into multi-row INSERT statements: one statement
// per row costs more in statement overhead than the row itself.
type rowInserter struct {
	prefix  string // INSERT INTO t (cols) VALUES
	cols    int
	perStmt int
	full    *sql.Stmt // prepared on the writer for perStmt rows

	ctx  context.Context
	tx   *sql.Tx
	stmt *sql.Stmt // full, in tx
	args []any
}

func newRowInserter(ctx context.Context, db *sql.DB, prefix string, cols, perStmt int) (rowInserter, error) {
	in := rowInserter{prefix: prefix, cols: cols, perStmt: perStmt}
	st, err := db.PrepareContext(ctx, in.sql(perStmt))
	if err != nil {
		return in, err
	}
	in.full = st
	return in, nil
}

func (in *rowInserter) sql(rows int) string {
	row := "(" + placeholders(in.cols) + "),"
	return in.prefix + strings.TrimSuffix(strings.Repeat(row, rows), ",")
}

func (in *rowInserter) start(ctx context.Context, tx *sql.Tx) *rowInserter {
	in.ctx, in.tx, in.stmt, in.args = ctx, tx, nil, in.args[:0]
	return in
}

func (in *rowInserter) add(row ...any) error {
	in.args = append(in.args, row...)
	if len(in.args) < in.cols*in.perStmt {
		return nil
	}
	if in.stmt == nil {
		// Closed with the transaction.
		in.stmt = in.tx.StmtContext(in.ctx, in.full)
	}
	_, err := in.stmt.ExecContext(in.ctx, in.args...)
	clear(in.args)
	in.args = in.args[:0]
	return err
}

func (in *rowInserter) flush() error {
	defer func() {
		clear(in.args)
		in.args = in.args[:0]
		in.ctx, in.tx, in.stmt = nil, nil, nil
	}()
	if len(in.args) == 0 {
		return nil
	}
	_, err := in.tx.ExecContext(in.ctx, in.sql(len(in.args)/in.cols), in.args...)
	return err
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqldb.InTx(ctx, s.w, fn)
}
