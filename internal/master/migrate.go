package master

import (
	"context"
	"errors"
	"fmt"
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
// directory, with the CA beside it) into an empty PostgreSQL catalog, in one
// transaction, the CA's key sealed with the secret in secretFile. Targets
// keep their enlistment, sequence numbers and the catalog's epoch.
func MigrateStore(ctx context.Context, from, to, secretFile string) (Migration, error) {
	path, err := sqlitestore.CatalogPath("--from", from)
	if err != nil {
		return Migration{}, err
	}
	if !isShared(to) {
		return Migration{}, muster.Errorf(muster.EINVALID, "--to: %q is not a PostgreSQL URL such as postgres://muster@db.example.com/muster", to)
	}
	if _, err := os.Stat(path); err != nil {
		return Migration{}, muster.Wrap(muster.EINVALID, err, "--from: no catalog at %s", path)
	}
	secret, err := ReadSecret(secretFile)
	if err != nil {
		return Migration{}, err
	}
	dir := filepath.Dir(path)
	certPEM, certErr := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	if err := errors.Join(certErr, keyErr); err != nil {
		return Migration{}, fmt.Errorf("--from: the master's CA (%s and %s beside the catalog): %w", pki.CACertFile, pki.CAKeyFile, err)
	}
	ca, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		return Migration{}, fmt.Errorf("--from: the master's CA in %s: %w", dir, err)
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
