-- The jobs each target was ever sent (by an INSERT). A target may upload
-- runs of these jobs only; the download list, which is pruned, cannot say.
CREATE TABLE sent_jobs (
	target_id INTEGER NOT NULL REFERENCES targets (id),
	job_name  TEXT    NOT NULL,
	PRIMARY KEY (target_id, job_name)
);
INSERT INTO sent_jobs (target_id, job_name)
	SELECT DISTINCT target_id, job_name FROM instructions WHERE operation = 'INSERT'
	ON CONFLICT DO NOTHING;

-- A START's run id and expiry, to count the runs a job has under way for
-- max_parallel_targets.
ALTER TABLE instructions ADD COLUMN run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE instructions ADD COLUMN expires_at INTEGER;

-- The SHA-256 of the public key a certificate certifies: a renewal retried
-- after a lost reply, with the same new key, is recognised.
ALTER TABLE certs ADD COLUMN key_hash TEXT NOT NULL DEFAULT '';
