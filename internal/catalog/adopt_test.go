package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A catalog restored from a backup adopts the certificate a target renewed
// after the backup was taken (the CA issued it; the catalog never heard
// of it), which then serves and renews as any other, and replaces the one
// the catalog held. It adopts none that is older than the newest the
// catalog holds for the target, none for another enlistment of the name,
// and none for a target that defected.
func TestRestoredCatalogAdoptsANewerCertificate(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1") // serial-web1, issued now
		issued := clk.Now()
		cert := func(serial string, at time.Time) catalog.CertRow {
			return catalog.CertRow{Serial: serial, IssuedAt: at, NotAfter: at.Add(24 * time.Hour), KeyHash: "k-" + serial}
		}
		refusals := []struct {
			name, uid, target string
			cert              catalog.CertRow
		}{
			{"issued before the newest the catalog holds", "uid-web1", "web1", cert("older", issued.Add(-time.Minute))},
			{"issued with it", "uid-web1", "web1", cert("same-time", issued)},
			{"of another enlistment of the name", "uid-other", "web1", cert("other", issued.Add(time.Hour))},
			{"without an enlistment id", "", "web1", cert("no-uid", issued.Add(time.Hour))},
			{"of a name no target holds", "uid-web9", "web9", cert("nobody", issued.Add(time.Hour))},
		}
		for _, r := range refusals {
			if _, err := db.AdoptCert(ctx, r.cert, r.uid, r.target); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a certificate %s: %v, want EUNAUTHORIZED", r.name, err)
			}
			if _, err := db.AuthenticateTarget(ctx, r.cert.Serial); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a certificate %s authenticates after it was refused: %v", r.name, err)
			}
		}
		if got := len(refusals); got != 5 {
			t.Fatalf("%d refusals checked, want 5", got)
		}

		clk.Add(16 * time.Hour)
		renewed := cert("renewed", clk.Now().Add(-time.Hour)) // issued an hour before the restore
		for i := range 2 {                                    // the second finds it adopted
			id, err := db.AdoptCert(ctx, renewed, "uid-web1", "web1")
			if err != nil || id.Name != "web1" || id.CertSerial != "renewed" {
				t.Fatalf("adoption %d: %+v, %v; want web1 by certificate renewed", i+1, id, err)
			}
		}
		if _, err := db.RenewCert(ctx, "serial-web1", "k-next", func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "from-old", NotAfter: clk.Now().Add(time.Hour), KeyHash: "k-from-old"}, nil
		}); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("the certificate the adopted one replaced renews: %v, want EUNAUTHORIZED", err)
		}
		if _, err := db.RenewCert(ctx, "renewed", "k-next", func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "next", NotAfter: clk.Now().Add(time.Hour), KeyHash: "k-next"}, nil
		}); err != nil {
			t.Errorf("the adopted certificate renews: %v", err)
		}

		gone := enlist(t, db, "gone")
		if err := db.DefectTarget(ctx, gone.ID, muster.Actor{Kind: muster.ActorTarget, Name: "gone"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AdoptCert(ctx, cert("gone-2", clk.Now()), "uid-gone", "gone"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("a certificate of a defected target: %v, want EUNAUTHORIZED", err)
		}
	})
}
