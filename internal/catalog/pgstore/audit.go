package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// InsertAudit appends entries in two pipelined batches, the entries then
// their subjects, where the shared statements take a round trip per row.
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
	b = &pgx.Batch{}
	for i, e := range entries {
		for _, sub := range sqlstore.AuditSubjects(e) {
			b.Queue(sqlstore.SQLInsertAuditSubject, ids[i], sub[0], sub[1])
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return classify(t.tx.SendBatch(ctx, b).Close())
}
