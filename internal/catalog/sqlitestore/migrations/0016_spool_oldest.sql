-- When the oldest run a target had not yet uploaded was recorded in its
-- spool, by the master's clock (the poll's time less the age the target
-- reported); NULL when its spool was empty, or the target does not report
-- it (protocol 2 before the field). The master's metrics read it.
ALTER TABLE targets ADD COLUMN spool_oldest_at INTEGER;
