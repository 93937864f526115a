-- Run output as targets upload it: in chunks each appended to one step
-- attempt's output, so that a run's output is received (and written) once,
-- not again with every revision of the run. byte_offset is the chunk's
-- place in the attempt's output as the target numbers it; a repeated chunk
-- is recognised by it and stored once. Targets of protocol 1 send whole
-- outputs, which stay in runs.steps.
CREATE TABLE run_output (
	run         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	attempt     INTEGER NOT NULL, -- index in runs.steps
	byte_offset INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	PRIMARY KEY (run, attempt, byte_offset)
);

-- What a target reports of itself at every poll besides its heartbeat: its
-- data directory is full (runs' outcomes wait in its memory), and how it
-- finds its runs' processes (cgroup or environment).
ALTER TABLE targets ADD COLUMN disk_full INTEGER NOT NULL DEFAULT 0;
ALTER TABLE targets ADD COLUMN process_tracking TEXT NOT NULL DEFAULT '';
