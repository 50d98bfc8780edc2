package mariadbtest_test

import (
	"database/sql"
	"testing"

	"github.com/kplane/kplane/internal/mariadbtest"
)

func TestStartAndNewDatabase(t *testing.T) {
	srv := mariadbtest.Start(t)
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share DSN %s", a)
	}
	db, err := sql.Open("mysql", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version string
	if err := db.QueryRowContext(t.Context(), `SELECT VERSION()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE x (id INT PRIMARY KEY)`); err != nil {
		t.Fatalf("create table in %s (%s): %v", a, version, err)
	}
}
