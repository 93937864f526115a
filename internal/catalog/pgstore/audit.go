package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// InsertAudit appends entries in one pipelined batch, where the shared
// statements take a round trip each, then their subjects as the shared
// statements do (a few rows a statement).
func (t *txQueries) InsertAudit(ctx context.Context, entries []muster.AuditEntry) error {
	if len(entries) <= 1 {
		return t.Queries.InsertAudit(ctx, entries)
	}
	b := &pgx.Batch{}
	for _, e := range entries {
		params, err := sqlstore.AuditParams(e)
		if err != nil {
			return err
		}
		b.Queue(sqlstore.SQLInsertAudit, params...)
	}
	res := t.tx.SendBatch(ctx, b)
	ids := make([]int64, len(entries))
	for i := range entries {
		if err := res.QueryRow().Scan(&ids[i]); err != nil {
			res.Close()
			return classify(err)
		}
	}
	if err := res.Close(); err != nil {
		return classify(err)
	}
	return t.Queries.InsertAuditSubjects(ctx, entries, ids)
}
