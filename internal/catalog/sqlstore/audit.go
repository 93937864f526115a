package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Subject kinds of audit_subjects: what an entry concerns, to find it by.
const (
	subjectJob    = "job"
	subjectTarget = "target"
)

// SQLInsertAudit appends one entry to the audit log and returns its id.
const SQLInsertAudit = `INSERT INTO audit (at, actor, actor_kind, role, source, action, object, changes)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`

// SQLInsertAuditSubject records a job or target an entry concerns.
const SQLInsertAuditSubject = `INSERT INTO audit_subjects (audit_id, kind, name) VALUES ($1, $2, $3)`

// AuditParams returns the parameters of SQLInsertAudit for e.
func AuditParams(e muster.AuditEntry) ([]any, error) {
	changes, err := json.Marshal(e.Changes)
	if err != nil {
		return nil, err
	}
	return []any{ms(e.At), e.Actor.Name, e.Actor.Kind, e.Actor.Role, e.Actor.Source, e.Action, e.Object, string(changes)}, nil
}

// AuditSubjects returns the (kind, name) pairs an entry concerns.
func AuditSubjects(e muster.AuditEntry) [][2]string {
	var out [][2]string
	for _, j := range e.Jobs {
		out = append(out, [2]string{subjectJob, j})
	}
	for _, t := range e.Targets {
		out = append(out, [2]string{subjectTarget, t})
	}
	return out
}

// InsertAudit appends entries to the audit log, each with its subjects.
func (s *Queries) InsertAudit(ctx context.Context, entries []muster.AuditEntry) error {
	for _, e := range entries {
		params, err := AuditParams(e)
		if err != nil {
			return err
		}
		var id int64
		if err := s.Q.QueryRow(ctx, SQLInsertAudit, params...).Scan(&id); err != nil {
			return err
		}
		for _, sub := range AuditSubjects(e) {
			if _, err := s.Q.Exec(ctx, SQLInsertAuditSubject, id, sub[0], sub[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// FindAudit returns audit entries, newest first, each with its jobs and
// targets.
func (s *Queries) FindAudit(ctx context.Context, f catalog.AuditFilter) ([]muster.AuditEntry, error) {
	a := &args{d: s.D}
	q := `SELECT a.id, a.at, a.actor, a.actor_kind, a.role, a.source, a.action, a.object, a.changes FROM audit a WHERE TRUE`
	if !f.Since.IsZero() {
		q += ` AND a.at >= ` + a.add(ms(f.Since))
	}
	if f.Actor != "" {
		q += ` AND a.actor = ` + a.add(f.Actor)
	}
	for kind, name := range map[string]string{subjectJob: f.Job, subjectTarget: f.Target} {
		if name != "" {
			q += ` AND EXISTS (SELECT 1 FROM audit_subjects s WHERE s.audit_id = a.id AND s.kind = ` + a.add(kind) +
				` AND s.name = ` + a.add(name) + `)`
		}
	}
	q += ` ORDER BY a.id DESC LIMIT ` + a.add(limitOr(f.Limit, 100))
	entries, err := collect(ctx, s.Q, func(r Rows) (e muster.AuditEntry, err error) {
		var at int64
		var changes string
		if err = r.Scan(&e.ID, &at, &e.Actor.Name, &e.Actor.Kind, &e.Actor.Role, &e.Actor.Source, &e.Action, &e.Object, &changes); err != nil {
			return e, err
		}
		e.At, e.Jobs, e.Targets = fromMS(at), []string{}, []string{}
		if err := json.Unmarshal([]byte(changes), &e.Changes); err != nil {
			return e, fmt.Errorf("audit entry %d: changes: %w", e.ID, err)
		}
		return e, nil
	}, q, a.vals...)
	if err != nil || len(entries) == 0 {
		return entries, err
	}
	index := make(map[int64]int, len(entries))
	ids := make([]int64, len(entries))
	for i, e := range entries {
		index[e.ID], ids[i] = i, e.ID
	}
	a = &args{d: s.D}
	rows, err := s.Q.Query(ctx, `SELECT audit_id, kind, name FROM audit_subjects WHERE `+in(a, "audit_id", ids)+` ORDER BY name`, a.vals...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind, name string
		if err := rows.Scan(&id, &kind, &name); err != nil {
			return nil, err
		}
		e := &entries[index[id]]
		switch kind {
		case subjectJob:
			e.Jobs = append(e.Jobs, name)
		case subjectTarget:
			e.Targets = append(e.Targets, name)
		}
	}
	return entries, rows.Err()
}

// PruneAudit deletes the entries made before a time, with their subjects.
func (s *Queries) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	if _, err := s.Q.Exec(ctx, `DELETE FROM audit_subjects WHERE audit_id IN (SELECT id FROM audit WHERE at < $1)`, ms(before)); err != nil {
		return 0, err
	}
	return s.Q.Exec(ctx, `DELETE FROM audit WHERE at < $1`, ms(before))
}
