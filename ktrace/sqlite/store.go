package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"github.com/kplane/kplane/ktrace/internal/sqlquery"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
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
	// PageSize is the page size of a new file, in bytes (a power of two
	// from 512 to 65536); an existing file keeps its own. 0 means
	// DefaultPageSize.
	PageSize int
}

// DefaultPageSize is the page size of a new span database: chunks are a few
// KiB, and larger pages pack them with less waste and write the WAL in
// fewer, larger frames.
const DefaultPageSize = 16384

// Store is the SQLite span store.
type Store struct {
	w, r            *sql.DB
	log             *slog.Logger
	now             func() time.Time
	rememberExpired time.Duration
	// writer is used only by the transaction holding the one writer
	// connection.
	writer writerState
	// Lookups by trace ID, prepared once on each reader.
	readChunks, readExpired *sql.Stmt
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
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if err := create(ctx, cfg.Path, cfg.PageSize); err != nil {
		return nil, fmt.Errorf("open span store: %w", err)
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
	// temp_store: multi-row INSERTs keep a statement journal, which
	// would otherwise be a temporary file written page by page.
	pragmas := []string{
		fmt.Sprintf(`PRAGMA cache_size = -%d`, cfg.CacheMiB*1024),
		`PRAGMA temp_store = MEMORY`,
	}
	for _, pragma := range pragmas {
		if _, err := w.ExecContext(ctx, pragma); err != nil {
			w.Close()
			return nil, fmt.Errorf("open span store: %w", err)
		}
	}
	r, err := openReaders(ctx, cfg.Path, cfg.Readers)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	st := &Store{w: w, r: r, log: cfg.Logger, now: cfg.Now, rememberExpired: cfg.RememberExpired}
	if st.writer.chunks, err = newRowInserter(ctx, w, `INSERT OR ROLLBACK INTO chunks (id, trace_id, first, last, n, data) VALUES `, 6, chunksPerInsert); err != nil {
		st.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	if st.writer.search, err = newRowInserter(ctx, w, `INSERT OR ROLLBACK INTO search (service, name, last, chunk, first, chunks) VALUES `, 6, searchPerInsert); err != nil {
		st.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	if st.readChunks, err = r.PrepareContext(ctx, `SELECT data FROM chunks WHERE trace_id = ?`); err != nil {
		st.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	if st.readExpired, err = r.PrepareContext(ctx, `SELECT 1 FROM expired_traces WHERE trace_id = ?`); err != nil {
		st.Close()
		return nil, fmt.Errorf("open span store: %w", err)
	}
	cfg.Logger.Info("span store opened", "path", cfg.Path)
	return st, nil
}

// Rows per multi-row INSERT statement.
const (
	chunksPerInsert = 50
	searchPerInsert = 50
)

// create makes an empty database file with the given page size if there is
// no file at path. The page size can only be chosen before the first
// table, and sqldb.Open's WAL pragma would fix it at the default.
func create(ctx context.Context, path string, pageSize int) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return err // nil: the file exists
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA page_size = %d`, pageSize)); err != nil {
		return err
	}
	// Switching to WAL writes the header, with the page size.
	_, err = db.ExecContext(ctx, `PRAGMA journal_mode = WAL`)
	return err
}

// openReaders opens the pool of read connections. They never begin
// transactions (sqldb.Open's BEGIN IMMEDIATE would take the write lock):
// each query reads the latest commit, and query_only makes sure it is only
// read.
func openReaders(ctx context.Context, path string, n int) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	// Open every connection now: database/sql opens them lazily, and a
	// connection opened beside the writer waited tens of milliseconds
	// for the page cache's global mutex (modernc's SQLite shares one page
	// cache group between connections), in the middle of a lookup.
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err == nil {
			conns = append(conns, c)
			err = c.PingContext(ctx)
		}
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// Close closes both connection pools.
func (s *Store) Close() error { return errors.Join(s.r.Close(), s.w.Close()) }

// fail classifies a database error: the caller's cancellation stays
// recognisable, anything else means the store could not serve.
func fail(ctx context.Context, op string, err error) error {
	return sqlquery.Fail(ctx, op, err)
}

// Trace reads the trace's chunks through chunks_trace.
func (s *Store) Trace(ctx context.Context, id ktrace.TraceID) (ktrace.Trace, error) {
	if err := ctx.Err(); err != nil {
		return ktrace.Trace{}, fail(ctx, "lookup", err)
	}
	// A lookup reads a few pages and is not worth interrupting, while a
	// cancellable context costs each query two goroutines (database/sql's
	// and the driver's watchers): under load their scheduling was most of
	// the lookup's tail. Cancellation is checked before and after instead.
	qctx := context.WithoutCancel(ctx)
	spans, err := s.readTrace(qctx, id)
	if err != nil {
		return ktrace.Trace{}, err
	}
	out := ktrace.Trace{ID: id, Status: ktrace.Found, Spans: spans}
	if len(spans) == 0 {
		out.Status = ktrace.Unknown
		var one int
		err = s.readExpired.QueryRowContext(qctx, id[:]).Scan(&one)
		switch {
		case err == nil:
			out.Status = ktrace.Expired
		case !errors.Is(err, sql.ErrNoRows):
			return ktrace.Trace{}, fail(ctx, "lookup", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return ktrace.Trace{}, fail(ctx, "lookup", err)
	}
	return out, nil
}

func (s *Store) readTrace(ctx context.Context, id ktrace.TraceID) ([]ktrace.Span, error) {
	rows, err := s.readChunks.QueryContext(ctx, id[:])
	if err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	defer rows.Close()
	var spans []ktrace.Span
	for rows.Next() {
		var data sql.RawBytes
		if err := rows.Scan(&data); err != nil {
			return nil, fail(ctx, "lookup", err)
		}
		if spans, err = decodeChunk(spans, id, data, true); err != nil {
			return nil, fail(ctx, "lookup", fmt.Errorf("trace %s: %w", id, err))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, "lookup", err)
	}
	inmem.SortSpans(spans)
	return spans, nil
}

// Services lists the services with stored spans.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	return sqlquery.Services(ctx, s.r)
}

// Operations lists a service's span names.
func (s *Store) Operations(ctx context.Context, service string) ([]string, error) {
	return sqlquery.Operations(ctx, s.r, service)
}

// Dependencies sums the hourly edge counts of the hours overlapping
// [start, end).
func (s *Store) Dependencies(ctx context.Context, start, end time.Time) ([]ktrace.Dependency, error) {
	return sqlquery.Dependencies(ctx, s.r, start, end)
}
