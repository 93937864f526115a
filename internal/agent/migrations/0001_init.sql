-- A target's local store. Times are Unix milliseconds (UTC).

-- Enlistment and cursor: master_url, name, uid, epoch, cursor, master,
-- poll_interval, enlisted_at.
CREATE TABLE state (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- The master's jobs as this target holds them; only the instruction
-- applier writes here.
CREATE TABLE jobs (
	name       TEXT    PRIMARY KEY,
	version    INTEGER NOT NULL,
	definition TEXT    NOT NULL,
	updated_at INTEGER NOT NULL
);

-- The run spool: every run is written here before its process starts and
-- kept until the master holds its latest revision.
CREATE TABLE runs (
	run_id            TEXT    PRIMARY KEY,
	job               TEXT    NOT NULL,
	status            TEXT    NOT NULL,
	revision          INTEGER NOT NULL,
	uploaded_revision INTEGER NOT NULL DEFAULT 0,
	data              TEXT    NOT NULL, -- JSON of muster.Run
	pgid              INTEGER NOT NULL DEFAULT 0,
	started_at        INTEGER NOT NULL,
	rejected          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX runs_unsent ON runs (started_at) WHERE revision > uploaded_revision;
CREATE INDEX runs_running ON runs (job) WHERE status = 'running';

-- Acknowledgements not yet confirmed by the master, written with the
-- cursor in the transaction that applied the instruction.
CREATE TABLE acks (
	seq   INTEGER PRIMARY KEY,
	ok    INTEGER NOT NULL,
	error TEXT    NOT NULL DEFAULT ''
);
