package catalog

import (
	"context"
	"errors"
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

// AdoptCert records a certificate that the catalog's CA issued to the
// target uid, holding name, and that the catalog has no record of: one
// issued after the backup the catalog was restored from was taken (targets
// renew at two thirds of a certificate's life, so a day-old backup knows
// none of the certificates in use). Without it every target renewed since
// would be refused until enlisted again. The caller has verified cert
// against the CA and its expiry.
//
// It is adopted only for the active or deleted target that holds name with
// that uid, and only if it was issued after every certificate the catalog
// holds for that target, which it then replaces as a renewal does: an older
// certificate the catalog has forgotten is not brought back. A certificate
// refused is refused on a read, without a write transaction.
func (c *Catalog) AdoptCert(ctx context.Context, cert CertRow, uid, name string) (TargetIdentity, error) {
	_, _, err := adoptable(ctx, c.store, cert, uid, name)
	if errors.Is(err, errAdopted) {
		return c.AuthenticateTarget(ctx, cert.Serial)
	} else if err != nil {
		return TargetIdentity{}, err
	}
	err = c.update(ctx, func(tx *tx) error {
		t, newest, err := adoptable(ctx, tx, cert, uid, name)
		if err != nil {
			return err
		}
		if err := tx.LockTarget(ctx, t.ID); err != nil {
			return err
		}
		if t, newest, err = adoptable(ctx, tx, cert, uid, name); errors.Is(err, errAdopted) {
			return nil // by a request of the target's that went first
		} else if err != nil {
			return err
		}
		cert.TargetID, cert.ReplacedAt = t.ID, nil
		if err := tx.InsertCert(ctx, cert); err != nil {
			return fmt.Errorf("record certificate %s: %w", cert.Serial, err)
		}
		if newest.Serial != "" {
			if err := tx.ReplaceCert(ctx, newest.Serial, tx.now); err != nil {
				return err
			}
		}
		return tx.audit(muster.Actor{Kind: muster.ActorTarget, Name: name},
			muster.AuditEntry{Action: muster.AuditTargetEnlist, Targets: []string{name},
				Changes: []string{"its certificate " + cert.Serial + ", issued by this CA at " + cert.IssuedAt.UTC().Format(time.RFC3339) +
					" after the newest the catalog held (the catalog was restored from a backup taken before it)"}})
	})
	if err != nil && !errors.Is(err, errAdopted) {
		return TargetIdentity{}, err
	}
	return c.AuthenticateTarget(ctx, cert.Serial)
}

// errAdopted is adoptable's answer for a certificate the catalog holds.
var errAdopted = errors.New("the certificate is the catalog's")

// adoptable returns the target that AdoptCert would adopt cert for, with the
// newest certificate the catalog holds for it (none: Serial ""), read on r;
// errAdopted if the catalog holds cert, or the refusal.
func adoptable(ctx context.Context, r Reads, cert CertRow, uid, name string) (TargetRow, CertRow, error) {
	refused := muster.Errorf(muster.EUNAUTHORIZED, "this client certificate was not issued to any enlisted target")
	t, err := r.FindTargetByName(ctx, name)
	if noRows(err) || (err == nil && (uid == "" || t.UID != uid)) {
		return TargetRow{}, CertRow{}, refused
	}
	if err != nil {
		return TargetRow{}, CertRow{}, err
	}
	if _, err := r.FindCert(ctx, cert.Serial); err == nil {
		return t, CertRow{}, errAdopted
	} else if !noRows(err) {
		return TargetRow{}, CertRow{}, err
	}
	newest, err := r.NewestCert(ctx, t.ID)
	switch {
	case noRows(err):
		return t, CertRow{}, nil
	case err != nil:
		return TargetRow{}, CertRow{}, err
	case !cert.IssuedAt.After(newest.IssuedAt):
		return TargetRow{}, CertRow{}, refused
	}
	return t, newest, nil
}
