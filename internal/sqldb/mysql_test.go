package sqldb

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kplane/kplane/internal/mariadbtest"
)

// The two engines have one schema history: the same versions with the
// same names, so a database can be told apart only by its engine.
func TestMigrationSetsMatch(t *testing.T) {
	lite, err := Migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	my, err := Migrations(MySQL)
	if err != nil {
		t.Fatal(err)
	}
	names := func(ms []Migration) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	if !reflect.DeepEqual(names(lite), names(my)) {
		t.Fatalf("sqlite migrations %v, mysql %v: write migrations/mysql for every version", names(lite), names(my))
	}
	for _, m := range my {
		for _, st := range splitStatements(m.SQL) {
			// INSERT IGNORE (a backfill) adds nothing the second time.
			if !strings.Contains(st, "IF NOT EXISTS") && !strings.HasPrefix(st, "INSERT IGNORE ") {
				t.Errorf("mysql %04d_%s: a statement without IF NOT EXISTS cannot be re-run after a partial failure:\n%s", m.Version, m.Name, st)
			}
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment; with a semicolon\nCREATE TABLE a (\n\tx INT -- inline\n);\n\n-- next\nCREATE TABLE b (y INT);\n")
	want := []string{"CREATE TABLE a (\n\tx INT -- inline\n)", "CREATE TABLE b (y INT)"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitStatements = %q, want %q", got, want)
	}
}

func TestMigrateMySQL(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := t.Context()
	db, err := OpenMySQL(ctx, srv.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if e := Engine(db); e != MySQL {
		t.Fatalf("Engine = %q, want mysql", e)
	}
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	migs, _ := Migrations(MySQL)
	if got := appliedRows(t, db); len(got) != len(migs) {
		t.Fatalf("applied %v, want %d migrations", got, len(migs))
	}
	// A migration that failed half-way (MySQL commits DDL as it goes)
	// is run again from the start.
	if _, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = ?`, migs[len(migs)-1].Version); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("re-running the last migration: %v", err)
	}
	if got := appliedRows(t, db); len(got) != len(migs) {
		t.Fatalf("after re-run applied %v", got)
	}
	// Text compares byte by byte, as on SQLite.
	for _, name := range []string{"alice", "Alice"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO users (name, role, created_at) VALUES (?, 'viewer', 0)`, name); err != nil {
			t.Fatalf("user %s: %v", name, err)
		}
	}
	// Foreign keys hold.
	if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at) VALUES (x'00', 'nobody', 'c', 0, 0)`); err == nil {
		t.Fatal("session for a missing user was accepted")
	}
	if _, err := OpenMySQL(ctx, "not a dsn", nil); err == nil {
		t.Fatal("malformed DSN accepted")
	}
}

// Replicas starting together on one database migrate it once, all of
// them successfully.
func TestMigrateMySQLConcurrently(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.NewDatabase(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			db, err := OpenMySQL(t.Context(), dsn, nil)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- Migrate(t.Context(), db)
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestEngineSQLite(t *testing.T) {
	if e := Engine(openTemp(t)); e != SQLite {
		t.Fatalf("Engine = %q, want sqlite", e)
	}
}
