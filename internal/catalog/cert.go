package catalog

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/musterhq/muster"
)

// CertRecord is what the catalog knows of a certificate it issued.
type CertRecord struct {
	Serial   string
	Target   TargetIdentity
	Replaced bool
}

// FindCert returns the certificate with the given serial and its target.
func (db *DB) FindCert(ctx context.Context, serial string) (CertRecord, error) {
	var c CertRecord
	var notAfter int64
	var replaced sql.NullInt64
	err := db.queryRow(ctx, `SELECT c.serial, c.not_after, c.replaced_at, t.id, t.uid, t.name, t.state, t.paused, t.poll_interval
		FROM certs c JOIN targets t ON t.id = c.target_id WHERE c.serial = ?`, serial).
		Scan(&c.Serial, &notAfter, &replaced, &c.Target.ID, &c.Target.UID, &c.Target.Name, &c.Target.State, &c.Target.Paused, &c.Target.PollInterval)
	if errors.Is(err, sql.ErrNoRows) {
		return c, muster.Errorf(muster.EUNAUTHORIZED, "this client certificate was not issued to any enlisted target")
	}
	c.Target.CertNotAfter, c.Replaced = fromMS(notAfter), replaced.Valid
	return c, err
}

// RenewCert issues a new certificate to the target that holds oldSerial, if
// the target is active and oldSerial is its newest certificate, and marks
// the old one replaced. The old certificate keeps working until it expires,
// so requests in flight during a renewal are not refused.
//
// A renewal whose reply was lost is retried with the same new key (the
// target keeps it until it has its certificate): when oldSerial was replaced
// by a certificate for that very key (csrKeyHash), the retry is served too.
func (db *DB) RenewCert(ctx context.Context, oldSerial, csrKeyHash string, sign func(t TargetIdentity) (IssuedCert, error)) (IssuedCert, error) {
	var issued IssuedCert
	err := db.update(ctx, func(tx *tx) error {
		var t TargetIdentity
		var replaced sql.NullInt64
		err := tx.QueryRow(`SELECT t.id, t.uid, t.name, t.state, c.replaced_at FROM certs c JOIN targets t ON t.id = c.target_id
			WHERE c.serial = ?`, oldSerial).Scan(&t.ID, &t.UID, &t.Name, &t.State, &replaced)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return muster.Errorf(muster.EUNAUTHORIZED, "this certificate was not issued to any enlisted target")
		case err != nil:
			return err
		case t.State != TargetActive:
			return muster.Errorf(muster.EUNAUTHORIZED, "target %q is no longer enlisted in this master; enlist it again with a new token", t.Name)
		case replaced.Valid:
			var newest, newestKey string
			if err := tx.QueryRow(`SELECT serial, key_hash FROM certs WHERE target_id = ? AND replaced_at IS NULL`, t.ID).Scan(&newest, &newestKey); err != nil ||
				newestKey == "" || newestKey != csrKeyHash {
				return muster.Errorf(muster.EUNAUTHORIZED, "this certificate of target %q was already renewed; only the newest one can renew", t.Name)
			}
			// A retry of the renewal that made the newest: it is replaced
			// in turn by the one issued now.
			oldSerial = newest
		}
		if issued, err = sign(t); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO certs (serial, target_id, issued_at, not_after, key_hash) VALUES (?, ?, ?, ?, ?)`,
			issued.Serial, t.ID, ms(tx.now), ms(issued.NotAfter), issued.KeyHash); err != nil {
			return err
		}
		// Certificates long expired are of no further use.
		if _, err := tx.Exec(`DELETE FROM certs WHERE target_id = ? AND replaced_at IS NOT NULL AND not_after < ?`,
			t.ID, ms(tx.now.Add(-7*24*time.Hour))); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE certs SET replaced_at = ? WHERE serial = ?`, ms(tx.now), oldSerial)
		return err
	})
	return issued, err
}

// TargetPaused reports whether a target is paused.
func (db *DB) TargetPaused(ctx context.Context, id int64) (bool, error) {
	var paused bool
	err := db.read.QueryRowContext(ctx, `SELECT paused FROM targets WHERE id = ?`, id).Scan(&paused)
	return paused, err
}
