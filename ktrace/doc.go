// Package ktrace stores and serves distributed traces: the span model, the
// span store contract its backends implement (ktrace/sqlite,
// ktrace/mysql, and an in-memory store for tests and small setups), and
// the ingest pipeline that turns decoded OTLP and Zipkin batches into
// durable, deduplicated spans.
//
// ktrace does not speak HTTP (web routes requests to it) and does not
// sample or export spans from applications (that is the ktrace SDK).
package ktrace
