-- Executed autoscaler decisions whose orchestrator call has not returned
-- (package headquarter): the MySQL/MariaDB form of
-- sqlite/0006_decisions_in_progress.sql.

CREATE TABLE IF NOT EXISTS scaling_decisions_in_progress (
	id   BIGINT NOT NULL PRIMARY KEY,
	-- The leadership term (election revision) that started the action.
	term BIGINT NOT NULL,
	CONSTRAINT scaling_decisions_in_progress_id FOREIGN KEY (id) REFERENCES scaling_decisions(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
