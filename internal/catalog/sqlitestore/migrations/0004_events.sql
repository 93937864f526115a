-- Events, operators, alerts and the notifications they send.

-- Events raised by the master or forwarded by targets: an outbox, written in
-- the transaction that records their cause. dedupe_key makes raising
-- idempotent (a repeated upload, a replayed forward, a second scan).
-- dispatched is set once the event has been matched against the alerts.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL,
	severity    INTEGER NOT NULL,
	source      TEXT    NOT NULL,                -- master | target
	target_name TEXT    NOT NULL DEFAULT '',
	job_name    TEXT    NOT NULL DEFAULT '',
	run_id      TEXT    NOT NULL DEFAULT '',
	message     TEXT    NOT NULL,
	at          INTEGER NOT NULL,                -- when it happened (raiser's clock)
	window_ms   INTEGER NOT NULL DEFAULT 0,      -- no_success only
	raised_at   INTEGER NOT NULL,                -- when the master recorded it
	dedupe_key  TEXT    NOT NULL UNIQUE,
	dispatched  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_undispatched ON events (id) WHERE dispatched = 0;
CREATE INDEX events_raised ON events (raised_at);

-- Operators (sysoperators). webhook_secret signs webhook bodies, so it is
-- stored as is; it is made when the operator gets its first webhook.
CREATE TABLE operators (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL UNIQUE,
	webhook_url    TEXT    NOT NULL DEFAULT '',
	webhook_secret TEXT    NOT NULL DEFAULT '',
	email          TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);
INSERT INTO operators (name, created_at, updated_at)
	VALUES ('MSXOperator', CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER));

-- Alerts (sysalerts): an event, optional filters, and the operators it
-- notifies (sysnotifications).
CREATE TABLE alerts (
	id           INTEGER PRIMARY KEY,
	name         TEXT    NOT NULL UNIQUE,
	event        TEXT    NOT NULL,               -- an event name, or any
	job_name     TEXT    NOT NULL DEFAULT '',
	target_name  TEXT    NOT NULL DEFAULT '',
	min_severity INTEGER NOT NULL DEFAULT 0,
	window_ms    INTEGER NOT NULL DEFAULT 0,     -- no_success only
	created_at   INTEGER NOT NULL
);
CREATE TABLE alert_operators (
	alert_id    INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	operator_id INTEGER NOT NULL REFERENCES operators (id),
	position    INTEGER NOT NULL,
	PRIMARY KEY (alert_id, operator_id)
);
CREATE INDEX alert_operators_operator ON alert_operators (operator_id);

-- One notification per (event, alert, operator, channel), retried with
-- backoff until delivered or out of attempts. Names are copied so the
-- history outlives the alert and the operator.
CREATE TABLE deliveries (
	id              INTEGER PRIMARY KEY,
	uid             TEXT    NOT NULL UNIQUE,     -- the Muster-Delivery header
	event_id        INTEGER NOT NULL REFERENCES events (id),
	alert_name      TEXT    NOT NULL,
	operator_id     INTEGER REFERENCES operators (id) ON DELETE SET NULL,
	operator_name   TEXT    NOT NULL,
	channel         TEXT    NOT NULL,            -- webhook | email | none
	address         TEXT    NOT NULL DEFAULT '',
	status          TEXT    NOT NULL DEFAULT 'pending', -- pending | delivered | failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	next_attempt_at INTEGER,                     -- pending only
	delivered_at    INTEGER,
	UNIQUE (event_id, alert_name, operator_name, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_created ON deliveries (created_at);

-- Whether the offline detector last saw each target offline, so that it
-- raises target_offline and target_online once per transition.
ALTER TABLE targets ADD COLUMN seen_offline INTEGER NOT NULL DEFAULT 0;

-- When each job last succeeded on each target, for no_success alerts.
ALTER TABLE job_targets ADD COLUMN last_success_at INTEGER;
UPDATE job_targets SET last_success_at = (
	SELECT MAX(COALESCE(r.finished_at, r.started_at)) FROM runs r JOIN jobs j ON j.name = r.job_name
	WHERE r.target_id = job_targets.target_id AND j.id = job_targets.job_id AND r.status = 'succeeded');
