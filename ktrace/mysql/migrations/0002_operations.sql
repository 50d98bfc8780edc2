CREATE TABLE IF NOT EXISTS operations (
	service   VARCHAR(255) NOT NULL,
	name      VARCHAR(255) NOT NULL,
	last_seen BIGINT       NOT NULL,
	PRIMARY KEY (service, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
