-- What queries need out of a job's definition, as columns (the definition
-- is read as JSON by the master only), and who made and last changed it.
ALTER TABLE jobs ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
UPDATE jobs SET enabled = COALESCE(json_extract(definition, '$.enabled'), 0),
	scheduled = COALESCE(json_array_length(definition, '$.schedules'), 0) > 0;

-- The row of the run that is a job's last outcome on a target: runs are
-- ordered by when the master first recorded them, which no target can
-- forge (a start time in the future could).
ALTER TABLE job_targets ADD COLUMN last_run_row INTEGER;
UPDATE job_targets SET last_run_row = (SELECT r.id FROM runs r
	WHERE r.target_id = job_targets.target_id AND r.run_id = job_targets.last_run_id);

-- A START's run is posted once on its target.
CREATE UNIQUE INDEX instructions_start_run ON instructions (target_id, run_id) WHERE run_id <> '';

-- The masters serving the catalog, and where targets reach them.
CREATE TABLE masters (
	url        TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	started_at INTEGER NOT NULL,
	seen_at    INTEGER NOT NULL
);
