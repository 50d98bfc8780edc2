-- One row per span, clustered by trace ID: a lookup reads one contiguous
-- key range whatever the trace's age. Times are Unix nanoseconds.
CREATE TABLE spans (
	trace_id  BLOB    NOT NULL,
	span_id   BLOB    NOT NULL,
	parent_id BLOB    NOT NULL,
	service   TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	start     INTEGER NOT NULL,
	duration  INTEGER NOT NULL,
	error     INTEGER NOT NULL,
	details   BLOB    NOT NULL,
	PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;

-- Search by service (and operation) in a time range, newest first; search
-- without a service and retention use start alone.
CREATE INDEX spans_service_start ON spans (service, start);
CREATE INDEX spans_service_name_start ON spans (service, name, start);
CREATE INDEX spans_start ON spans (start);

-- Services and operations, kept at ingest so that listing them does not
-- scan spans; last_seen (the latest span start) lets retention drop them.
CREATE TABLE operations (
	service   TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	last_seen INTEGER NOT NULL,
	PRIMARY KEY (service, name)
) WITHOUT ROWID;

-- Call edges counted at ingest, per hour of the child span's start (Unix
-- seconds).
CREATE TABLE dependencies (
	hour   INTEGER NOT NULL,
	parent TEXT    NOT NULL,
	child  TEXT    NOT NULL,
	calls  INTEGER NOT NULL,
	errors INTEGER NOT NULL,
	PRIMARY KEY (hour, parent, child)
) WITHOUT ROWID;

-- Trace IDs whose spans retention removed, kept RememberExpired longer so
-- that a lookup can answer "expired" rather than "unknown".
CREATE TABLE expired_traces (
	trace_id   BLOB    NOT NULL PRIMARY KEY,
	expired_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX expired_traces_at ON expired_traces (expired_at);
