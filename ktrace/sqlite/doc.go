// Package sqlite is the embedded ktrace span store: one SQLite file
// (traces.db, apart from the main kplane.db) in WAL mode, one writer
// connection and a few readers.
//
// Schema (migrations/, applied with sqldb.MigrateFS):
//
//   - chunks holds the spans of one trace that one batch wrote, as one
//     compact blob (chunk.go: a string table for the names and tag keys
//     the spans repeat, each distinct process once, tags and events per
//     span, not a row per tag). Rows are appended in id order; the
//     chunks_trace index starts with the trace ID, so a lookup reads the
//     trace's few chunks at the same cost whatever the trace's age, and
//     chunks_first serves retention. Writing a batch costs a row and two
//     index entries per trace, not a row and several index entries per
//     span: that is what sustains the ingest goal.
//   - search is an inverted index written once per batch: per service,
//     service and span name, or any service, and per hour, the batch's
//     chunks holding such spans (search.go). FindTraces walks it newest
//     first, decodes the candidate chunks and matches their spans with
//     inmem.Matches.
//   - operations and dependencies are aggregated per batch and upserted in
//     its transaction; expired_traces remembers trace IDs that retention
//     removed, for Config.RememberExpired.
//
// A batch is one transaction. It first reads the stored chunks of the
// batch's traces (a few queries per batch), which drops retried spans and
// finds the other half of a dependency edge when a parent and its child
// arrive in different batches. Retention is Expire, called by
// ktrace.Retainer: it deletes the chunks whose spans are all older than the
// cutoff and rewrites those that straddle it. Durability: commits survive
// a crash of the process (WAL, synchronous=NORMAL); an operating-system
// crash or power loss can lose the last commits before a checkpoint.
//
// The package must not be the main store: it owns only the span schema.
// AppendDetails and DecodeDetails are the per-span blob format that the
// MySQL store keeps.
package sqlite
