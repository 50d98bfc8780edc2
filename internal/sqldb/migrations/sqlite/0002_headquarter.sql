-- Autoscaler policies and decisions (package headquarter).
-- Times are Unix nanoseconds (INTEGER), as in 0001.

CREATE TABLE scaling_policies (
	service    TEXT    PRIMARY KEY,
	-- The policy as JSON (headquarter.Policy's JSON form, defaults filled).
	policy     TEXT    NOT NULL,
	-- Increases with every write (headquarter keeps it so): readers cache
	-- the list while (COUNT(*), MAX(updated_at)) is unchanged.
	updated_at INTEGER NOT NULL
);

CREATE INDEX scaling_policies_updated ON scaling_policies(updated_at);

CREATE TABLE scaling_decisions (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	service     TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	action      TEXT    NOT NULL,
	guard       TEXT    NOT NULL DEFAULT '',
	outcome     TEXT    NOT NULL DEFAULT '',
	-- The whole decision as JSON (headquarter.Decision): inputs with their
	-- ages, votes, guard, reason and outcome.
	explanation TEXT    NOT NULL
);

-- Newest first, for one service and for all.
CREATE INDEX scaling_decisions_service_at ON scaling_decisions(service, at DESC, id DESC);
CREATE INDEX scaling_decisions_at ON scaling_decisions(at DESC, id DESC);
