-- Before migration 0006 a run's output was kept in the run itself, in the
-- output of each of its steps (runs.data), and uploaded with it. Since,
-- a run is uploaded without its steps' output, which goes in chunks from
-- the output table: the output of a run spooled before the upgrade and
-- not yet uploaded would never reach the master. It is moved to the
-- output table, in chunks of at most 262,144 characters (1 MiB at most,
-- as the target stores them), and taken out of the run. The output of a
-- run the master already holds counts as uploaded.
WITH RECURSIVE
attempts (run_id, attempt, output) AS (
	SELECT r.run_id, CAST(s.key AS INTEGER), json_extract(s.value, '$.output')
	FROM runs r, json_each(r.data, '$.steps') s
	WHERE json_type(s.value, '$.output') = 'text' AND json_extract(s.value, '$.output') <> ''
),
pieces (run_id, attempt, start, offset, data) AS (
	SELECT run_id, attempt, 1, 0, substr(output, 1, 262144) FROM attempts
	UNION ALL
	SELECT p.run_id, p.attempt, p.start + 262144, p.offset + length(CAST(p.data AS BLOB)), substr(a.output, p.start + 262144, 262144)
	FROM pieces p JOIN attempts a ON a.run_id = p.run_id AND a.attempt = p.attempt
	WHERE p.start + 262144 <= length(a.output)
)
INSERT INTO output (run_id, attempt, offset, data)
SELECT run_id, attempt, offset, data FROM pieces ORDER BY run_id, attempt, start;

UPDATE runs SET data = json_set(data, '$.steps',
	json((SELECT json_group_array(json_set(s.value, '$.output', '') ORDER BY s.key) FROM json_each(runs.data, '$.steps') s)))
WHERE json_type(data, '$.steps') = 'array';

UPDATE runs SET uploaded_output = MAX(uploaded_output, (SELECT COALESCE(MAX(id), 0) FROM output WHERE output.run_id = runs.run_id))
WHERE revision <= uploaded_revision;
