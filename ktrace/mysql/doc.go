// Package mysql is the MySQL/MariaDB ktrace span store, for deployments
// that outgrow one node's SQLite file. It uses the SQLite store's ideas
// and blob format (sqlite.AppendDetails), with one difference that the
// seed system learned the hard way: spans are partitioned by day
// (RANGE on a day column), partitions are created ahead of time, and
// retention drops a whole expired day with ALTER TABLE ... DROP PARTITION
// rather than deleting billions of rows, which kept a hot table cold and
// fragmented.
//
// The primary key is (trace_id, span_id, day): MySQL requires the
// partition column in it, and trace_id first keeps a lookup a key-range
// probe per partition (retention days + DaysAhead probes), whatever the
// trace's age. A span's day is its start's day clamped to the partitions
// that exist.
//
// Writes lock the batch's traces (SELECT ... FOR UPDATE) so that
// dependency edges are counted once even when replicas write the two
// halves of a parent/child pair at the same moment. The database should
// hold only the span schema (migrations/, applied with sqldb.MigrateFS).
//
// Tested by the ktrace/storetest suite against a real MariaDB started by
// internal/mariadbtest.
package mysql
