package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
	"github.com/kplane/kplane/ktrace/sqlite"
)

// maxAttempts bounds retries of a batch that lost a deadlock.
const maxAttempts = 20

// insertChunk bounds the rows of one INSERT statement, keeping it well
// under max_allowed_packet (16 MiB by default).
const insertChunk = 500

type opKey struct{ service, name string }

type depKey struct {
	hour          int64
	parent, child string
}

type depCount struct{ calls, errors int64 }

// WriteSpans stores a batch in one transaction. It first reads, with
// SELECT ... FOR UPDATE, what is stored of the batch's traces: that drops
// retried spans, finds the other half of dependency edges, and locks the
// traces' key ranges so that a concurrent batch of the same trace waits
// and then sees this one's spans, instead of both missing the edge between
// them. A deadlock between such batches is retried.
func (s *Store) WriteSpans(ctx context.Context, spans []ktrace.Span) error {
	if err := inmem.Validate(spans); err != nil {
		return err
	}
	if len(spans) == 0 {
		return nil
	}
	if dayOf(s.now())+1 > s.cachedMaxDay() {
		// A new day began: make sure tomorrow's partition exists.
		if err := s.ensurePartitions(ctx); err != nil {
			return err
		}
	}
	var err error
	for attempt := range maxAttempts {
		err = s.writeOnce(ctx, spans)
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			break
		}
		switch me.Number {
		case 1213, 1205: // deadlock, lock wait timeout: nothing was written
			// Two batches of the same new trace both hold the gap lock
			// and both want to insert into it; InnoDB kills one. Back off
			// a random while so they stop colliding.
			select {
			case <-time.After(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))):
			case <-ctx.Done():
				return fail(ctx, "write spans", ctx.Err())
			}
			continue
		case 1526: // no partition for value: another replica dropped one
			if perr := s.ensurePartitions(ctx); perr != nil {
				return perr
			}
			continue
		}
		break
	}
	if err != nil {
		return fail(ctx, "write spans", err)
	}
	return nil
}

func (s *Store) cachedMaxDay() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxDay
}

func (s *Store) writeOnce(ctx context.Context, spans []ktrace.Span) (err error) {
	type spanKey struct {
		t ktrace.TraceID
		s ktrace.SpanID
	}
	byTrace := map[ktrace.TraceID][]*ktrace.Span{}
	var order []ktrace.TraceID
	seen := make(map[spanKey]bool, len(spans))
	for i := range spans {
		sp := &spans[i]
		if k := (spanKey{sp.TraceID, sp.SpanID}); !seen[k] {
			seen[k] = true
			if _, ok := byTrace[sp.TraceID]; !ok {
				order = append(order, sp.TraceID)
			}
			byTrace[sp.TraceID] = append(byTrace[sp.TraceID], sp)
		}
	}

	tx, err := s.db.BeginTx(ctx, nil)
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

	stored, err := lockTraces(ctx, tx, order)
	if err != nil {
		return err
	}
	var rows []any
	nrows := 0
	flush := func() error {
		if nrows == 0 {
			return nil
		}
		q := `INSERT IGNORE INTO spans (trace_id, span_id, day, parent_id, service, name, start, duration, error, details) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?),", nrows), ",")
		_, err := tx.ExecContext(ctx, q, rows...)
		rows, nrows = rows[:0], 0
		return err
	}
	ops := map[opKey]int64{}
	deps := map[depKey]*depCount{}
	for _, tid := range order {
		have := map[ktrace.SpanID]bool{}
		for _, n := range stored[tid] {
			have[n.SpanID] = true
		}
		var added []inmem.Node
		for _, sp := range byTrace[tid] {
			if have[sp.SpanID] {
				continue
			}
			start := sp.Start.UnixNano()
			rows = append(rows, tid[:], sp.SpanID[:], s.partitionDay(sp.Start), sp.ParentSpanID[:], sp.Service, sp.Name,
				start, int64(sp.Duration), sp.Error(), sqlite.AppendDetails(nil, sp))
			if nrows++; nrows == insertChunk {
				if err := flush(); err != nil {
					return err
				}
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
	if err := flush(); err != nil {
		return err
	}
	for k, last := range ops {
		if _, err := tx.ExecContext(ctx, `INSERT INTO operations (service, name, last_seen) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE last_seen = GREATEST(last_seen, VALUES(last_seen))`, k.service, k.name, last); err != nil {
			return err
		}
	}
	for k, c := range deps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dependencies (hour, parent, child, calls, errors) VALUES (?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE calls = calls + VALUES(calls), errors = errors + VALUES(errors)`,
			k.hour, k.parent, k.child, c.calls, c.errors); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// lockTraces reads and locks the stored spans of the given traces.
func lockTraces(ctx context.Context, tx *sql.Tx, ids []ktrace.TraceID) (map[ktrace.TraceID][]inmem.Node, error) {
	out := map[ktrace.TraceID][]inmem.Node{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), insertChunk)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i := range chunk {
			args[i] = chunk[i][:]
		}
		rows, err := tx.QueryContext(ctx, `SELECT trace_id, span_id, parent_id, service, error, start FROM spans
			WHERE trace_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) FOR UPDATE`, args...)
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

// expireChunk bounds the rows one retention transaction deletes outside
// whole dropped partitions.
const expireChunk = 5000

// Expire drops every daily partition that ends at or before cutoff (after
// remembering its trace IDs in expired_traces), then deletes the remaining
// spans that started before cutoff, in chunks, from the partition that
// straddles it. It also drops operations and dependency hours that ended
// before cutoff, forgets expired trace IDs older than RememberExpired, and
// creates partitions for the days ahead.
//
// A span written into a partition while it is being dropped is removed
// without its trace ID being remembered; only spans already older than the
// cutoff can land there.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("span store: expire: %w", err)
	}
	now := s.now().Unix()
	parts, err := s.partitions(ctx)
	if err != nil {
		return 0, fail(ctx, "expire", err)
	}
	var total int64
	for i, p := range parts {
		// Keep the newest partition: writes clamp old spans into it.
		if (p.day+1)*int64(day/time.Second) > cutoff.Unix() || i == len(parts)-1 {
			break
		}
		n, err := s.dropPartition(ctx, p, now)
		total += n
		if err != nil {
			return total, fail(ctx, "expire", err)
		}
	}
	if err := s.ensurePartitions(ctx); err != nil {
		return total, err
	}
	for {
		n, err := s.expireChunk(ctx, cutoff.UnixNano(), now)
		total += n
		if err != nil {
			return total, fail(ctx, "expire", err)
		}
		if n < expireChunk {
			break
		}
	}
	for _, stmt := range []struct {
		q   string
		arg int64
	}{
		{`DELETE FROM operations WHERE last_seen < ?`, cutoff.UnixNano()},
		{`DELETE FROM dependencies WHERE hour <= ?`, cutoff.Unix() - int64(inmem.DependencyBucket/time.Second)},
		{`DELETE FROM expired_traces WHERE expired_at < ?`, now - int64(s.rememberExpired/time.Second)},
	} {
		if _, err := s.db.ExecContext(ctx, stmt.q, stmt.arg); err != nil {
			return total, fail(ctx, "expire", err)
		}
	}
	if total > 0 {
		s.log.Info("spans expired", "spans", total, "cutoff", cutoff)
	}
	return total, nil
}

func (s *Store) dropPartition(ctx context.Context, p partition, now int64) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM spans PARTITION (`+p.name+`)`).Scan(&n); err != nil {
		return 0, err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO expired_traces (trace_id, expired_at)
		SELECT DISTINCT trace_id, ? FROM spans PARTITION (`+p.name+`)
		ON DUPLICATE KEY UPDATE expired_at = VALUES(expired_at)`, now); err != nil {
		return 0, err
	}
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE spans DROP PARTITION `+p.name); err != nil {
		return 0, err
	}
	s.log.Info("span partition dropped", "partition", p.name, "spans", n)
	return n, nil
}

func (s *Store) expireChunk(ctx context.Context, cutoff, now int64) (n int64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT trace_id, span_id, day FROM spans WHERE start < ? LIMIT ? FOR UPDATE`, cutoff, expireChunk)
	if err != nil {
		return 0, err
	}
	type key struct {
		tid, sid []byte
		day      int64
	}
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.tid, &k.sid, &k.day); err != nil {
			rows.Close()
			return 0, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	done := map[string]bool{}
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `DELETE FROM spans WHERE trace_id = ? AND span_id = ? AND day = ?`, k.tid, k.sid, k.day); err != nil {
			return 0, err
		}
		if !done[string(k.tid)] {
			done[string(k.tid)] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO expired_traces (trace_id, expired_at) VALUES (?, ?)
				ON DUPLICATE KEY UPDATE expired_at = VALUES(expired_at)`, k.tid, now); err != nil {
				return 0, err
			}
		}
	}
	return int64(len(keys)), tx.Commit()
}
