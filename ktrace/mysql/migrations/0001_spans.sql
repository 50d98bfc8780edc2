-- Spans partitioned by day (days since the Unix epoch of the span's
-- start): retention drops a whole day's partition instead of deleting
-- rows one by one. The primary key must include the partition column; it
-- still starts with the trace ID, so a lookup is one key-range probe per
-- partition, whatever the trace's age. p_min is an empty anchor: the store
-- adds a partition per day ahead of time.
CREATE TABLE IF NOT EXISTS spans (
	trace_id  BINARY(16)   NOT NULL,
	span_id   BINARY(8)    NOT NULL,
	day       INT          NOT NULL,
	parent_id BINARY(8)    NOT NULL,
	service   VARCHAR(255) NOT NULL,
	name      VARCHAR(255) NOT NULL,
	start     BIGINT       NOT NULL,
	duration  BIGINT       NOT NULL,
	error     BOOLEAN      NOT NULL,
	details   MEDIUMBLOB   NOT NULL,
	PRIMARY KEY (trace_id, span_id, day),
	KEY spans_service_start (service, start),
	KEY spans_service_name_start (service, name, start),
	KEY spans_start (start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
PARTITION BY RANGE (day) (PARTITION p_min VALUES LESS THAN (0))
