-- API keys: what a key may reach (scopes, comma-separated, as
-- muster.Scope.Strings writes them), who made it, when it expires, when it
-- was last used (written at most once a minute), and its revocation (the
-- row stays, so a revoked key is refused saying so).
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

-- The audit log: every change, by whom (an API key, a target or the
-- master), in which role, from which address, and what changed (a JSON
-- array of lines). It is written in the transaction of the change it
-- records, appended to only, and pruned by age.
CREATE TABLE audit (
	id         INTEGER PRIMARY KEY,
	at         INTEGER NOT NULL,
	actor      TEXT    NOT NULL,
	actor_kind TEXT    NOT NULL,
	role       TEXT    NOT NULL DEFAULT '',
	source     TEXT    NOT NULL DEFAULT '',
	action     TEXT    NOT NULL,
	object     TEXT    NOT NULL DEFAULT '',
	changes    TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, id);

-- The jobs and targets an entry concerns, to find entries by either.
CREATE TABLE audit_subjects (
	audit_id INTEGER NOT NULL REFERENCES audit (id) ON DELETE CASCADE,
	kind     TEXT    NOT NULL,
	name     TEXT    NOT NULL,
	PRIMARY KEY (audit_id, kind, name)
);
CREATE INDEX audit_subjects_name ON audit_subjects (kind, name, audit_id);
