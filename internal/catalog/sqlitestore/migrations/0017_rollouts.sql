-- Rollouts: a job started in waves, driven by the master. current_wave is
-- the last wave posted; whoever moves it on (a guarded update) posts the
-- next wave, so a wave is posted once however many masters release it.
-- request holds what each START carries (env, step, expiry, who asked).
CREATE TABLE rollouts (
	id           INTEGER PRIMARY KEY,
	job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	job_name     TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	reason       TEXT    NOT NULL DEFAULT '',
	batch        TEXT    NOT NULL,
	wave_size    INTEGER NOT NULL,
	waves        INTEGER NOT NULL,
	max_failures INTEGER NOT NULL,
	current_wave INTEGER NOT NULL,
	request      TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	created_by   TEXT    NOT NULL,
	ended_at     INTEGER
);
CREATE INDEX rollouts_job ON rollouts (job_id, id);
CREATE INDEX rollouts_running ON rollouts (job_name) WHERE state = 'running';

-- The targets of a rollout, each with its wave and the id its run will
-- have, chosen when the rollout is created.
CREATE TABLE rollout_targets (
	rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	position   INTEGER NOT NULL,
	wave       INTEGER NOT NULL,
	target_id  INTEGER NOT NULL,
	target     TEXT    NOT NULL,
	run_id     TEXT    NOT NULL,
	PRIMARY KEY (rollout_id, position)
);
