-- An alert can be disabled (sysalerts.enabled) without losing its
-- definition: a disabled alert matches no event and watches no job.
ALTER TABLE alerts ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
