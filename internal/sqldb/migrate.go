package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Migration is one embedded schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrate brings the main store opened with Open or OpenMySQL up to the
// newest schema this binary knows, with the migrations of db's engine
// (migrations/sqlite or migrations/mysql, the same versions). Each pending
// migration runs in its own transaction together with its
// schema_migrations row, so on SQLite a failed migration leaves the
// database at the previous version; MySQL commits DDL as it goes, so its
// statements are written to be re-run. Running Migrate again applies
// nothing.
//
// If the database records a version this binary does not know, Migrate
// returns ErrSchemaTooNew without changing anything.
//
// Several replicas may start at once on one MySQL database: they take
// turns under a named lock (GET_LOCK), so one migrates and the others find
// the schema up to date.
func Migrate(ctx context.Context, db *sql.DB) error {
	d, err := dialectOf(Engine(db))
	if err != nil {
		return err
	}
	return migrate(ctx, db, d, time.Now)
}

// Migrations lists the embedded migrations of engine (SQLite or MySQL) in
// version order.
func Migrations(engine string) ([]Migration, error) {
	d, err := dialectOf(engine)
	if err != nil {
		return nil, err
	}
	return loadMigrations(d.files)
}

func migrate(ctx context.Context, db *sql.DB, d dialect, now func() time.Time) (err error) {
	migs, err := loadMigrations(d.files)
	if err != nil {
		return err
	}
	if d.name == MySQL {
		// Replicas starting together on one database take turns: the
		// first migrates, the others then find nothing to do.
		unlock, lerr := lockMySQL(ctx, db)
		if lerr != nil {
			return fmt.Errorf("migrate %s: %w", d.name, lerr)
		}
		defer func() { err = errors.Join(err, unlock()) }()
	}
	if _, err := db.ExecContext(ctx, d.createTable); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", d.name, err)
	}
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", d.name, err)
	}
	known := make(map[int]bool, len(migs))
	for _, m := range migs {
		known[m.Version] = true
	}
	for v := range applied {
		if !known[v] {
			newest := 0
			if len(migs) > 0 {
				newest = migs[len(migs)-1].Version
			}
			return fmt.Errorf("migrate %s: database has migration %d, this binary knows up to %d (upgrade kplane): %w",
				d.name, v, newest, ErrSchemaTooNew)
		}
	}
	for _, m := range migs {
		if applied[m.Version] {
			continue
		}
		if err := applyOne(ctx, db, d, m, now()); err != nil {
			return fmt.Errorf("migrate %s: %04d_%s: %w", d.name, m.Version, m.Name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, db *sql.DB) (map[int]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = true
	}
	return out, rows.Err()
}

func applyOne(ctx context.Context, db *sql.DB, d dialect, m Migration, at time.Time) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	stmts := []string{m.SQL}
	if d.split {
		stmts = splitStatements(m.SQL)
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, d.insertApplied, m.Version, m.Name, at.UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return tx.Commit()
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads NNNN_name.sql files from the root of fsys. Versions
// must start at 1 and have no gaps, so that two branches adding the same
// number collide loudly in review instead of silently skipping one.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%w: read dir: %v", ErrBadMigration, err)
	}
	var migs []Migration
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("%w: unexpected directory %q", ErrBadMigration, e.Name())
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: file %q is not NNNN_name.sql", ErrBadMigration, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMigration, err)
		}
		migs = append(migs, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	for i, m := range migs {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%w: expected version %04d, found %04d_%s", ErrBadMigration, i+1, m.Version, m.Name)
		}
	}
	return migs, nil
}

// MigrateFS applies a migration set other than the main store's to db: the
// schema of a component that keeps its own database (ktrace's traces.db, or
// its MySQL schema). files holds NNNN_name.sql at its root, numbered as
// Migrate's are; the history is kept in db's own schema_migrations, so db
// must not be the main store. engine is "sqlite" or "mysql".
//
// MySQL commits DDL implicitly, so there a failed migration can leave the
// statements before the failing one applied; write MySQL migrations so
// that each file is one statement or safe to re-run (IF NOT EXISTS).
func MigrateFS(ctx context.Context, db *sql.DB, engine string, files fs.FS) error {
	d, err := dialectOf(engine)
	if err != nil {
		return err
	}
	d.files = files
	return migrate(ctx, db, d, time.Now)
}

// migrateLockWait bounds the wait for another replica's migration.
const migrateLockWait = 120

// lockMySQL takes the database's migration lock (a named lock, held by
// one connection of the pool until unlock).
func lockMySQL(ctx context.Context, db *sql.DB) (func() error, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(CONCAT('kplane_migrate.', DATABASE()), ?)`, migrateLockWait).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("another kplane held the migration lock for %d s", migrateLockWait)
	}
	return func() error {
		// A fresh context: release even when the caller's has ended.
		_, err := conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(CONCAT('kplane_migrate.', DATABASE()))`)
		return errors.Join(err, conn.Close())
	}, nil
}
