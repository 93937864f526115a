package master

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
	"github.com/musterhq/muster/internal/pki"
)

// Migration is what MigrateStore copied.
type Migration struct {
	From, To      string
	Rows          map[string]int64 // by table
	CAFingerprint string
}

// MigrateStore copies a master's SQLite catalog (the catalog.db of its data
// directory, or the one its --store sqlite:PATH names) into an empty
// PostgreSQL catalog, in one transaction, with the master's CA, its key
// sealed with the secret in secretFile. The CA is read from dataDir, the
// master's data directory; "" is the catalog's directory. Targets keep
// their enlistment, sequence numbers and the catalog's epoch.
func MigrateStore(ctx context.Context, from, to, secretFile, dataDir string) (Migration, error) {
	path, err := sqlitestore.CatalogPath("--from", from)
	if err != nil {
		return Migration{}, err
	}
	dir, flag := dataDir, "--data"
	if dir == "" {
		dir, flag = filepath.Dir(path), "--from"
	}
	if !isShared(to) {
		return Migration{}, muster.Errorf(muster.EINVALID, "--to: %q is not a PostgreSQL URL such as postgres://muster@db.example.com/muster", to)
	}
	if _, err := os.Stat(path); err != nil {
		return Migration{}, muster.Wrap(muster.EINVALID, err, "--from: no catalog at %s", path)
	}
	// Checked read-only first: opened as a catalog, another file would
	// have the catalog's migrations applied to it.
	if _, err := sqlitestore.Inspect(ctx, path); err != nil {
		return Migration{}, fmt.Errorf("--from: %w", err)
	}
	secret, err := ReadSecret(secretFile)
	if err != nil {
		return Migration{}, err
	}
	certPEM, certErr := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	if err := errors.Join(certErr, keyErr); err != nil {
		if dataDir == "" && (errors.Is(certErr, fs.ErrNotExist) || errors.Is(keyErr, fs.ErrNotExist)) {
			return Migration{}, muster.Errorf(muster.EINVALID, "--data: the master's CA (%s and %s) is not beside the catalog, in %s; name the master's data directory, which holds it, with --data", pki.CACertFile, pki.CAKeyFile, dir)
		}
		return Migration{}, fmt.Errorf("%s: the master's CA (%s and %s in %s): %w", flag, pki.CACertFile, pki.CAKeyFile, dir, err)
	}
	ca, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		return Migration{}, fmt.Errorf("%s: the master's CA in %s: %w", flag, dir, err)
	}
	sealed, err := pki.Seal(secret, keyPEM)
	if err != nil {
		return Migration{}, err
	}
	src, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return Migration{}, err
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, to, pgstore.Options{})
	if err != nil {
		return Migration{}, err
	}
	defer dst.Close()
	rows, err := dst.Import(ctx, src, sqlitestore.Tables, CAMeta(string(ca.CertPEM), sealed))
	return Migration{From: src.Describe(), To: dst.Describe(), Rows: rows, CAFingerprint: ca.Fingerprint()}, err
}
