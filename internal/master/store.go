package master

import (
	"context"
	"path/filepath"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

// openStore opens the catalog a configuration names: PostgreSQL for a URL,
// else SQLite in the data directory.
func openStore(ctx context.Context, cfg Config) (catalog.Store, error) {
	if isShared(cfg.Store) {
		return pgstore.Open(ctx, cfg.Store, pgstore.Options{Logger: cfg.Logger})
	}
	path := filepath.Join(cfg.DataDir, CatalogFile)
	if p, ok := sqlitePath(cfg.Store); ok && p != "" {
		path = p
	}
	return sqlitestore.Open(ctx, path)
}

// sqlitePath returns the path a "sqlite:PATH" store names.
func sqlitePath(store string) (string, bool) {
	if store == "" {
		return "", true
	}
	const prefix = "sqlite:"
	if len(store) >= len(prefix) && store[:len(prefix)] == prefix {
		return store[len(prefix):], true
	}
	return "", false
}
