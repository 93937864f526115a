-- Target groups, live group targeting, paused targets, and starts waiting
-- for a job's max_parallel_targets.

CREATE TABLE groups (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE group_members (
	group_id  INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	target_id INTEGER NOT NULL REFERENCES targets (id),
	PRIMARY KEY (group_id, target_id)
);
CREATE INDEX group_members_target ON group_members (target_id);

-- The groups a job names; its effective targets (job_targets) are the
-- targets it names plus the members of these groups.
CREATE TABLE job_groups (
	job_id   INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	group_id INTEGER NOT NULL REFERENCES groups (id),
	PRIMARY KEY (job_id, group_id)
);
CREATE INDEX job_groups_group ON job_groups (group_id);

-- Whether the job names the target itself (as opposed to through a group).
ALTER TABLE job_targets ADD COLUMN explicit INTEGER NOT NULL DEFAULT 1;

ALTER TABLE targets ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
-- The offset the target measured at its last SYNC-TIME.
ALTER TABLE targets ADD COLUMN clock_offset_ms INTEGER;

-- STARTs held back by a job's max_parallel_targets, posted in order as runs
-- of the job end.
CREATE TABLE queued_starts (
	id         INTEGER PRIMARY KEY,
	job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	target_id  INTEGER NOT NULL REFERENCES targets (id),
	payload    TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX queued_starts_job ON queued_starts (job_id, id);

-- Counting a job's running runs, for max_parallel_targets.
CREATE INDEX runs_running ON runs (job_name) WHERE status = 'running';
