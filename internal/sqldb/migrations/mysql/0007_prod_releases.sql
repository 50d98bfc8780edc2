-- The builds whose prod stage passed (package hawaii): the MySQL/MariaDB
-- form of sqlite/0007_prod_releases.sql. Written to be re-run.

CREATE TABLE IF NOT EXISTS prod_releases (
	build_id BIGINT       NOT NULL PRIMARY KEY,
	service  VARCHAR(256) NOT NULL,
	finished BIGINT       NOT NULL,
	KEY prod_releases_service (service, finished, build_id),
	CONSTRAINT prod_releases_build_fk FOREIGN KEY (build_id) REFERENCES builds(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO prod_releases (build_id, service, finished)
SELECT s.build_id, b.service, s.finished FROM build_stages s JOIN builds b ON b.id = s.build_id
WHERE s.stage = 'prod' AND s.status = 'passed';
