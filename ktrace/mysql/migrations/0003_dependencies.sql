CREATE TABLE IF NOT EXISTS dependencies (
	hour   BIGINT       NOT NULL,
	parent VARCHAR(255) NOT NULL,
	child  VARCHAR(255) NOT NULL,
	calls  BIGINT       NOT NULL,
	errors BIGINT       NOT NULL,
	PRIMARY KEY (hour, parent, child)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
