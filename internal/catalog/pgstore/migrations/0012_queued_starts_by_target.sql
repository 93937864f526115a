-- A rollout's targets are read with whether a START of the job is held
-- back for each (max_parallel_targets): found by job and target, not by a
-- walk of every START the job holds back.
CREATE INDEX IF NOT EXISTS queued_starts_target ON queued_starts (job_id, target_id);
