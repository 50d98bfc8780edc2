package sqldb

import (
	"embed"
	"io/fs"
)

//go:embed migrations
var migrationFiles embed.FS

// dialect is what differs between SQL engines as far as migrations care:
// where the files are, how the bookkeeping table is created and how
// placeholders are written. A MySQL dialect adds a value here and a
// migrations/mysql directory.
type dialect struct {
	name string
	// files holds NNNN_name.sql at its root.
	files fs.FS
	// createTable creates schema_migrations if it does not exist.
	createTable string
	// insertApplied records one applied migration: version, name, applied_at.
	insertApplied string
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

// mysqlDialect has no embedded files: the main store has no MySQL
// migrations yet, and MigrateFS supplies a component's own.
func mysqlDialect() dialect {
	return dialect{
		name: "mysql",
		createTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INT          NOT NULL PRIMARY KEY,
	name       VARCHAR(255) NOT NULL,
	applied_at VARCHAR(32)  NOT NULL
)`,
		insertApplied: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
	}
}
