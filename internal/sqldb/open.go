package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeoutMillis is how long a statement waits for another connection's
// write lock before failing with SQLITE_BUSY. Long enough to ride out a
// checkpoint, short enough that a stuck writer shows up as an error.
const busyTimeoutMillis = 5000

// Open opens (creating if needed) the SQLite database at path and checks
// that it answers. The caller closes the returned DB. A nil logger discards.
//
// Settings, and why:
//   - WAL journal: readers do not block the writer or each other.
//   - busy_timeout: a writer waits for the lock instead of failing at once.
//   - foreign_keys: SQLite leaves them off by default; the schema relies on
//     ON DELETE CASCADE.
//   - _txlock=immediate: transactions take the write lock at BEGIN, so two
//     read-then-write transactions cannot deadlock on lock upgrade.
//   - one open connection: SQLite has a single writer; serialising in the
//     pool turns contention into queueing rather than SQLITE_BUSY errors,
//     and kplane's SQL traffic is small.
func Open(ctx context.Context, path string, logger *slog.Logger) (*sql.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, fmt.Errorf("open sqlite: empty path")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// 64 MiB of page cache instead of SQLite's 2 MiB: lookups that touch
	// thousands of scattered pages (a service's stage records) otherwise
	// pay a pread each.
	q.Add("_pragma", "cache_size(-65536)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	// Keep the one connection: reopening re-runs the pragmas for nothing.
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	logger.Debug("sqlite opened", "path", path)
	return db, nil
}
