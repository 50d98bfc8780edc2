-- Builds, stage records, test results, the audit log and webhook
-- deliveries (package hawaii). Times are Unix nanoseconds (INTEGER), 0 for
-- "not set", as in 0001.

CREATE TABLE builds (
	-- AUTOINCREMENT: IDs are never reused, and order builds by report time.
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	service      TEXT    NOT NULL,
	guid         TEXT    NOT NULL UNIQUE,
	version      TEXT    NOT NULL,
	image        TEXT    NOT NULL,
	scm_revision TEXT    NOT NULL,
	committer    TEXT    NOT NULL,
	timestamp    INTEGER NOT NULL,
	reported_at  INTEGER NOT NULL,
	reported_by  TEXT    NOT NULL,
	-- The changelog as a JSON array of hawaii.Commit.
	changelog    TEXT    NOT NULL DEFAULT '[]'
);

-- Newest first per service, keyset-paged by id (the list page).
CREATE INDEX builds_service_id ON builds(service, id);

CREATE TABLE build_stages (
	build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	stage    TEXT    NOT NULL,
	status   TEXT    NOT NULL,
	-- The steps as a JSON array of hawaii.Step.
	steps    TEXT    NOT NULL DEFAULT '[]',
	started  INTEGER NOT NULL DEFAULT 0,
	finished INTEGER NOT NULL DEFAULT 0,
	updated  INTEGER NOT NULL DEFAULT 0,
	-- Test counts, kept with the results so that a list page never counts
	-- test_cases.
	passed   INTEGER NOT NULL DEFAULT 0,
	failed   INTEGER NOT NULL DEFAULT 0,
	skipped  INTEGER NOT NULL DEFAULT 0,
	errored  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (build_id, stage)
) WITHOUT ROWID;

CREATE TABLE test_cases (
	id          INTEGER PRIMARY KEY,
	build_id    INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	stage       TEXT    NOT NULL,
	suite       TEXT    NOT NULL,
	class       TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	duration_ns INTEGER NOT NULL,
	status      TEXT    NOT NULL,
	message     TEXT    NOT NULL DEFAULT ''
);

-- A build page reads its cases by (build, stage) in insertion order.
CREATE INDEX test_cases_build ON test_cases(build_id, stage, id);

CREATE TABLE audit_events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	actor    TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	service  TEXT    NOT NULL DEFAULT '',
	build_id INTEGER NOT NULL DEFAULT 0,
	stage    TEXT    NOT NULL DEFAULT '',
	-- A JSON object.
	details  TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_service ON audit_events(service, id);
CREATE INDEX audit_events_build ON audit_events(build_id, id);
CREATE INDEX audit_events_actor ON audit_events(actor, id);
CREATE INDEX audit_events_action ON audit_events(action, id);

-- Standard Webhooks delivery IDs already applied (replay and retry guard).
CREATE TABLE webhook_deliveries (
	id TEXT    PRIMARY KEY,
	at INTEGER NOT NULL
);

CREATE INDEX webhook_deliveries_at ON webhook_deliveries(at);
