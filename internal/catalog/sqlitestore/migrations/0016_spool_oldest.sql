-- When the oldest run a target had not yet uploaded was recorded in its
-- spool, by the master's clock (the poll's time less the age the target
-- reported); NULL when its spool was empty, or the target does not report
-- it (protocol 2 before the field). The master's metrics read it.
ALTER TABLE targets ADD COLUMN spool_oldest_at INTEGER;

-- What a run held before its last update: its status, and whether a step
-- of it had started. The update that stores a revision writes them from
-- the row it replaces and returns them, so that the master tells the
-- upload that ended a run, or brought its first step, without reading
-- the runs first. NULL on a row never updated.
ALTER TABLE runs ADD COLUMN prior_status TEXT;
ALTER TABLE runs ADD COLUMN prior_started INTEGER;
