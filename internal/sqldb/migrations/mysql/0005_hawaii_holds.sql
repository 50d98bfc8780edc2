-- Locks and pins of environments, and promotions (package hawaii): the
-- MySQL/MariaDB form of sqlite/0005_hawaii_holds.sql.

CREATE TABLE IF NOT EXISTS env_locks (
	service VARCHAR(256)  NOT NULL,
	env     VARCHAR(256)  NOT NULL,
	owner   VARCHAR(256)  NOT NULL,
	reason  VARCHAR(2000) NOT NULL,
	created BIGINT        NOT NULL,
	expires BIGINT        NOT NULL,
	PRIMARY KEY (service, env)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS env_pins (
	service   VARCHAR(256)  NOT NULL,
	env       VARCHAR(256)  NOT NULL,
	build_id  BIGINT        NOT NULL,
	version   VARCHAR(256)  NOT NULL,
	pinned_by VARCHAR(256)  NOT NULL,
	reason    TEXT          NOT NULL,
	since     BIGINT        NOT NULL,
	PRIMARY KEY (service, env)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS promotions (
	id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	build_id     BIGINT       NOT NULL,
	service      VARCHAR(256) NOT NULL,
	version      VARCHAR(256) NOT NULL,
	env          VARCHAR(256) NOT NULL,
	kind         VARCHAR(32)  NOT NULL,
	state        VARCHAR(32)  NOT NULL,
	requested_by VARCHAR(256) NOT NULL DEFAULT '',
	override     TINYINT      NOT NULL DEFAULT 0,
	deploy_id    VARCHAR(64)  NOT NULL DEFAULT '',
	run_env      VARCHAR(256) NOT NULL DEFAULT '',
	error        MEDIUMTEXT   NOT NULL,
	started      BIGINT       NOT NULL,
	updated      BIGINT       NOT NULL,
	ended        BIGINT       NOT NULL DEFAULT 0,
	-- The kplane replica running the promotion (Promotion.Runner).
	runner       VARCHAR(512) NOT NULL DEFAULT '',
	KEY promotions_build (build_id, id),
	KEY promotions_service_env (service, env, id),
	KEY promotions_state (state, id),
	CONSTRAINT promotions_build_fk FOREIGN KEY (build_id) REFERENCES builds(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
