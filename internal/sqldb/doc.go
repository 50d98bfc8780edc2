// Package sqldb opens kplane's SQL store and brings its schema up to date.
//
// Open returns a *sql.DB for a SQLite file tuned for one writer and many
// readers; Migrate applies the versioned migrations embedded under
// migrations/<dialect>/NNNN_name.sql, each in its own transaction, and
// records them in schema_migrations. Packages that own tables (auth, and
// later hawaii, headquarter, ktrace) add their migrations here so that the
// schema has one history; the package holds no queries of its own beyond
// that bookkeeping.
//
// Only the SQLite dialect exists today. A MySQL/MariaDB dialect is added by
// writing migrations/mysql with the same version numbers and a dialect value
// for it (see dialect.go); Migrate's logic does not change.
package sqldb
