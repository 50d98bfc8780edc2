package sqldb

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed migrations
var migrationFiles embed.FS

// dialect is what differs between SQL engines as far as migrations care:
// where the files are, how the bookkeeping table is created and how a
// file is run.
type dialect struct {
	name string
	// files holds NNNN_name.sql at its root.
	files fs.FS
	// createTable creates schema_migrations if it does not exist.
	createTable string
	// insertApplied records one applied migration: version, name, applied_at.
	insertApplied string
	// split runs a file statement by statement (splitStatements).
	split bool
}

func sqliteDialect() dialect {
	sub, err := fs.Sub(migrationFiles, "migrations/sqlite")
	if err != nil {
		// fs.Sub only fails on an invalid path literal, which is a build
		// mistake, not a runtime condition.
		panic(err)
	}
	return dialect{
		name:  "sqlite",
		files: sub,
		createTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at TEXT    NOT NULL
)`,
		insertApplied: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
	}
}

// mysqlDialect runs the main store's migrations/mysql. MySQL commits DDL
// as it goes and the driver runs one statement per call, so a file's
// statements are run one by one (see splitStatements), each written to be
// safe to re-run.
func mysqlDialect() dialect {
	sub, err := fs.Sub(migrationFiles, "migrations/mysql")
	if err != nil {
		panic(err)
	}
	return dialect{
		name:  "mysql",
		files: sub,
		split: true,
		createTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INT          NOT NULL PRIMARY KEY,
	name       VARCHAR(255) NOT NULL,
	applied_at VARCHAR(32)  NOT NULL
)`,
		insertApplied: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
	}
}

func dialectOf(engine string) (dialect, error) {
	switch engine {
	case SQLite:
		return sqliteDialect(), nil
	case MySQL:
		return mysqlDialect(), nil
	}
	return dialect{}, fmt.Errorf("migrate: unknown engine %q (want sqlite or mysql)", engine)
}

// splitStatements cuts a migration file into statements: comment lines
// (starting with --) are dropped and a statement ends with ';' at the end
// of a line. Our own files follow that shape.
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if st := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}
