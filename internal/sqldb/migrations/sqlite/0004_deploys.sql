-- Rolling deploy records and their steps (package signalman). Times are
-- Unix nanoseconds, 0 for "not set", as in 0001.

CREATE TABLE deploys (
	-- seq orders deploys by creation; id is signalman's "d-…" name.
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT    NOT NULL UNIQUE,
	service         TEXT    NOT NULL,
	env             TEXT    NOT NULL,
	version         TEXT    NOT NULL,
	from_version    TEXT    NOT NULL DEFAULT '',
	instances       INTEGER NOT NULL,
	max_surge       INTEGER NOT NULL,
	max_unavailable INTEGER NOT NULL,
	requested_by    TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL,
	error           TEXT    NOT NULL DEFAULT '',
	started         INTEGER NOT NULL,
	ended           INTEGER NOT NULL DEFAULT 0,
	-- The kplane replica that runs (ran) the deploy: on restart it marks
	-- its own deploys that were still running as failed.
	owner           TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX deploys_service_env ON deploys(service, env, seq);
CREATE INDEX deploys_env ON deploys(env, seq);
CREATE INDEX deploys_owner_state ON deploys(owner, state);

CREATE TABLE deploy_steps (
	deploy_id TEXT    NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
	n         INTEGER NOT NULL,
	at        INTEGER NOT NULL,
	action    TEXT    NOT NULL,
	instance  TEXT    NOT NULL DEFAULT '',
	version   TEXT    NOT NULL DEFAULT '',
	outcome   TEXT    NOT NULL,
	error     TEXT    NOT NULL DEFAULT '',
	took_ns   INTEGER NOT NULL,
	PRIMARY KEY (deploy_id, n)
) WITHOUT ROWID;
