// Package sqldb opens kplane's SQL store and brings its schema up to date.
//
// The main store runs on SQLite (Open: a file tuned for one writer and
// many readers, the embedded default) or on MySQL/MariaDB (OpenMySQL:
// several kplane replicas sharing one database). Migrate applies the
// versioned migrations embedded under migrations/<engine>/NNNN_name.sql —
// the same versions and names for both engines — and records them in
// schema_migrations. Packages that own tables (auth, headquarter, hawaii,
// signalman) add their migrations here, one file per engine, so that the
// schema has one history.
//
// Stores keep their SQL common to both engines; the few statements that
// differ (upserts, insert-or-ignore) come from Dialect. The package holds
// no queries of its own beyond the migrations' bookkeeping.
package sqldb
