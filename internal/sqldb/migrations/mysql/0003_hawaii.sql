-- Builds, stage records, test results, the audit log and webhook
-- deliveries (package hawaii): the MySQL/MariaDB form of
-- sqlite/0003_hawaii.sql. Times are Unix nanoseconds, 0 for "not set".

CREATE TABLE IF NOT EXISTS builds (
	id           BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
	service      VARCHAR(256)  NOT NULL,
	guid         VARCHAR(256)  NOT NULL,
	version      VARCHAR(256)  NOT NULL,
	image        VARCHAR(1024) NOT NULL,
	scm_revision VARCHAR(256)  NOT NULL,
	committer    VARCHAR(256)  NOT NULL,
	timestamp    BIGINT        NOT NULL,
	reported_at  BIGINT        NOT NULL,
	reported_by  VARCHAR(256)  NOT NULL,
	-- The changelog as a JSON array of hawaii.Commit.
	changelog    MEDIUMTEXT    NOT NULL,
	UNIQUE KEY builds_guid (guid),
	KEY builds_service_id (service, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS build_stages (
	build_id BIGINT      NOT NULL,
	stage    VARCHAR(16) NOT NULL,
	status   VARCHAR(16) NOT NULL,
	-- The steps as a JSON array of hawaii.Step.
	steps    MEDIUMTEXT  NOT NULL,
	started  BIGINT      NOT NULL DEFAULT 0,
	finished BIGINT      NOT NULL DEFAULT 0,
	updated  BIGINT      NOT NULL DEFAULT 0,
	passed   BIGINT      NOT NULL DEFAULT 0,
	failed   BIGINT      NOT NULL DEFAULT 0,
	skipped  BIGINT      NOT NULL DEFAULT 0,
	errored  BIGINT      NOT NULL DEFAULT 0,
	PRIMARY KEY (build_id, stage),
	CONSTRAINT build_stages_build_fk FOREIGN KEY (build_id) REFERENCES builds(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS test_cases (
	id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
	build_id    BIGINT        NOT NULL,
	stage       VARCHAR(16)   NOT NULL,
	suite       TEXT          NOT NULL,
	class       TEXT          NOT NULL,
	name        TEXT          NOT NULL,
	duration_ns BIGINT        NOT NULL,
	status      VARCHAR(16)   NOT NULL,
	message     MEDIUMTEXT    NOT NULL,
	KEY test_cases_build (build_id, stage, id),
	CONSTRAINT test_cases_build_fk FOREIGN KEY (build_id) REFERENCES builds(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS audit_events (
	id       BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	at       BIGINT       NOT NULL,
	actor    VARCHAR(256) NOT NULL,
	action   VARCHAR(64)  NOT NULL,
	service  VARCHAR(256) NOT NULL DEFAULT '',
	build_id BIGINT       NOT NULL DEFAULT 0,
	stage    VARCHAR(64)  NOT NULL DEFAULT '',
	-- A JSON object.
	details  MEDIUMTEXT   NOT NULL,
	KEY audit_events_service (service, id),
	KEY audit_events_build (build_id, id),
	KEY audit_events_actor (actor, id),
	KEY audit_events_action (action, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS webhook_deliveries (
	id VARCHAR(256) NOT NULL PRIMARY KEY,
	at BIGINT       NOT NULL,
	KEY webhook_deliveries_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
