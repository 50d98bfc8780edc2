package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The engines the main store runs on.
const (
	SQLite = "sqlite"
	MySQL  = "mysql" // MySQL or MariaDB
)

// Engine tells which engine db talks to, from its driver: MySQL for
// go-sql-driver/mysql, SQLite otherwise.
func Engine(db *sql.DB) string {
	if strings.Contains(strings.ToLower(reflect.TypeOf(db.Driver()).String()), "mysql") {
		return MySQL
	}
	return SQLite
}

// Dialect writes the few statements that differ between the engines.
// Stores take it from their *sql.DB (DialectOf) and keep the rest of
// their SQL common to both.
type Dialect struct{ engine string }

// DialectOf is the dialect of db's engine.
func DialectOf(db *sql.DB) Dialect { return Dialect{engine: Engine(db)} }

// Engine is SQLite or MySQL.
func (d Dialect) Engine() string { return d.engine }

// Upsert is the clause after an INSERT's VALUES that turns a clash on the
// unique key keys into an update; the SET list follows it, written with
// Inserted for the values the INSERT proposed:
//
//	INSERT INTO t (k, v) VALUES (?, ?) <Upsert("k")> v = <Inserted("v")>
func (d Dialect) Upsert(keys ...string) string {
	if d.engine == MySQL {
		return "ON DUPLICATE KEY UPDATE"
	}
	return "ON CONFLICT(" + strings.Join(keys, ", ") + ") DO UPDATE SET"
}

// Inserted names the value an upserting INSERT proposed for col.
func (d Dialect) Inserted(col string) string {
	if d.engine == MySQL {
		return "VALUES(" + col + ")"
	}
	return "excluded." + col
}

// InsertIgnore starts an INSERT that skips a row clashing with a unique
// key (RowsAffected then counts only the rows inserted).
func (d Dialect) InsertIgnore() string {
	if d.engine == MySQL {
		return "INSERT IGNORE INTO"
	}
	return "INSERT OR IGNORE INTO"
}

// Greatest is the function returning the largest of its arguments.
func (d Dialect) Greatest() string {
	if d.engine == MySQL {
		return "GREATEST"
	}
	return "MAX"
}

// mysqlMaxConns bounds one replica's connections to the shared server.
const mysqlMaxConns = 16

// OpenMySQL connects to the MySQL or MariaDB database named by dsn (the
// go-sql-driver/mysql form, user:password@tcp(host:3306)/kplane) and
// checks that it answers. The caller closes the returned DB. A nil logger
// discards. The DSN may hold a password: errors and logs name the
// database, never the DSN.
//
// Settings, and why:
//   - clientFoundRows: an UPDATE reports the rows it matched, as SQLite
//     does, not only those it changed.
//   - at most 16 connections: several replicas share the server.
//   - connections recycled after 5 minutes: a server or proxy restart
//     does not leave the pool holding dead connections for long.
func OpenMySQL(ctx context.Context, dsn string, logger *slog.Logger) (*sql.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The parser's message never repeats the password.
		return nil, fmt.Errorf("open mysql: malformed DSN: %w", err)
	}
	cfg.ClientFoundRows = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysql %s: %w", cfg.DBName, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(mysqlMaxConns)
	db.SetMaxIdleConns(mysqlMaxConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mysql database %q at %s: %w", cfg.DBName, cfg.Addr, err)
	}
	logger.Debug("mysql opened", "addr", cfg.Addr, "db", cfg.DBName)
	return db, nil
}
