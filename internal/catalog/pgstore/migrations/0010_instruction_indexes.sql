-- The download lists' indexes shaped so that a START fanned out to many
-- targets, and the acknowledgements that follow it, write few of their
-- pages: the same indexes as SQLite's migration 0019, which says why. A
-- master keeps up to 1,000 finished instructions a target
-- (--downloaded-max-rows); an index ordered by target (first, or within a
-- job) then has a run of entries on a page of its own for each target, and
-- a fan-out dirties one page of it for each target it reaches.
DROP INDEX IF EXISTS instructions_open;
DROP INDEX IF EXISTS instructions_job;
DROP INDEX IF EXISTS instructions_start_run;
CREATE INDEX instructions_pending ON instructions (target_id, seq) WHERE status = 'pending';
CREATE INDEX instructions_failed ON instructions (target_id) WHERE status = 'failed';
CREATE INDEX instructions_posted ON instructions (posted_at, seq);
CREATE INDEX instructions_job_starts ON instructions (job_name, expires_at) WHERE operation = 'START';
CREATE INDEX instructions_inserts ON instructions (target_id, job_name) WHERE operation = 'INSERT';
CREATE UNIQUE INDEX instructions_start_run ON instructions (run_id, target_id) WHERE run_id <> '';
