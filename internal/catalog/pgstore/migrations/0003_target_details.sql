-- Why a target left, kept with its row (and its history) so that
-- `muster target show` can say it: defected_how is 'defected' (the target
-- defected itself), 'deleted' (deleted on the master; set when the delete
-- posts its DEFECT, kept when the target collects it) or 'forced' (deleted
-- with --force, no DEFECT posted); defected_by is who did it, as the audit
-- log names the actor ("target web2", "key alice (admin)").
ALTER TABLE targets ADD COLUMN defected_how TEXT NOT NULL DEFAULT '';
ALTER TABLE targets ADD COLUMN defected_by TEXT NOT NULL DEFAULT '';
CREATE INDEX targets_name ON targets (name, id);

-- What an operator says of a target besides its location (muster target
-- set NAME --description TEXT).
ALTER TABLE targets ADD COLUMN description TEXT NOT NULL DEFAULT '';
