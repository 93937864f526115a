package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Subject kinds of audit_subjects: what an entry concerns, to find it by.
const (
	SubjectJob    = "job"
	SubjectTarget = "target"
)

// SQLInsertAudit appends one entry to the audit log and returns its id.
const SQLInsertAudit = `INSERT INTO audit (at, actor, actor_kind, role, source, action, object, changes)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`

// AuditParams returns the parameters of SQLInsertAudit for e.
func AuditParams(e muster.AuditEntry) ([]any, error) {
	changes, err := json.Marshal(e.Changes)
	if err != nil {
		return nil, err
	}
	return []any{ms(e.At), e.Actor.Name, e.Actor.Kind, e.Actor.Role, e.Actor.Source, e.Action, e.Object, string(changes)}, nil
}

// InsertAudit appends entries to the audit log, each with its subjects.
func (s *Queries) InsertAudit(ctx context.Context, entries []muster.AuditEntry) error {
	ids := make([]int64, len(entries))
	for i, e := range entries {
		params, err := AuditParams(e)
		if err != nil {
			return err
		}
		if err := s.Q.QueryRow(ctx, SQLInsertAudit, params...).Scan(&ids[i]); err != nil {
			return err
		}
	}
	return s.InsertAuditSubjects(ctx, entries, ids)
}

// maxSubjectRows bounds the rows one statement inserts into audit_subjects
// (three parameters each): a START fanned out to a thousand targets is a
// few statements, not a thousand.
const maxSubjectRows = 300

// InsertAuditSubjects records the jobs and targets of entries, whose ids
// are ids: on SQLite in one statement, elsewhere in statements of up to
// maxSubjectRows rows.
func (s *Queries) InsertAuditSubjects(ctx context.Context, entries []muster.AuditEntry, ids []int64) error {
	type subject struct {
		id         int64
		kind, name string
	}
	var rows []subject
	for i, e := range entries {
		for _, j := range e.Jobs {
			rows = append(rows, subject{ids[i], SubjectJob, j})
		}
		for _, t := range e.Targets {
			rows = append(rows, subject{ids[i], SubjectTarget, t})
		}
	}
	if len(rows) > 1 && !s.D.ArrayParams {
		// One JSON parameter: see inJSON.
		list := make([][]any, len(rows))
		for i, r := range rows {
			list[i] = []any{r.id, r.kind, r.name}
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		_, err = s.Q.Exec(ctx, `INSERT INTO audit_subjects (audit_id, kind, name)
			SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1)`, string(b))
		return err
	}
	for len(rows) > 0 {
		n := min(len(rows), maxSubjectRows)
		a := &args{d: s.D}
		values := make([]string, n)
		for i, r := range rows[:n] {
			values[i] = `(` + a.add(r.id) + `, ` + a.add(r.kind) + `, ` + a.add(r.name) + `)`
		}
		if _, err := s.Q.Exec(ctx, `INSERT INTO audit_subjects (audit_id, kind, name) VALUES `+strings.Join(values, `, `), a.vals...); err != nil {
			return err
		}
		rows = rows[n:]
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
	if f.BeforeID > 0 {
		q += ` AND a.id < ` + a.add(f.BeforeID)
	}
	for kind, name := range map[string]string{SubjectJob: f.Job, SubjectTarget: f.Target} {
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
		case SubjectJob:
			e.Jobs = append(e.Jobs, name)
		case SubjectTarget:
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
