-- A history is read newest first by (started_at, id), a page at a time
-- after a cursor naming the last run of the page before: indexes in that
-- order, ending with id, let each page be read in order and stopped at its
-- end, by job (muster job history) and by target (the console's target
-- page), where the runs before the cursor were all read and sorted.
CREATE INDEX runs_history ON runs (job_name, started_at, id);
CREATE INDEX runs_target ON runs (target_id, started_at, id);
DROP INDEX IF EXISTS runs_job;
