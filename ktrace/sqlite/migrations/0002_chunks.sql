-- Spans are stored in chunks: one row per trace per written batch, the
-- spans in one blob (see chunk.go). Ingest writes a row and two index
-- entries per trace instead of a row and three index entries per span.
-- Nothing had been released with the per-span table, so its rows are not
-- carried over.
DROP TABLE spans;

-- Appended in id order; chunks_trace finds a trace's chunks, so a lookup
-- costs the same whatever the trace's age. first and last are the
-- earliest and latest span start in the chunk (Unix ns); n its spans.
CREATE TABLE chunks (
	id       INTEGER PRIMARY KEY,
	trace_id BLOB    NOT NULL,
	first    INTEGER NOT NULL,
	last     INTEGER NOT NULL,
	n        INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
CREATE INDEX chunks_trace ON chunks (trace_id);
-- Retention.
CREATE INDEX chunks_first ON chunks (first);

-- Where a search looks, newest first: per written batch and hour of span
-- start, one row for any service (service and name ''), one per service
-- (name '') and one per service and non-empty span name, listing the
-- batch's chunks holding such spans (see search.go). first and last are
-- the earliest and latest start of those spans: within one hour, which
-- bounds the scan. chunk is the lowest chunk ID listed. The rows only
-- point at candidates: spans are matched against the query after
-- decoding.
CREATE TABLE search (
	service TEXT    NOT NULL,
	name    TEXT    NOT NULL,
	last    INTEGER NOT NULL,
	chunk   INTEGER NOT NULL,
	first   INTEGER NOT NULL,
	chunks  BLOB    NOT NULL,
	PRIMARY KEY (service, name, last, chunk)
) WITHOUT ROWID;
