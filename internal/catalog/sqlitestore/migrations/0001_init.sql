-- The master's catalog. Times are Unix milliseconds (UTC).

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- Enlisted targets (SQL Server's systargetservers). A defected target keeps
-- its row, and its history, but frees its name.
CREATE TABLE targets (
	id                 INTEGER PRIMARY KEY,
	uid                TEXT    NOT NULL UNIQUE,
	name               TEXT    NOT NULL,
	state              TEXT    NOT NULL DEFAULT 'active', -- active | deleted | defected
	location           TEXT    NOT NULL DEFAULT '',
	enlisted_at        INTEGER NOT NULL,
	enlisted_by        TEXT    NOT NULL DEFAULT '',
	last_seq           INTEGER NOT NULL DEFAULT 0,        -- last sequence number posted
	last_poll_at       INTEGER,
	local_time_at_poll TEXT    NOT NULL DEFAULT '',       -- RFC 3339 as the target sent it
	time_zone          TEXT    NOT NULL DEFAULT '',
	utc_offset_minutes INTEGER NOT NULL DEFAULT 0,
	clock_skew_ms      INTEGER NOT NULL DEFAULT 0,
	poll_interval      INTEGER NOT NULL DEFAULT 60,
	version            TEXT    NOT NULL DEFAULT '',
	protocol           INTEGER NOT NULL DEFAULT 0,
	spool_depth        INTEGER NOT NULL DEFAULT 0,
	spool_dropped      INTEGER NOT NULL DEFAULT 0,
	defected_at        INTEGER
);
CREATE UNIQUE INDEX targets_live_name ON targets (name) WHERE state <> 'defected';

-- Client certificates issued to targets; a request's certificate serial
-- names its target.
CREATE TABLE certs (
	serial    TEXT    PRIMARY KEY,
	target_id INTEGER NOT NULL REFERENCES targets (id),
	issued_at INTEGER NOT NULL,
	not_after INTEGER NOT NULL
);
CREATE INDEX certs_target ON certs (target_id);

-- Single-use enlistment tokens, bound to a target name, stored hashed.
CREATE TABLE enlist_tokens (
	id          INTEGER PRIMARY KEY,
	hash        TEXT    NOT NULL UNIQUE,
	target_name TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	created_by  TEXT    NOT NULL DEFAULT '',
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER
);

-- Operator API tokens, stored hashed.
CREATE TABLE api_tokens (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	role       TEXT    NOT NULL,
	hash       TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

-- Job definitions. definition is the JSON of muster.Job without targets
-- and version.
CREATE TABLE jobs (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	version    INTEGER NOT NULL,
	definition TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

-- Where each job runs, with its last outcome there (sysjobservers).
CREATE TABLE job_targets (
	job_id           INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	target_id        INTEGER NOT NULL REFERENCES targets (id),
	last_run_id      TEXT    NOT NULL DEFAULT '',
	last_status      TEXT    NOT NULL DEFAULT '',
	last_message     TEXT    NOT NULL DEFAULT '',
	last_started_at  INTEGER,
	last_duration_ms INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (job_id, target_id)
);
CREATE INDEX job_targets_target ON job_targets (target_id);

-- Each target's download list (sysdownloadlist). seq comes from
-- targets.last_seq, incremented in the posting transaction.
CREATE TABLE instructions (
	target_id     INTEGER NOT NULL REFERENCES targets (id),
	seq           INTEGER NOT NULL,
	operation     TEXT    NOT NULL,
	job_name      TEXT    NOT NULL DEFAULT '',
	payload       TEXT    NOT NULL DEFAULT '',
	status        TEXT    NOT NULL DEFAULT 'pending',
	error         TEXT    NOT NULL DEFAULT '',
	posted_at     INTEGER NOT NULL,
	downloaded_at INTEGER,
	PRIMARY KEY (target_id, seq)
);
CREATE INDEX instructions_open ON instructions (target_id, status);
CREATE INDEX instructions_job ON instructions (job_name, target_id);

-- Runs reported by targets (sysjobhistory); steps is a JSON array of
-- step attempts.
CREATE TABLE runs (
	id          INTEGER PRIMARY KEY,
	target_id   INTEGER NOT NULL REFERENCES targets (id),
	run_id      TEXT    NOT NULL,
	job_name    TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	trigger     TEXT    NOT NULL,
	message     TEXT    NOT NULL DEFAULT '',
	revision    INTEGER NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	duration_ms INTEGER NOT NULL DEFAULT 0,
	steps       TEXT    NOT NULL,
	updated_at  INTEGER NOT NULL,
	UNIQUE (target_id, run_id)
);
CREATE INDEX runs_job ON runs (job_name, started_at);
CREATE INDEX runs_run_id ON runs (run_id);

-- Operator start requests by idempotency key: a retried request returns the
-- first one's answer.
CREATE TABLE starts (
	idempotency_key TEXT    PRIMARY KEY,
	request         TEXT    NOT NULL,
	response        TEXT    NOT NULL,
	created_at      INTEGER NOT NULL
);
