-- The cleanups on every start and token creation delete by time; without
-- these they scan the whole table.
CREATE INDEX starts_created ON starts (created_at);
CREATE INDEX enlist_tokens_expires ON enlist_tokens (expires_at);
