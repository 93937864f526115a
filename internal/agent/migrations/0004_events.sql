-- Events this target raised, kept until the master has them, so that none
-- is lost while the master cannot be reached. id is never reused
-- (AUTOINCREMENT): with the enlistment, it is the event's identity on the
-- master, which keeps each once.
CREATE TABLE events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	enlistment TEXT    NOT NULL,           -- uid of the enlistment it was raised under
	name       TEXT    NOT NULL,
	severity   INTEGER NOT NULL,
	job        TEXT    NOT NULL DEFAULT '',
	run_id     TEXT    NOT NULL DEFAULT '',
	message    TEXT    NOT NULL,
	at         INTEGER NOT NULL,
	handled    INTEGER NOT NULL DEFAULT 0  -- the target deals with it by itself
);
