package mysql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"github.com/kplane/kplane/ktrace/internal/sqlquery"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
	"github.com/kplane/kplane/ktrace/sqlite"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures a Store. DSN is required; the other zero values are
// safe.
type Config struct {
	// DSN is a go-sql-driver/mysql DSN of a database that holds only the
	// span schema, e.g. "kplane:pw@tcp(db:3306)/kplane_traces".
	DSN string
	// Logger: nil discards.
	Logger *slog.Logger
	// Now is the clock for partitions, search defaults and expired IDs;
	// nil means time.Now.
	Now func() time.Time
	// DaysAhead is how many daily partitions exist beyond today, so that
	// a day's first span never waits for DDL. 0 means 3.
	DaysAhead int
	// RememberExpired is how long a trace ID is kept after retention
	// removed its spans. 0 means 7 days.
	RememberExpired time.Duration
	// MaxConns bounds the connection pool. 0 means 16.
	MaxConns int
}

// Store is the MySQL/MariaDB span store.
type Store struct {
	db              *sql.DB
	log             *slog.Logger
	now             func() time.Time
	daysAhead       int
	rememberExpired time.Duration

	// mu guards the cached range of dated partitions, [minDay, maxDay],
	// that writes clamp a span's day into.
	mu             sync.Mutex
	minDay, maxDay int64
}

var _ ktrace.Store = (*Store)(nil)

const day = 24 * time.Hour

func dayOf(t time.Time) int64 { return t.Unix() / int64(day/time.Second) }

// Open connects, applies the span schema's migrations and creates the
// daily partitions from yesterday to DaysAhead days ahead.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, fmt.Errorf("open span store: empty DSN")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DaysAhead <= 0 {
		cfg.DaysAhead = 3
	}
	if cfg.RememberExpired <= 0 {
		cfg.RememberExpired = 7 * day
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("open span store: %w", err)
	}
	// Large batches are one INSERT; server-side prepared statements would
	// cost a round trip each.
	dsn.InterpolateParams = true
	// A hung server (not a dead one) must turn into an error the ingester
	// reports as unavailable, not into writes that wait forever while the
	// queue fills: bound dialing and each read and write unless the DSN
	// says otherwise.
	if dsn.Timeout == 0 {
		dsn.Timeout = 5 * time.Second
	}
	if dsn.ReadTimeout == 0 {
		dsn.ReadTimeout = 30 * time.Second
	}
	if dsn.WriteTimeout == 0 {
		dsn.WriteTimeout = 30 * time.Second
	}
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("open span store: %w", err)
	}
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open span store: %w: %w", ktrace.ErrUnavailable, err)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := sqldb.MigrateFS(ctx, db, "mysql", files); err != nil {
		db.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	s := &Store{db: db, log: cfg.Logger, now: cfg.Now, daysAhead: cfg.DaysAhead, rememberExpired: cfg.RememberExpired}
	if err := s.ensurePartitions(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	cfg.Logger.Info("span store opened", "db", dsn.DBName, "partitions_from", s.minDay, "partitions_to", s.maxDay)
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

func fail(ctx context.Context, op string, err error) error {
	return sqlquery.Fail(ctx, op, err)
}

type partition struct {
	name string
	day  int64 // the day it holds; p_min has none
}

func partitionName(d int64) string {
	return "d" + time.Unix(d*int64(day/time.Second), 0).UTC().Format("20060102")
}

func (s *Store) partitions(ctx context.Context) ([]partition, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'spans' ORDER BY PARTITION_ORDINAL_POSITION`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []partition
	for rows.Next() {
		var name string
		var less int64
		if err := rows.Scan(&name, &less); err != nil {
			return nil, err
		}
		if name != "p_min" {
			out = append(out, partition{name: name, day: less - 1})
		}
	}
	return out, rows.Err()
}

// ensurePartitions adds one partition per day up to DaysAhead days from
// now (starting yesterday on an empty table) and refreshes the cached
// range. Another replica adding the same partition at the same time is not
// an error.
func (s *Store) ensurePartitions(ctx context.Context) error {
	parts, err := s.partitions(ctx)
	if err != nil {
		return fail(ctx, "list partitions", err)
	}
	today := dayOf(s.now())
	next := today - 1
	if len(parts) > 0 {
		next = parts[len(parts)-1].day + 1
	}
	for d := next; d <= today+int64(s.daysAhead); d++ {
		_, err := s.db.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE spans ADD PARTITION (PARTITION %s VALUES LESS THAN (%d))`, partitionName(d), d+1))
		var me *mysql.MySQLError
		// 1517: duplicate partition name; 1493: not above the highest.
		if err != nil && !(errors.As(err, &me) && (me.Number == 1517 || me.Number == 1493)) {
			return fail(ctx, "add partition", err)
		}
	}
	if parts, err = s.partitions(ctx); err != nil {
		return fail(ctx, "list partitions", err)
	}
	if len(parts) == 0 {
		return fail(ctx, "list partitions", errors.New("no daily partitions after adding them"))
	}
	s.mu.Lock()
	s.minDay, s.maxDay = parts[0].day, parts[len(parts)-1].day
	s.mu.Unlock()
	return nil
}

// partitionDay is the day a span is filed under: its start's day, clamped
// to the partitions that exist. A span older than the oldest partition is
// past retention already and goes with the oldest day; one from a clock far
// in the future goes to the newest.
func (s *Store) partitionDay(start time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(max(dayOf(start), s.minDay), s.maxDay)
}

const spanColumns = `span_id, parent_id, service, name, start, duration, error, details`

// Trace probes the trace's key range in each daily partition.
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
	err = s.db.QueryRowContext(ctx, `SELECT 1 FROM expired_traces WHERE trace_id = ?`, id[:]).Scan(&one)
	switch {
	case err == nil:
		out.Status = ktrace.Expired
	case !errors.Is(err, sql.ErrNoRows):
		return ktrace.Trace{}, fail(ctx, "lookup", err)
	}
	return out, nil
}

func (s *Store) readTrace(ctx context.Context, id ktrace.TraceID) ([]ktrace.Span, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+spanColumns+` FROM spans WHERE trace_id = ?`, id[:])
	if err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	defer rows.Close()
	var spans []ktrace.Span
	for rows.Next() {
		sp := ktrace.Span{TraceID: id}
		var spanID, parentID, details []byte
		var start, dur int64
		var isErr bool // Status in details says the same
		if err := rows.Scan(&spanID, &parentID, &sp.Service, &sp.Name, &start, &dur, &isErr, &details); err != nil {
			return nil, fail(ctx, "lookup", err)
		}
		copy(sp.SpanID[:], spanID)
		copy(sp.ParentSpanID[:], parentID)
		sp.Start, sp.Duration = time.Unix(0, start).UTC(), time.Duration(dur)
		if err := sqlite.DecodeDetails(details, &sp); err != nil {
			return nil, fail(ctx, "lookup", fmt.Errorf("span %s: %w", sp.SpanID, err))
		}
		spans = append(spans, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	inmem.SortSpans(spans)
	return spans, nil
}

// FindTraces walks the best index newest first, filters tags in Go, and
// stops at Limit distinct traces.
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
	ids, err := s.candidates(ctx, `SELECT trace_id, details FROM spans WHERE `+strings.Join(where, " AND ")+` ORDER BY start DESC`, args, q)
	if err != nil {
		return nil, err
	}
	res := make([]ktrace.TraceSummary, 0, len(ids))
	for _, id := range ids {
		spans, err := s.readTrace(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(spans) > 0 {
			res = append(res, inmem.Summarize(id, spans))
		}
	}
	inmem.SortNewestFirst(res)
	return res, nil
}

func (s *Store) candidates(ctx context.Context, query string, args []any, q ktrace.Query) ([]ktrace.TraceID, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fail(ctx, "search", err)
	}
	defer rows.Close()
	var ids []ktrace.TraceID
	seen := map[ktrace.TraceID]bool{}
	for len(ids) < q.Limit && rows.Next() {
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
			if err := sqlite.DecodeDetails(details, &sp); err != nil {
				return nil, fail(ctx, "search", err)
			}
			if !inmem.Matches(ktrace.Query{Tags: q.Tags}, &ktrace.Span{Tags: sp.Tags}) {
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

// Services lists the services with stored spans.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	return sqlquery.Services(ctx, s.db)
}

// Operations lists a service's span names.
func (s *Store) Operations(ctx context.Context, service string) ([]string, error) {
	return sqlquery.Operations(ctx, s.db, service)
}

// Dependencies sums the hourly edge counts of the hours overlapping
// [start, end).
func (s *Store) Dependencies(ctx context.Context, start, end time.Time) ([]ktrace.Dependency, error) {
	return sqlquery.Dependencies(ctx, s.db, start, end)
}
