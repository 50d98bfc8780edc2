package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/kplane/kplane/internal/sqldb"
)

// StoreConfig selects the SQL store: users and tokens, policies and
// decisions, builds and their results, promotions, locks, deploy records.
type StoreConfig struct {
	// Driver is sqlite (the file at Path: one kplane, the default) or
	// mysql (MySQL/MariaDB at DSN, shared by several kplane replicas).
	Driver string `yaml:"driver" env:"KPLANE_STORE_DRIVER"`
	// Path of the SQLite database; relative paths are inside DataDir.
	Path string `yaml:"path" env:"KPLANE_STORE_PATH"`
	// DSN is the go-sql-driver/mysql DSN of the database for driver mysql,
	// e.g. kplane:password@tcp(db:3306)/kplane (add ?tls=true for TLS with
	// the system's CAs). It may carry a password: kplane never logs it.
	// The span store (traces.mysql_dsn) needs a database of its own.
	DSN string `yaml:"dsn" env:"KPLANE_STORE_DSN"`
	// CAFile is a PEM CA bundle: set, kplane talks TLS to the store's
	// MySQL server, trusting only that CA (the DSN gets tls=kplane-store).
	CAFile string `yaml:"ca_file" env:"KPLANE_STORE_CA_FILE"`
}

// driver resolves the "" default.
func (s StoreConfig) driver() string {
	if s.Driver == "" {
		return sqldb.SQLite
	}
	return s.Driver
}

const storeDSNExample = "kplane:password@tcp(db.example:3306)/kplane"

// validate checks the store settings; traces is checked against it
// because the two schemas cannot share a MySQL database.
func (s StoreConfig) validate(traces TracesConfig) error {
	switch s.driver() {
	case sqldb.SQLite:
		if s.Path == "" {
			return errors.New("store path is empty: set store.path (or KPLANE_STORE_PATH), or store.driver: mysql with store.dsn")
		}
		if s.CAFile != "" {
			return errors.New("store.ca_file is set but store.driver is sqlite: it is the CA of a MySQL store's server; remove it, or set store.driver: mysql")
		}
		if s.DSN != "" {
			return errors.New("store.dsn is set but store.driver is sqlite: set store.driver: mysql (KPLANE_STORE_DRIVER=mysql) to use the DSN, or remove store.dsn")
		}
	case sqldb.MySQL:
		if s.DSN == "" {
			return fmt.Errorf("store driver mysql needs store.dsn (or KPLANE_STORE_DSN), e.g. %s", storeDSNExample)
		}
		cfg, err := mysqldriver.ParseDSN(s.DSN)
		if err != nil {
			// The driver's message does not echo the DSN, which may hold
			// a password.
			return fmt.Errorf("store dsn: %w; want the form %s", err, storeDSNExample)
		}
		if _, err := storeMySQL.dsn(s.DSN, s.CAFile); err != nil {
			return err
		}
		if cfg.DBName == "" {
			return fmt.Errorf("store dsn names no database: end it with /<database>, e.g. %s", storeDSNExample)
		}
		if traces.Store == "mysql" {
			if tc, err := mysqldriver.ParseDSN(traces.MySQLDSN); err == nil && tc.Addr == cfg.Addr && tc.DBName == cfg.DBName {
				return fmt.Errorf("store.dsn and traces.mysql_dsn both name database %q on %s: give the spans a database of their own (e.g. %s_traces)",
					cfg.DBName, cfg.Addr, cfg.DBName)
			}
		}
	default:
		return fmt.Errorf("store driver %q: want sqlite (one kplane) or mysql (replicas sharing MySQL/MariaDB)", s.Driver)
	}
	return nil
}

// describe names the store for people: the SQLite file, or the MySQL
// database and server (never the DSN, which may hold a password).
func (c *Config) describeStore() string {
	if c.Store.driver() == sqldb.MySQL {
		if cfg, err := mysqldriver.ParseDSN(c.Store.DSN); err == nil {
			return fmt.Sprintf("database %s on %s (MySQL/MariaDB)", cfg.DBName, cfg.Addr)
		}
		return "MySQL/MariaDB"
	}
	return c.StorePath() + " (SQLite)"
}

// openStore opens the configured SQL store and migrates it. The caller
// closes the DB.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*sql.DB, error) {
	var db *sql.DB
	var err error
	if cfg.Store.driver() == sqldb.MySQL {
		var dsn string
		if dsn, err = storeMySQL.dsn(cfg.Store.DSN, cfg.Store.CAFile); err == nil {
			db, err = sqldb.OpenMySQL(ctx, dsn, log)
		}
	} else {
		db, err = sqldb.Open(ctx, cfg.StorePath(), log)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := sqldb.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return db, nil
}
