// Package sqlite is the embedded ktrace span store: one SQLite file
// (traces.db, apart from the main kplane.db) in WAL mode, one writer
// connection and a few readers.
//
// Schema (migrations/, applied with sqldb.MigrateFS):
//
//   - spans is a WITHOUT ROWID table whose primary key is (trace_id,
//     span_id): the table is clustered by trace ID, so a lookup reads one
//     contiguous key range at the same cost whatever the trace's age, and
//     a retried span hits the key and is ignored. Everything no index
//     needs (kind, status, tags, annotations, process) is one compact blob
//     per span (see AppendDetails), not a row per tag.
//   - (service, start), (service, name, start) and (start) indexes serve
//     search newest first and retention.
//   - operations and dependencies are maintained at ingest, in the batch's
//     transaction; expired_traces remembers trace IDs that retention
//     removed, for Config.RememberExpired.
//
// A batch is one transaction with prepared statements; the blobs are
// encoded before the write lock is taken. Retention is Expire, called by
// ktrace.Retainer. Durability: commits survive a crash of the process
// (WAL, synchronous=NORMAL); an operating-system crash or power loss can
// lose the last commits before a checkpoint.
//
// The package must not be the main store: it owns only the span schema.
package sqlite
