-- Locks and pins of environments, and promotions (package hawaii), which
-- lived in the pipeline's memory before: a restart or a new leader must
-- keep a freeze, a rollback's pin and the history of promotions. Times
-- are Unix nanoseconds, 0 for "not set", as in 0001.

CREATE TABLE env_locks (
	service TEXT    NOT NULL,
	env     TEXT    NOT NULL,
	owner   TEXT    NOT NULL,
	reason  TEXT    NOT NULL,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (service, env)
) WITHOUT ROWID;

CREATE TABLE env_pins (
	service   TEXT    NOT NULL,
	env       TEXT    NOT NULL,
	build_id  INTEGER NOT NULL,
	version   TEXT    NOT NULL,
	pinned_by TEXT    NOT NULL,
	reason    TEXT    NOT NULL,
	since     INTEGER NOT NULL,
	PRIMARY KEY (service, env)
) WITHOUT ROWID;

CREATE TABLE promotions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	build_id     INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	service      TEXT    NOT NULL,
	version      TEXT    NOT NULL,
	env          TEXT    NOT NULL,
	kind         TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	requested_by TEXT    NOT NULL DEFAULT '',
	override     INTEGER NOT NULL DEFAULT 0,
	deploy_id    TEXT    NOT NULL DEFAULT '',
	run_env      TEXT    NOT NULL DEFAULT '',
	error        TEXT    NOT NULL DEFAULT '',
	started      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	ended        INTEGER NOT NULL DEFAULT 0,
	-- The kplane replica running the promotion (Promotion.Runner).
	runner       TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX promotions_build ON promotions(build_id, id);
CREATE INDEX promotions_service_env ON promotions(service, env, id);
CREATE INDEX promotions_state ON promotions(state, id);
