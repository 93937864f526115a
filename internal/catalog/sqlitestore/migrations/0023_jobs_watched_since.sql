-- When a job last became enabled and scheduled (at its creation, or when
-- it was enabled again, or given a schedule again): a no_success alert's
-- stretch without success begins no earlier, so a job disabled for longer
-- than the alert's window does not raise no_success as soon as it is
-- enabled again. Jobs of an older catalog take their creation time, which
-- is where the stretch began before.
ALTER TABLE jobs ADD COLUMN watched_since INTEGER;
UPDATE jobs SET watched_since = created_at;
