-- The builds whose prod stage passed, one row per build (package hawaii),
-- kept by the store in the transaction that writes the prod stage record.
-- The build in prod is the one whose prod stage passed last: this index
-- answers it per service by walking (service, finished) backwards,
-- however long ago the build was reported or how many builds went to prod
-- since it was first released.

CREATE TABLE prod_releases (
	build_id INTEGER PRIMARY KEY REFERENCES builds(id) ON DELETE CASCADE,
	service  TEXT    NOT NULL,
	finished INTEGER NOT NULL
);

CREATE INDEX prod_releases_service ON prod_releases(service, finished, build_id);

INSERT INTO prod_releases (build_id, service, finished)
SELECT s.build_id, b.service, s.finished FROM build_stages s JOIN builds b ON b.id = s.build_id
WHERE s.stage = 'prod' AND s.status = 'passed';
