package master

import (
	"crypto/ecdsa"
	"net/http"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// renew answers POST /agent/v1/renew: a target with a valid certificate
// gets a new one for a new key.
func (a *agent) renew(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	var req agentproto.RenewRequest
	if err := jsonhttp.DecodeJSON(w, r, maxEnlistBody, &req); err != nil {
		return err
	}
	return a.issueRenewal(w, r, pki.SerialString(verifiedLeaf(r).SerialNumber), req.CSR)
}

// renewExpired answers POST /agent/v1/renew-expired: a target whose
// certificate expired while the master was away proves it holds that
// certificate's key, and gets a new certificate if it is still enlisted.
func (a *agent) renewExpired(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.RenewExpiredRequest
	if err := jsonhttp.DecodeJSON(w, r, maxEnlistBody, &req); err != nil {
		return err
	}
	old, err := a.m.CA.VerifyExpiredTarget(req.Cert)
	if err != nil {
		return muster.Errorf(muster.EUNAUTHORIZED, "cert: %v", err)
	}
	// Failures count against the certificate claimed, from the address
	// that claimed it: only someone holding that certificate, but not its
	// key, fails against it, and a valid proof for another certificate
	// from the same address is never refused for it.
	ip := remoteIP(r)
	serial := pki.SerialString(old.SerialNumber)
	key := failureKey{kind: "renew-expired", addr: ip, subject: serial}
	if !a.m.enlistFailures.allow(key, a.m.now()) {
		jsonhttp.SetRetryAfter(w, time.Minute)
		return muster.Errorf(muster.ERATELIMIT, "too many failed renewals of certificate %s from %s; wait a minute", serial, ip)
	}
	pub, ok := old.PublicKey.(*ecdsa.PublicKey)
	if !ok || !ecdsa.VerifyASN1(pub, pki.RenewalDigest(req.CSR), req.Signature) {
		a.m.enlistFailures.fail(key, a.m.now())
		return muster.Errorf(muster.EUNAUTHORIZED, "signature: the renewal is not signed with the certificate's key")
	}
	// A certificate the CA issued, its key proven, that a catalog restored
	// from a backup never held is adopted first, as on any request.
	if _, err := a.m.Catalog.AuthenticateTarget(r.Context(), serial); muster.ErrorCode(err) == muster.EUNAUTHORIZED {
		a.m.adoptCert(r.Context(), old, err)
	}
	err = a.issueRenewal(w, r, serial, req.CSR)
	if code := muster.ErrorCode(err); code == muster.EUNAUTHORIZED || code == muster.EFORBIDDEN {
		a.m.enlistFailures.fail(key, a.m.now())
	}
	return err
}

func (a *agent) issueRenewal(w http.ResponseWriter, r *http.Request, oldSerial string, csr []byte) error {
	now := a.m.now()
	keyHash, err := pki.CSRKeyHash(csr)
	if err != nil {
		return muster.Errorf(muster.EINVALID, "%v", err)
	}
	var cert *pki.ClientCert
	_, err = a.m.Catalog.RenewCert(r.Context(), oldSerial, keyHash, func(t catalog.TargetIdentity) (catalog.IssuedCert, error) {
		var err error
		if cert, err = a.m.CA.SignTarget(csr, t.Name, t.UID, now, a.m.cfg.CertTTL); err != nil {
			return catalog.IssuedCert{}, muster.Errorf(muster.EINVALID, "%v", err)
		}
		return catalog.IssuedCert{Serial: cert.Serial, NotAfter: cert.NotAfter, KeyHash: keyHash}, nil
	})
	if err != nil {
		return err
	}
	a.m.log.Info("certificate renewed", "old_serial", oldSerial, "serial", cert.Serial, "not_after", cert.NotAfter)
	jsonhttp.WriteJSON(w, http.StatusOK, agentproto.RenewResponse{Cert: cert.PEM})
	return nil
}
