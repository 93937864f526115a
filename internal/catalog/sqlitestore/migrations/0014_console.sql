-- The web console's sign-in. A login link is a single-use secret an admin
-- prints (`muster login-link`); opening it starts a session. Both are
-- stored by the hash of their secret only, belong to the API key that made
-- them (a session acts as that key, in the role it was given, never above
-- the key's own) and expire. A session is refused once its key is revoked,
-- expires or is deleted, since every check reads the key's row with it.
CREATE TABLE console_links (
	id         INTEGER PRIMARY KEY,
	hash       TEXT    NOT NULL UNIQUE,
	key_id     INTEGER NOT NULL,
	role       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);
CREATE INDEX console_links_expires ON console_links (expires_at);

CREATE TABLE console_sessions (
	id         INTEGER PRIMARY KEY,
	hash       TEXT    NOT NULL UNIQUE,
	key_id     INTEGER NOT NULL,
	role       TEXT    NOT NULL,
	source     TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
