package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures a Store. Path is required; the other zero values are
// safe.
type Config struct {
	// Path is the span database file, traces.db in the data dir. It is
	// not the main kplane.db: spans are most of the bytes and have their
	// own write rate and retention.
	Path string
	// Logger: nil discards.
	Logger *slog.Logger
	// Now is the clock for search defaults and for how long expired
	// trace IDs are remembered; nil means time.Now.
	Now func() time.Time
	// RememberExpired is how long a trace ID is kept after retention
	// removed its spans, so that lookups answer Expired rather than
	// Unknown. 0 means 7 days.
	RememberExpired time.Duration
	// Readers is the number of read connections, which WAL lets run
	// beside the one writer. 0 means 4.
	Readers int
	// CacheMiB is the writer's page cache. Trace-ID keys arrive in random
	// order, so inserts touch random pages of the primary key; a larger
	// cache keeps them in memory. 0 means 64.
	CacheMiB int
}

// Store is the SQLite span store.
type Store struct {
	w, r            *sql.DB
	log             *slog.Logger
	now             func() time.Time
	rememberExpired time.Duration
}

var _ ktrace.Store = (*Store)(nil)

// Open opens (creating if needed) the span database and brings its schema
// up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("open span store: empty path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RememberExpired <= 0 {
		cfg.RememberExpired = 7 * 24 * time.Hour
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 4
	}
	if cfg.CacheMiB <= 0 {
		cfg.CacheMiB = 64
	}
	w, err := sqldb.Open(ctx, cfg.Path, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("open span store: %w", err)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		w.Close()
		return nil, err
	}
	if err := sqldb.MigrateFS(ctx, w, "sqlite", files); err != nil {
		w.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	// The pool holds exactly one writer connection that is never closed,
	// so a per-connection pragma set here stays in force.
	if _, err := w.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, cfg.CacheMiB*1024)); err != nil {
		w.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	r, err := sqldb.Open(ctx, cfg.Path, cfg.Logger)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	// Readers never begin transactions (the DSN's BEGIN IMMEDIATE would
	// take the write lock); each query reads the latest commit.
	r.SetMaxOpenConns(cfg.Readers)
	r.SetMaxIdleConns(cfg.Readers)
	cfg.Logger.Info("span store opened", "path", cfg.Path)
	return &Store{w: w, r: r, log: cfg.Logger, now: cfg.Now, rememberExpired: cfg.RememberExpired}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error { return errors.Join(s.r.Close(), s.w.Close()) }

// fail classifies a database error: the caller's cancellation stays
// recognisable, anything else means the store could not serve.
func fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("span store: %s: %w", op, ctxErr)
	}
	return fmt.Errorf("span store: %s: %w: %w", op, ktrace.ErrUnavailable, err)
}

const spanColumns = `span_id, parent_id, service, name, start, duration, error, details`

// Trace reads the trace's key range of the primary key.
func (s *Store) Trace(ctx context.Context, id ktrace.TraceID) (ktrace.Trace, error) {
	spans, err := s.readTrace(ctx, id)
	if err != nil {
		return ktrace.Trace{}, err
	}
	out := ktrace.Trace{ID: id, Status: ktrace.Found, Spans: spans}
	if len(spans) > 0 {
		return out, nil
	}
	out.Status = ktrace.Unknown
	var one int
	err = s.r.QueryRowContext(ctx, `SELECT 1 FROM expired_traces WHERE trace_id = ?`, id[:]).Scan(&one)
	switch {
	case err == nil:
		out.Status = ktrace.Expired
	case !errors.Is(err, sql.ErrNoRows):
		return ktrace.Trace{}, fail(ctx, "lookup", err)
	}
	return out, nil
}

func (s *Store) readTrace(ctx context.Context, id ktrace.TraceID) ([]ktrace.Span, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+spanColumns+` FROM spans WHERE trace_id = ?`, id[:])
	if err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	defer rows.Close()
	var spans []ktrace.Span
	for rows.Next() {
		sp := ktrace.Span{TraceID: id}
		if err := scanSpan(rows, &sp); err != nil {
			return nil, fail(ctx, "lookup", err)
		}
		spans = append(spans, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	inmem.SortSpans(spans)
	return spans, nil
}

func scanSpan(rows *sql.Rows, sp *ktrace.Span) error {
	var spanID, parentID, details []byte
	var start, dur int64
	var isErr bool
	if err := rows.Scan(&spanID, &parentID, &sp.Service, &sp.Name, &start, &dur, &isErr, &details); err != nil {
		return err
	}
	copy(sp.SpanID[:], spanID)
	copy(sp.ParentSpanID[:], parentID)
	sp.Start, sp.Duration = time.Unix(0, start).UTC(), time.Duration(dur)
	if err := DecodeDetails(details, sp); err != nil {
		return fmt.Errorf("span %s: %w", sp.SpanID, err)
	}
	return nil
}

// FindTraces walks the best index newest first, filters each candidate
// span with inmem.Matches, and stops at Limit distinct traces.
func (s *Store) FindTraces(ctx context.Context, q ktrace.Query) ([]ktrace.TraceSummary, error) {
	q, err := inmem.Normalize(q, s.now())
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if q.Service != "" {
		where, args = append(where, "service = ?"), append(args, q.Service)
	}
	if q.Operation != "" {
		where, args = append(where, "name = ?"), append(args, q.Operation)
	}
	where, args = append(where, "start BETWEEN ? AND ?"), append(args, q.Start.UnixNano(), q.End.UnixNano())
	if q.MinDuration > 0 {
		where, args = append(where, "duration >= ?"), append(args, int64(q.MinDuration))
	}
	if q.MaxDuration > 0 {
		where, args = append(where, "duration <= ?"), append(args, int64(q.MaxDuration))
	}
	query := `SELECT trace_id, details FROM spans WHERE ` + strings.Join(where, " AND ") + ` ORDER BY start DESC`
	ids, err := s.candidates(ctx, query, args, q)
	if err != nil {
		return nil, err
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

func (s *Store) candidates(ctx context.Context, query string, args []any, q ktrace.Query) ([]ktrace.TraceID, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fail(ctx, "search", err)
	}
	defer rows.Close()
	var ids []ktrace.TraceID
	seen := map[ktrace.TraceID]bool{}
	for rows.Next() && len(ids) < q.Limit {
		var tid, details []byte
		if err := rows.Scan(&tid, &details); err != nil {
			return nil, fail(ctx, "search", err)
		}
		var id ktrace.TraceID
		copy(id[:], tid)
		if seen[id] {
			continue
		}
		if len(q.Tags) > 0 {
			var sp ktrace.Span
			if err := DecodeDetails(details, &sp); err != nil {
				return nil, fail(ctx, "search", err)
			}
			if !matchTags(q.Tags, sp.Tags) {
				continue
			}
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "search", err)
	}
	return ids, nil
}

func matchTags(want, got map[string]string) bool {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// Services lists the services with stored spans.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT DISTINCT service FROM operations ORDER BY service`)
}

// Operations lists a service's span names.
func (s *Store) Operations(ctx context.Context, service string) ([]string, error) {
	return s.strings(ctx, `SELECT name FROM operations WHERE service = ? ORDER BY name`, service)
}

func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fail(ctx, "list", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fail(ctx, "list", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "list", err)
	}
	return out, nil
}

// Dependencies sums the hourly edge counts of the hours overlapping
// [start, end).
func (s *Store) Dependencies(ctx context.Context, start, end time.Time) ([]ktrace.Dependency, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT parent, child, SUM(calls), SUM(errors) FROM dependencies
		WHERE hour >= ? AND hour < ? GROUP BY parent, child ORDER BY parent, child`,
		start.UTC().Truncate(inmem.DependencyBucket).Unix(), end.Unix())
	if err != nil {
		return nil, fail(ctx, "dependencies", err)
	}
	defer rows.Close()
	out := []ktrace.Dependency{}
	for rows.Next() {
		var d ktrace.Dependency
		if err := rows.Scan(&d.Parent, &d.Child, &d.CallCount, &d.ErrorCount); err != nil {
			return nil, fail(ctx, "dependencies", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "dependencies", err)
	}
	return out, nil
}
