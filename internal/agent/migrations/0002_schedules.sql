-- The last scheduled time each schedule fired for, written in the
-- transaction that records the run, so a restart or a replay never fires
-- one scheduled time twice.
CREATE TABLE schedule_state (
	job       TEXT    NOT NULL,
	schedule  TEXT    NOT NULL,
	last_fire INTEGER NOT NULL, -- Unix nanoseconds of the scheduled time
	PRIMARY KEY (job, schedule)
);
