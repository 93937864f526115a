-- When and by whom an enlistment token was revoked before it was used: a
-- revoked token is refused at enlistment, saying so.
ALTER TABLE enlist_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE enlist_tokens ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
