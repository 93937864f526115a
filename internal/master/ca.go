package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/pki"
)

// Meta keys of a shared catalog's CA, and of the fingerprint of the CA in
// the data directory of a master with a catalog of its own.
const (
	metaCACert        = "ca_cert"
	metaCAKey         = "ca_key" // sealed with the secret of --secret-file
	metaCAFingerprint = "ca_fingerprint"
)

// loadCA loads the CA. A master with a catalog of its own keeps the CA in
// its data directory, creating it on first start. Masters sharing a catalog
// share one CA, kept in the catalog with its key sealed by the secret they
// all read: the first master on an empty catalog creates it; every master
// writes ca.pem to its data directory, for operators.
func (m *Main) loadCA(ctx context.Context) error {
	if !m.Catalog.Store().Shared() {
		return m.loadOwnCA(ctx)
	}
	secret, err := ReadSecret(m.cfg.SecretFile)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := pki.NewCA(m.now())
	if err != nil {
		return err
	}
	sealed, err := pki.Seal(secret, keyPEM)
	if err != nil {
		return err
	}
	if m.CreatedCA, err = m.Catalog.InitCA(ctx, metaCACert, string(certPEM), metaCAKey, sealed); err != nil {
		return err
	}
	cert, ok, err := m.Catalog.Store().Meta(ctx, metaCACert)
	if err == nil && !ok {
		err = errors.New("the catalog has no CA certificate")
	}
	if err != nil {
		return err
	}
	sealedKey, _, err := m.Catalog.Store().Meta(ctx, metaCAKey)
	if err != nil {
		return err
	}
	key, err := pki.Unseal(secret, sealedKey)
	if errors.Is(err, pki.ErrUnseal) {
		return muster.Errorf(muster.EPRECONDITION, "--secret-file %s: the catalog's CA key was sealed with another secret; give every master the same secret file", m.cfg.SecretFile)
	}
	if err != nil {
		return err
	}
	if m.CA, err = pki.ParseCA([]byte(cert), key); err != nil {
		return fmt.Errorf("the catalog's CA: %w", err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(m.cfg.DataDir, pki.CACertFile), m.CA.CertPEM, 0o644); err != nil {
		return err
	}
	if m.CreatedCA {
		m.log.Info("created the catalog's certificate authority", muster.LogFile, filepath.Join(m.cfg.DataDir, pki.CACertFile), "fingerprint", m.CA.Fingerprint())
	}
	return nil
}

// loadOwnCA loads the CA of a master with a catalog of its own from its
// data directory, or creates it there on a new catalog. The catalog records
// the CA's fingerprint, and a master whose CA is not the one recorded does
// not start: its targets hold certificates of that CA, and trust no
// other. So a data directory restored without its CA files, or a catalog
// given to another master's directory, is refused, not served with a new
// CA that no target would reach.
func (m *Main) loadOwnCA(ctx context.Context) error {
	dir := m.cfg.DataDir
	recorded, known, err := m.Catalog.Store().Meta(ctx, metaCAFingerprint)
	if err != nil {
		return err
	}
	if !pki.HasCA(dir) {
		targets, err := m.Catalog.Store().ActiveTargets(ctx)
		if err != nil {
			return err
		}
		if known || len(targets) > 0 {
			which := "the CA"
			if known {
				which = "its CA (sha256 " + recorded + ")"
			}
			return muster.Errorf(muster.EPRECONDITION, "%s has no CA (%s and %s), but %s has %d enlisted targets, which trust only %s: put that CA's two files back in %s (from a backup of the data directory); a new CA would be trusted by no target",
				dir, pki.CACertFile, pki.CAKeyFile, m.Catalog.Describe(), len(targets), which, dir)
		}
	}
	ca, created, err := pki.LoadOrCreateCA(dir, m.now())
	if err != nil {
		return err
	}
	if known && ca.Fingerprint() != recorded {
		return muster.Errorf(muster.EPRECONDITION, "the CA in %s (sha256 %s) is not the one the targets of %s were enlisted with (sha256 %s): put that CA's %s and %s in %s, or give this master the catalog of its own CA",
			dir, ca.Fingerprint(), m.Catalog.Describe(), recorded, pki.CACertFile, pki.CAKeyFile, dir)
	}
	if !known {
		if _, err := m.Catalog.KeepMeta(ctx, metaCAFingerprint, ca.Fingerprint()); err != nil {
			return err
		}
	}
	m.CA, m.CreatedCA = ca, created
	if created {
		m.log.Info("created a certificate authority", muster.LogFile, filepath.Join(dir, pki.CACertFile), "fingerprint", ca.Fingerprint())
	}
	return nil
}

// caEndWarning is how long before its CA ends a master says so when it
// starts: its server certificate, re-issued within a quarter of its
// life, ends with the CA from then on.
const caEndWarning = pki.ServerValidity

// sayCAEnd logs, when the master starts, that its CA ends soon, or has
// ended: from then on no target or operator can verify the master, nor it
// them, and every certificate the CA issued ends with it. muster does not
// replace a CA; see docs/operations.md#certificates.
func (m *Main) sayCAEnd() {
	end, now := m.CA.Cert.NotAfter, m.now()
	switch {
	case !now.Before(end):
		m.log.Error("the certificate authority expired: no target or operator can verify this master; enlist the targets in a master with a new CA",
			"not_after", end.UTC().Format(time.RFC3339), "fingerprint", m.CA.Fingerprint())
	case end.Sub(now) < caEndWarning:
		m.log.Warn(fmt.Sprintf("the certificate authority expires in %d days: certificates it issues end then, and targets and operators can no longer verify this master; enlist the targets in a master with a new CA before then",
			int(end.Sub(now).Hours()/24)), "not_after", end.UTC().Format(time.RFC3339), "fingerprint", m.CA.Fingerprint())
	}
}

// checkOwnCAFiles refuses, before a catalog of the master's own is opened
// (or made) in dir, a data directory that holds the CA's certificate and
// not its key: most often that of a master of a catalog on PostgreSQL,
// started without its --store, which removing ca.pem would make a new
// master, with a new CA no target trusts.
func checkOwnCAFiles(dir string) error {
	if onlyCert(dir) {
		return muster.Errorf(muster.EPRECONDITION, "%s holds %s but not %s. A master of a catalog on PostgreSQL keeps only %s in its data directory: give this one its --store (or MUSTER_STORE) and --secret-file. A master with a catalog of its own needs both: put back %s from a backup of %s",
			dir, pki.CACertFile, pki.CAKeyFile, pki.CACertFile, pki.CAKeyFile, dir)
	}
	return nil
}

// onlyCert reports whether dir holds the CA's certificate and not its
// key, as the data directory of a master of a shared catalog does.
func onlyCert(dir string) bool {
	_, certErr := os.Lstat(filepath.Join(dir, pki.CACertFile))
	_, keyErr := os.Lstat(filepath.Join(dir, pki.CAKeyFile))
	return certErr == nil && errors.Is(keyErr, os.ErrNotExist)
}

// CAMeta is how a shared catalog keeps its CA: the certificate, and the key
// sealed with the masters' secret.
func CAMeta(cert, sealedKey string) map[string]string {
	return map[string]string{metaCACert: cert, metaCAKey: sealedKey}
}

// ReadSecret reads a secret file: at least 32 bytes, readable by its owner
// only.
func ReadSecret(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--secret-file %s: the file is readable by others (mode %#o); chmod 600 it", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < pki.MinSecretLen {
		return nil, fmt.Errorf("--secret-file %s: the secret is %d bytes; it needs at least %d (e.g. `head -c 32 /dev/urandom | base64`)", path, len(secret), pki.MinSecretLen)
	}
	return secret, nil
}
