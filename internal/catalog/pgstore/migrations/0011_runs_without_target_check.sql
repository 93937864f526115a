-- A run is inserted without its target's row checked: an upload of 500
-- finished runs spent about a third of its insert in that foreign key's
-- trigger (a lookup of the target's row, locked FOR KEY SHARE, for each
-- run). The check cannot fail: the target is the one whose certificate
-- authenticated the upload, and targets' rows are never deleted (a deleted
-- target keeps its row as a tombstone), as migration 0009 says of the
-- instructions. SQLite keeps its foreign keys, whose checks are an index
-- lookup.
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_target_id_fkey;
