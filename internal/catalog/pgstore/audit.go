package pgstore

import (
	"context"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// InsertAudit appends entries, each with its subjects in the same
// statement, held to be sent with the next statement (or the COMMIT): the
// audit log costs a START no round trip of its own.
func (t *txQueries) InsertAudit(ctx context.Context, entries []muster.AuditEntry) error {
	for _, e := range entries {
		params, err := sqlstore.AuditParams(e)
		if err != nil {
			return err
		}
		kinds := make([]string, 0, len(e.Jobs)+len(e.Targets))
		names := make([]string, 0, len(e.Jobs)+len(e.Targets))
		for _, j := range e.Jobs {
			kinds, names = append(kinds, sqlstore.SubjectJob), append(names, j)
		}
		for _, tg := range e.Targets {
			kinds, names = append(kinds, sqlstore.SubjectTarget), append(names, tg)
		}
		t.tx.hold(`WITH a AS (`+sqlstore.SQLInsertAudit+`)
			INSERT INTO audit_subjects (audit_id, kind, name) SELECT a.id, s.kind, s.name FROM a, unnest($9::text[], $10::text[]) AS s(kind, name)`,
			append(params, kinds, names)...)
	}
	return nil
}
