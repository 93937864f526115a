package pgstore

import (
	"context"

	"github.com/musterhq/muster/internal/catalog"
)

// LockAPIKeys takes every API key's row, in id order, then reads them: two
// masters revoking the last two admin keys at once do so in turn, and the
// second sees the first's revocation.
func (t *txQueries) LockAPIKeys(ctx context.Context) ([]catalog.APIKeyRow, error) {
	if _, err := t.tx.Exec(ctx, `SELECT id FROM api_tokens ORDER BY id FOR UPDATE`); err != nil {
		return nil, classify(err)
	}
	return t.Queries.LockAPIKeys(ctx)
}
