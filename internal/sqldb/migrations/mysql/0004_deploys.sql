-- Rolling deploy records and their steps (package signalman): the
-- MySQL/MariaDB form of sqlite/0004_deploys.sql.

CREATE TABLE IF NOT EXISTS deploys (
	seq             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	id              VARCHAR(64)  NOT NULL,
	service         VARCHAR(256) NOT NULL,
	env             VARCHAR(256) NOT NULL,
	version         VARCHAR(256) NOT NULL,
	from_version    VARCHAR(256) NOT NULL DEFAULT '',
	instances       INT          NOT NULL,
	max_surge       INT          NOT NULL,
	max_unavailable INT          NOT NULL,
	requested_by    VARCHAR(256) NOT NULL DEFAULT '',
	state           VARCHAR(16)  NOT NULL,
	error           MEDIUMTEXT   NOT NULL,
	started         BIGINT       NOT NULL,
	ended           BIGINT       NOT NULL DEFAULT 0,
	-- The kplane replica that runs (ran) the deploy.
	owner           VARCHAR(512) NOT NULL DEFAULT '',
	UNIQUE KEY deploys_id (id),
	KEY deploys_service_env (service, env, seq),
	KEY deploys_env (env, seq),
	KEY deploys_owner_state (owner, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS deploy_steps (
	deploy_id VARCHAR(64)  NOT NULL,
	n         INT          NOT NULL,
	at        BIGINT       NOT NULL,
	action    VARCHAR(32)  NOT NULL,
	instance  VARCHAR(256) NOT NULL DEFAULT '',
	version   VARCHAR(256) NOT NULL DEFAULT '',
	outcome   VARCHAR(16)  NOT NULL,
	error     MEDIUMTEXT   NOT NULL,
	took_ns   BIGINT       NOT NULL,
	PRIMARY KEY (deploy_id, n),
	CONSTRAINT deploy_steps_deploy_fk FOREIGN KEY (deploy_id) REFERENCES deploys(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
