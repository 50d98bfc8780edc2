CREATE TABLE IF NOT EXISTS expired_traces (
	trace_id   BINARY(16) NOT NULL PRIMARY KEY,
	expired_at BIGINT     NOT NULL,
	KEY expired_traces_at (expired_at)
) ENGINE=InnoDB
