package sqlstore

import (
	"context"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// Meta returns a value of the meta table.
func (s *Queries) Meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.Q.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if noRows(err) {
		return "", false, nil
	}
	return v, err == nil, err
}

// SetMeta sets a value of the meta table.
func (s *Queries) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// InsertMeta sets key unless it is set.
func (s *Queries) InsertMeta(ctx context.Context, key, value string) (bool, error) {
	n, err := s.Q.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value)
	return n > 0, err
}

// Notify does nothing: a store that is not shared has no one to tell.
func (s *Queries) Notify(context.Context, catalog.Commit) error { return nil }

// UpsertMaster records that a master serves the catalog, unless another
// master (of another name) seen since liveSince has recorded the URL, and
// reports whether it did.
func (s *Queries) UpsertMaster(ctx context.Context, m catalog.MasterRow, liveSince time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `INSERT INTO masters (url, name, started_at, seen_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (url) DO UPDATE SET name = excluded.name, started_at = excluded.started_at, seen_at = excluded.seen_at
		WHERE masters.name = excluded.name OR masters.seen_at < $5`,
		m.URL, m.Name, ms(m.StartedAt), ms(m.SeenAt), ms(liveSince))
	return n > 0, err
}

// FindMasters returns the masters seen since seenSince, by URL.
func (s *Queries) FindMasters(ctx context.Context, seenSince time.Time) ([]catalog.MasterRow, error) {
	return collect(ctx, s.Q, func(r Rows) (m catalog.MasterRow, err error) {
		var started, seen int64
		err = r.Scan(&m.Name, &m.URL, &started, &seen)
		m.StartedAt, m.SeenAt = fromMS(started), fromMS(seen)
		return m, err
	}, `SELECT name, url, started_at, seen_at FROM masters WHERE seen_at >= $1 ORDER BY url`, ms(seenSince))
}
