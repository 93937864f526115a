-- Step output, stored in chunks as steps write it, each appended to its
-- attempt's output: a run's output is written once, and uploaded once,
-- never again with every change to the run. offset is where a chunk starts
-- in its attempt's output; id orders the chunks for upload, and
-- runs.uploaded_output is the last one the master holds.
CREATE TABLE output (
	id      INTEGER PRIMARY KEY,
	run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL, -- index in the run's steps
	offset  INTEGER NOT NULL,
	data    TEXT    NOT NULL
);
CREATE INDEX output_run ON output (run_id, id);
ALTER TABLE runs ADD COLUMN uploaded_output INTEGER NOT NULL DEFAULT 0;
