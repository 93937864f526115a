-- The subjects of audit entries kept in one b-tree ordered by their
-- primary key (WITHOUT ROWID), rather than in a table beside an index of
-- that key: every commit that writes an audit entry writes one page fewer.
-- Same columns, same order, same key; the index by name is made again.
CREATE TABLE audit_subjects_by_entry (
	audit_id INTEGER NOT NULL REFERENCES audit (id) ON DELETE CASCADE,
	kind     TEXT    NOT NULL,
	name     TEXT    NOT NULL,
	PRIMARY KEY (audit_id, kind, name)
) WITHOUT ROWID;
INSERT INTO audit_subjects_by_entry (audit_id, kind, name) SELECT audit_id, kind, name FROM audit_subjects;
DROP TABLE audit_subjects;
ALTER TABLE audit_subjects_by_entry RENAME TO audit_subjects;
CREATE INDEX audit_subjects_name ON audit_subjects (kind, name, audit_id);
