-- Before migration 0006 a run's output was kept in the run itself, in the
-- output of each of its steps (runs.data), and uploaded with it. Since,
-- a run is uploaded without its steps' output, which goes in chunks from
-- the output table: the output of a run spooled before the upgrade and
-- not yet uploaded would never reach the master. It is moved to the
-- output table, in chunks of at most 1 MiB (1,048,576 bytes), each cut
-- before a character, as the target stores them, and taken out of the
-- run. The output of a run the master already holds counts as uploaded.
--
-- The output is cut as bytes (a BLOB): SQLite's text functions end a
-- string at its first NUL, which a step's output may hold. A byte from
-- 0x80 to 0xBF continues a character: a chunk does not end before one.
WITH RECURSIVE
attempts (run_id, attempt, output) AS (
	SELECT r.run_id, CAST(s.key AS INTEGER), CAST(json_extract(s.value, '$.output') AS BLOB)
	FROM runs r, json_each(r.data, '$.steps') s
	WHERE json_type(s.value, '$.output') = 'text' AND json_extract(s.value, '$.output') <> ''
),
pieces (run_id, attempt, start, size) AS (
	SELECT run_id, attempt, 1, CASE
		WHEN 1 + 1048576 > length(output) THEN length(output)
		WHEN hex(substr(output, 1 + 1048576, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048576
		WHEN hex(substr(output, 1 + 1048575, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048575
		WHEN hex(substr(output, 1 + 1048574, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048574
		ELSE 1048573 END
	FROM attempts
	UNION ALL
	SELECT p.run_id, p.attempt, p.start + p.size, CASE
		WHEN p.start + p.size + 1048576 > length(a.output) THEN length(a.output) + 1 - (p.start + p.size)
		WHEN hex(substr(a.output, p.start + p.size + 1048576, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048576
		WHEN hex(substr(a.output, p.start + p.size + 1048575, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048575
		WHEN hex(substr(a.output, p.start + p.size + 1048574, 1)) NOT BETWEEN '80' AND 'BF' THEN 1048574
		ELSE 1048573 END
	FROM pieces p JOIN attempts a ON a.run_id = p.run_id AND a.attempt = p.attempt
	WHERE p.start + p.size <= length(a.output)
)
INSERT INTO output (run_id, attempt, offset, data)
SELECT run_id, attempt, start - 1, CAST(substr(a.output, start, size) AS TEXT)
FROM pieces JOIN attempts a USING (run_id, attempt)
ORDER BY run_id, attempt, start;

UPDATE runs SET data = json_set(data, '$.steps',
	json((SELECT json_group_array(json_set(s.value, '$.output', '') ORDER BY s.key) FROM json_each(runs.data, '$.steps') s)))
WHERE json_type(data, '$.steps') = 'array';

UPDATE runs SET uploaded_output = MAX(uploaded_output, (SELECT COALESCE(MAX(id), 0) FROM output WHERE output.run_id = runs.run_id))
WHERE revision <= uploaded_revision;
