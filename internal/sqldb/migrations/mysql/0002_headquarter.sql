-- Autoscaler policies and decisions (package headquarter): the
-- MySQL/MariaDB form of sqlite/0002_headquarter.sql.

CREATE TABLE IF NOT EXISTS scaling_policies (
	service    VARCHAR(256) NOT NULL PRIMARY KEY,
	-- The policy as JSON (headquarter.Policy's JSON form, defaults filled).
	policy     MEDIUMTEXT   NOT NULL,
	-- Increases with every write: readers cache the list while
	-- (COUNT(*), MAX(updated_at)) is unchanged.
	updated_at BIGINT       NOT NULL,
	KEY scaling_policies_updated (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS scaling_decisions (
	id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	service     VARCHAR(256) NOT NULL,
	at          BIGINT       NOT NULL,
	action      VARCHAR(32)  NOT NULL,
	guard       VARCHAR(64)  NOT NULL DEFAULT '',
	outcome     VARCHAR(32)  NOT NULL DEFAULT '',
	-- The whole decision as JSON (headquarter.Decision).
	explanation MEDIUMTEXT   NOT NULL,
	KEY scaling_decisions_service_at (service, at, id),
	KEY scaling_decisions_at (at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
