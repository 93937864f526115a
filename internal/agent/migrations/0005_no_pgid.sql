-- Runs no longer record their process group: after a reboot its number may
-- belong to another process, so recovery finds a run's processes by the
-- MUSTER_RUN_ID in their environment instead.
ALTER TABLE runs DROP COLUMN pgid;
