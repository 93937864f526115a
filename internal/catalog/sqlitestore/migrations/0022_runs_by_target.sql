-- A target's runs, newest first (the console's target page, GET
-- /api/v1/runs of a target): read in that order by this index and stopped
-- at the page's end, where they were all read by the target's key and
-- sorted. The rowid (runs.id) ends each entry, so runs that started at
-- one instant are in the order they were recorded, as a history's cursor
-- reads them.
CREATE INDEX runs_target ON runs (target_id, started_at);
