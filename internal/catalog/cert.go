package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster"
)

// RenewCert issues a new certificate to the target that holds oldSerial, if
// the target is active, or deleted and waiting to collect its DEFECT (a
// tombstone away for longer than its certificate lived renews by proof of
// possession, and its new certificate serves as the old one did: only to
// collect the DEFECT), and oldSerial is its newest certificate, and marks
// the old one replaced. The old certificate keeps working until it expires,
// so requests in flight during a renewal are not refused.
//
// A renewal whose reply was lost is retried with the same new key (the
// target keeps it until it has its certificate): when oldSerial was replaced
// by a certificate for that very key (csrKeyHash), the retry is served too.
// The retry may reach another master: the target's row is taken first, so
// that two renewals of one target go in turn.
func (c *Catalog) RenewCert(ctx context.Context, oldSerial, csrKeyHash string, sign func(t TargetIdentity) (IssuedCert, error)) (IssuedCert, error) {
	var issued IssuedCert
	err := c.update(ctx, func(tx *tx) error {
		old, err := tx.FindCert(ctx, oldSerial)
		if noRows(err) {
			return muster.Errorf(muster.EUNAUTHORIZED, "this certificate was not issued to any enlisted target")
		}
		if err != nil {
			return err
		}
		if err := tx.LockTarget(ctx, old.TargetID); err != nil {
			return err
		}
		if old, err = tx.FindCert(ctx, oldSerial); err != nil {
			return err
		}
		t := TargetIdentity{ID: old.TargetID, UID: old.Target.UID, Name: old.Target.Name, State: old.Target.State}
		switch {
		case t.State != TargetActive && t.State != TargetDeleted:
			return muster.Errorf(muster.EUNAUTHORIZED, "target %q is no longer enlisted in this master; enlist it again with a new token", t.Name)
		case old.ReplacedAt != nil:
			newest, err := tx.NewestCert(ctx, t.ID)
			if err != nil || newest.KeyHash == "" || newest.KeyHash != csrKeyHash {
				return muster.Errorf(muster.EUNAUTHORIZED, "this certificate of target %q was already renewed; only the newest one can renew", t.Name)
			}
			// A retry of the renewal that made the newest: it is replaced
			// in turn by the one issued now.
			oldSerial = newest.Serial
		}
		if issued, err = sign(t); err != nil {
			return err
		}
		if err := tx.InsertCert(ctx, CertRow{Serial: issued.Serial, TargetID: t.ID, IssuedAt: tx.now, NotAfter: issued.NotAfter, KeyHash: issued.KeyHash}); err != nil {
			return fmt.Errorf("record certificate %s: %w", issued.Serial, err)
		}
		// Certificates long expired are of no further use.
		if err := tx.DeleteReplacedCerts(ctx, t.ID, tx.now.Add(-7*24*time.Hour)); err != nil {
			return err
		}
		return tx.ReplaceCert(ctx, oldSerial, tx.now)
	})
	return issued, err
}
