package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// expireChunks bounds how many chunks one Expire transaction rewrites, so
// that ingest waits for the write lock for milliseconds, not for the whole
// sweep.
const expireChunks = 500

// Expire removes the spans that started before cutoff, a few hundred
// chunks per transaction: a chunk whose spans all started before cutoff is
// deleted, one that straddles it is rewritten with the spans that stay.
// The trace IDs concerned are remembered in expired_traces. It then drops
// the operations and dependency hours that ended before cutoff and forgets
// expired trace IDs older than RememberExpired.
//
// The expired_traces rule and its bound: a trace ID is remembered from the
// Expire that removed (any of) its spans until RememberExpired later, about
// 40 bytes per trace. With traces of ~15 spans of ~300 bytes, remembering
// IDs for as long as spans are retained costs under 1% of the span data.
func (s *Store) Expire(ctx context.Context, cutoff time.Time) (int64, error) {
	now := s.now()
	var total int64
	for {
		n, more, err := s.expireSome(ctx, cutoff.UnixNano(), now.Unix())
		total += n
		if err != nil {
			return total, fail(ctx, "expire", err)
		}
		if !more {
			break
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := expireSearch(ctx, tx, cutoff.UnixNano()); err != nil {
			return err
		}
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

type expiring struct {
	id    int64
	trace ktrace.TraceID
	data  []byte
}

// expireSome handles up to expireChunks chunks holding spans older than
// cutoff; more says there may be others.
func (s *Store) expireSome(ctx context.Context, cutoff, now int64) (removed int64, more bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, trace_id, data FROM chunks WHERE first < ? ORDER BY first LIMIT ?`, cutoff, expireChunks)
		if err != nil {
			return err
		}
		var due []expiring
		for rows.Next() {
			var c expiring
			var tid []byte
			if err := rows.Scan(&c.id, &tid, &c.data); err != nil {
				rows.Close()
				return err
			}
			copy(c.trace[:], tid)
			due = append(due, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		more = len(due) == expireChunks
		for _, c := range due {
			n, err := s.expireChunk(ctx, tx, c, cutoff, now)
			if err != nil {
				return fmt.Errorf("chunk %d of trace %s: %w", c.id, c.trace, err)
			}
			removed += n
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return removed, more, nil
}

// expireChunk removes the spans of one chunk that started before cutoff,
// with the chunk's search rows, writing back the rest.
func (s *Store) expireChunk(ctx context.Context, tx *sql.Tx, c expiring, cutoff, now int64) (int64, error) {
	spans, err := decodeChunk(nil, c.trace, c.data, true)
	if err != nil {
		return 0, err
	}
	var keep []*ktrace.Span
	for i := range spans {
		if spans[i].Start.UnixNano() >= cutoff {
			keep = append(keep, &spans[i])
		}
	}
	if len(keep) == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM chunks WHERE id = ?`, c.id); err != nil {
			return 0, err
		}
	} else {
		first, last := keep[0].Start.UnixNano(), keep[0].Start.UnixNano()
		for _, sp := range keep {
			first, last = min(first, sp.Start.UnixNano()), max(last, sp.Start.UnixNano())
		}
		var enc chunkEncoder
		if _, err := tx.ExecContext(ctx, `UPDATE chunks SET first = ?, last = ?, n = ?, data = ? WHERE id = ?`,
			first, last, len(keep), enc.encode(nil, keep, first), c.id); err != nil {
			return 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO expired_traces (trace_id, expired_at) VALUES (?, ?)
		ON CONFLICT (trace_id) DO UPDATE SET expired_at = excluded.expired_at`, c.trace[:], now); err != nil {
		return 0, err
	}
	return int64(len(spans) - len(keep)), nil
}

// expireSearch deletes the search rows whose spans all started before
// cutoff. Every row's service and name are in operations (a span wrote
// both), so the rows are found key by key through the primary key; it runs
// in the transaction that drops the expired operations, so no row outlives
// its operation.
func expireSearch(ctx context.Context, tx *sql.Tx, cutoff int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT service, name FROM operations`)
	if err != nil {
		return err
	}
	keys := []opKey{{}}
	services := map[string]bool{}
	for rows.Next() {
		var k opKey
		if err := rows.Scan(&k.service, &k.name); err != nil {
			rows.Close()
			return err
		}
		if k.service == "" {
			continue // only in the any-service rows
		}
		if !services[k.service] {
			services[k.service] = true
			keys = append(keys, opKey{service: k.service})
		}
		if k.name != "" {
			keys = append(keys, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM search WHERE service = ? AND name = ? AND last < ?`)
	if err != nil {
		return err
	}
	defer del.Close()
	for _, k := range keys {
		if _, err := del.ExecContext(ctx, k.service, k.name, cutoff); err != nil {
			return err
		}
	}
	return nil
}
