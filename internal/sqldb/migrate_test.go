package sqldb

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func openTemp(t *testing.T) *sql.DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appliedRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var n string
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestOpenSettings(t *testing.T) {
	db := openTemp(t)
	var mode string
	var fk, busy int
	ctx := t.Context()
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || fk != 1 || busy != busyTimeoutMillis {
		t.Fatalf("journal_mode=%q foreign_keys=%d busy_timeout=%d, want wal, 1, %d", mode, fk, busy, busyTimeoutMillis)
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	// Data dirs are user-chosen; '?' or '#' in them must not be read as DSN syntax.
	path := filepath.Join(t.TempDir(), "my data?#x", "k.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at %q", path)
	}
}

func TestMigrateFreshAndRerun(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	migs, err := Migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	got := appliedRows(t, db)
	if len(got) != len(migs) || got[0] != "auth" {
		t.Fatalf("applied %v, want the %d embedded migrations starting with auth", got, len(migs))
	}
	// The auth tables exist and enforce their foreign keys.
	if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at) VALUES (x'00', 'nobody', 'c', 0, 0)`); err == nil {
		t.Fatal("session for a missing user was accepted: foreign keys are off")
	}

	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if again := appliedRows(t, db); len(again) != len(got) {
		t.Fatalf("second run changed schema_migrations: %v -> %v", got, again)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	err := Migrate(ctx, db)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Migrate = %v, want ErrSchemaTooNew", err)
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	db := openTemp(t)
	d := sqliteDialect()
	d.files = fstest.MapFS{
		"0001_good.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"0002_bad.sql":  {Data: []byte(`CREATE TABLE b (x INTEGER); THIS IS NOT SQL;`)},
	}
	err := migrate(t.Context(), db, d, time.Now)
	if err == nil {
		t.Fatal("broken migration applied without error")
	}
	if got := appliedRows(t, db); len(got) != 1 || got[0] != "good" {
		t.Fatalf("applied %v, want only [good]", got)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_master WHERE name = 'b'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("table b from the failed migration survived: it did not run in a transaction")
	}
}

func TestLoadMigrationsRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
	}{
		{"gap", fstest.MapFS{"0001_a.sql": {}, "0003_c.sql": {}}},
		{"duplicate version", fstest.MapFS{"0001_a.sql": {}, "0001_b.sql": {}}},
		{"bad name", fstest.MapFS{"1_a.sql": {}}},
		{"not sql", fstest.MapFS{"0001_a.txt": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadMigrations(tt.files); !errors.Is(err, ErrBadMigration) {
				t.Fatalf("loadMigrations = %v, want ErrBadMigration", err)
			}
		})
	}
}

func TestMigrateFSKeepsItsOwnHistory(t *testing.T) {
	// A component's own database (ktrace's traces.db) with its own set.
	db := openTemp(t)
	files := fstest.MapFS{
		"0001_spans.sql": {Data: []byte(`CREATE TABLE spans (x INTEGER);`)},
	}
	for range 2 {
		if err := MigrateFS(t.Context(), db, "sqlite", files); err != nil {
			t.Fatal(err)
		}
	}
	if got := appliedRows(t, db); len(got) != 1 || got[0] != "spans" {
		t.Fatalf("applied %v, want only [spans]", got)
	}
	if err := MigrateFS(t.Context(), db, "oracle", files); err == nil {
		t.Fatal("unknown engine accepted")
	}
}
