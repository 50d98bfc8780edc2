package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// pending is a span of the batch, encoded before the write lock is taken.
type pending struct {
	span    *ktrace.Span
	details []byte
}

type opKey struct{ service, name string }

type depKey struct {
	hour          int64
	parent, child string
}

type depCount struct{ calls, errors int64 }

// WriteSpans stores a batch in one transaction: the spans not stored yet,
// the operations they name and the dependency edges they close. Either all
// of it commits or none of it does.
//
// For each trace of the batch it first reads what is already stored of
// that trace (one primary-key range read), which both drops retried spans
// and finds the parent or children that an edge needs when the spans of a
// trace arrive in different batches. The single writer connection
// serialises batches, so two batches cannot both miss the other's half of
// an edge.
func (s *Store) WriteSpans(ctx context.Context, spans []ktrace.Span) error {
	if err := inmem.Validate(spans); err != nil {
		return err
	}
	if len(spans) == 0 {
		return nil
	}
	type spanKey struct {
		t ktrace.TraceID
		s ktrace.SpanID
	}
	byTrace := map[ktrace.TraceID][]pending{}
	var order []ktrace.TraceID
	seen := make(map[spanKey]bool, len(spans))
	buf := make([]byte, 0, 256*len(spans))
	for i := range spans {
		sp := &spans[i]
		k := spanKey{sp.TraceID, sp.SpanID}
		if seen[k] {
			continue
		}
		seen[k] = true
		n := len(buf)
		buf = AppendDetails(buf, sp)
		if _, ok := byTrace[sp.TraceID]; !ok {
			order = append(order, sp.TraceID)
		}
		byTrace[sp.TraceID] = append(byTrace[sp.TraceID], pending{sp, buf[n:len(buf):len(buf)]})
	}

	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stored, err := storedNodes(ctx, tx, order)
		if err != nil {
			return err
		}
		ins := inserter{tx: tx}
		ops := map[opKey]int64{}
		deps := map[depKey]*depCount{}
		for _, tid := range order {
			have := make(map[ktrace.SpanID]bool, len(stored[tid]))
			for _, n := range stored[tid] {
				have[n.SpanID] = true
			}
			var added []inmem.Node
			for _, p := range byTrace[tid] {
				sp := p.span
				if have[sp.SpanID] {
					continue
				}
				start := sp.Start.UnixNano()
				if err := ins.add(ctx, tid[:], sp.SpanID[:], sp.ParentSpanID[:], sp.Service, sp.Name,
					start, int64(sp.Duration), sp.Error(), p.details); err != nil {
					return err
				}
				added = append(added, inmem.Node{SpanID: sp.SpanID, Parent: sp.ParentSpanID, Service: sp.Service, Error: sp.Error(), Start: sp.Start})
				if k := (opKey{sp.Service, sp.Name}); start > ops[k] {
					ops[k] = start
				}
			}
			for _, e := range inmem.NewEdges(stored[tid], added) {
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
		if err := ins.flush(ctx); err != nil {
			return err
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
	})
	if err != nil {
		return fail(ctx, "write spans", err)
	}
	return nil
}

// keysPerQuery bounds the parameters of one statement: SQLite allows
// 32766, and statements of this size already amortise the per-statement
// cost, which dominates with one row per statement.
const keysPerQuery = 200

// storedNodes reads what is stored of the given traces, a few hundred
// primary-key ranges per query.
func storedNodes(ctx context.Context, tx *sql.Tx, ids []ktrace.TraceID) (map[ktrace.TraceID][]inmem.Node, error) {
	out := map[ktrace.TraceID][]inmem.Node{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), keysPerQuery)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i][:]
		}
		rows, err := tx.QueryContext(ctx, `SELECT trace_id, span_id, parent_id, service, error, start FROM spans
			WHERE trace_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n inmem.Node
			var tid, spanID, parentID []byte
			var start int64
			if err := rows.Scan(&tid, &spanID, &parentID, &n.Service, &n.Error, &start); err != nil {
				rows.Close()
				return nil, err
			}
			var id ktrace.TraceID
			copy(id[:], tid)
			copy(n.SpanID[:], spanID)
			copy(n.Parent[:], parentID)
			n.Start = time.Unix(0, start).UTC()
			out[id] = append(out[id], n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rowsPerInsert spans go in one INSERT statement (9 parameters each).
const rowsPerInsert = 100

// inserter batches span rows into multi-row INSERT OR IGNORE statements.
type inserter struct {
	tx   *sql.Tx
	args []any
	full *sql.Stmt // prepared once per batch for rowsPerInsert rows
}

func (in *inserter) add(ctx context.Context, row ...any) error {
	in.args = append(in.args, row...)
	if len(in.args) < 9*rowsPerInsert {
		return nil
	}
	if in.full == nil {
		st, err := in.tx.PrepareContext(ctx, insertSQL(rowsPerInsert))
		if err != nil {
			return err
		}
		in.full = st
	}
	_, err := in.full.ExecContext(ctx, in.args...)
	in.args = in.args[:0]
	return err
}

func (in *inserter) flush(ctx context.Context) error {
	if in.full != nil {
		defer in.full.Close()
	}
	if len(in.args) == 0 {
		return nil
	}
	_, err := in.tx.ExecContext(ctx, insertSQL(len(in.args)/9), in.args...)
	in.args = in.args[:0]
	return err
}

func insertSQL(rows int) string {
	return `INSERT OR IGNORE INTO spans (trace_id, span_id, parent_id, service, name, start, duration, error, details) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?),", rows), ",")
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				err = errors.Join(err, rbErr)
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// expireChunk bounds how many spans one Expire transaction deletes, so that
// ingest waits for the write lock for milliseconds, not for the whole
// sweep.
const expireChunk = 5000

// Expire deletes spans that started before cutoff in chunks, remembering
// their trace IDs in expired_traces, then drops the operations and
// dependency hours that ended before cutoff and forgets expired trace IDs
// older than RememberExpired.
//
// The expired_traces rule and its bound: a trace ID is remembered from the
// Expire that removed (any of) its spans until RememberExpired later, about
// 40 bytes per trace. With traces of ~15 spans of ~300 bytes, remembering
// IDs for as long as spans are retained costs under 1% of the span data.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (int64, error) {
	now := s.now()
	var total int64
	for {
		n, err := s.expireChunk(ctx, cutoff.UnixNano(), now.Unix())
		total += n
		if err != nil {
			return total, fail(ctx, "expire", err)
		}
		if n < expireChunk {
			break
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM operations WHERE last_seen < ?`, cutoff.UnixNano()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM dependencies WHERE hour <= ?`,
			cutoff.Unix()-int64(inmem.DependencyBucket/time.Second)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM expired_traces WHERE expired_at < ?`, now.Add(-s.rememberExpired).Unix())
		return err
	})
	if err != nil {
		return total, fail(ctx, "expire", err)
	}
	if total > 0 {
		s.log.Info("spans expired", "spans", total, "cutoff", cutoff)
	}
	return total, nil
}

func (s *Store) expireChunk(ctx context.Context, cutoff, now int64) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT trace_id, span_id FROM spans WHERE start < ? LIMIT ?`, cutoff, expireChunk)
		if err != nil {
			return err
		}
		var keys [][2][]byte
		for rows.Next() {
			var k [2][]byte
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		del, err := tx.PrepareContext(ctx, `DELETE FROM spans WHERE trace_id = ? AND span_id = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		remember, err := tx.PrepareContext(ctx, `INSERT INTO expired_traces (trace_id, expired_at) VALUES (?, ?)
			ON CONFLICT (trace_id) DO UPDATE SET expired_at = excluded.expired_at`)
		if err != nil {
			return err
		}
		defer remember.Close()
		done := map[string]bool{}
		for _, k := range keys {
			if _, err := del.ExecContext(ctx, k[0], k[1]); err != nil {
				return err
			}
			if !done[string(k[0])] {
				done[string(k[0])] = true
				if _, err := remember.ExecContext(ctx, k[0], now); err != nil {
					return err
				}
			}
		}
		n = int64(len(keys))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
