-- An alert can be disabled (sysalerts.enabled) without losing its
-- definition. changed_after_event is the last event waiting to be matched
-- when enabled last changed (0 once they all are): events up to it are
-- matched as the alert was before the change, later ones as it is now,
-- however late they are dispatched.
ALTER TABLE alerts ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN changed_after_event INTEGER NOT NULL DEFAULT 0;
