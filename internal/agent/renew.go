package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/pki"
)

// Names of a renewed key and certificate before they replace the current
// ones; see loadIdentity.
const (
	nextKeyFile  = KeyFile + ".next"
	nextCertFile = CertFile + ".next"
)

// loadIdentity loads the target's key and certificate. A renewal writes
// both .next files, then renames the key, then the certificate; if a crash
// fell between the two renames, the key matches cert.pem.next, and the
// rename is finished here.
func loadIdentity(dir string) (*tls.Certificate, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		return &cert, nil
	}
	next := filepath.Join(dir, nextCertFile)
	if c, nerr := tls.LoadX509KeyPair(next, keyPath); nerr == nil {
		if err := os.Rename(next, certPath); err != nil {
			return nil, err
		}
		return &c, nil
	}
	return nil, fmt.Errorf("load the target's certificate %s with its key %s: %w", certPath, keyPath, err)
}

// renewAt is when a certificate should be renewed: at two thirds of its
// life, counted from when it was issued (NotBefore is backdated).
func renewAt(leaf *x509.Certificate) time.Time {
	issued := leaf.NotBefore.Add(pki.Backdate)
	return issued.Add(leaf.NotAfter.Sub(issued) * 2 / 3)
}

// nextRenewal is when to renew leaf, the last renewal having been at
// renewed (zero: none yet): at two thirds of its life, and never more than
// once a third of a certificate's life. (With a clock far ahead of the
// master's, a new certificate is due as soon as it arrives, and renewing
// again would not help.)
func nextRenewal(leaf *x509.Certificate, renewed time.Time) time.Time {
	due := renewAt(leaf)
	if !renewed.IsZero() {
		life := leaf.NotAfter.Sub(leaf.NotBefore.Add(pki.Backdate))
		due = maxTime(due, renewed.Add(life/3))
	}
	return due
}

// renewLoop renews the certificate at two thirds of its life, for ever,
// retrying with backoff while the master cannot be reached (or after the
// wait it asks for, when longer, as retryLoop does). It looks at
// the clock again at least once a poll hold, so that a clock that jumped,
// or a machine that slept, is noticed: a timer counts time that passes,
// not the time the clock says.
func (m *Main) renewLoop(ctx context.Context) {
	failures := 0
	var retryIn time.Duration // after a failure
	var renewed time.Time     // the last renewal, by this target's clock
	for {
		if failures == 0 {
			if wait := nextRenewal(m.client.cert.Load().Leaf, renewed).Sub(m.cfg.Now()); wait > 0 {
				if !sleep(ctx, min(wait, m.cfg.PollWait)) {
					return
				}
				continue
			}
		} else if !sleep(ctx, retryIn) {
			return
		}
		if err := m.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			retryIn = retryDelay(m.cfg.MaxBackoff, failures, err)
			failures++
			logFailure(m.log, failures, "certificate renewal failed", err, retryIn)
			m.renewalFailed(ctx, failures, err)
			continue
		}
		failures, renewed = 0, m.cfg.Now()
	}
}

// renew gets a certificate for a new key: over mutual TLS while the current
// certificate is valid, by proof of possession of its key once it has
// expired. The new key and certificate replace the old ones on disk before
// they are used.
func (m *Main) renew(ctx context.Context) error {
	cur := m.client.cert.Load()
	oldKey, ok := cur.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("the target's key is not an ECDSA key")
	}
	// The new key is kept (key.pem.next) before it is used, and reused by a
	// retry: if the master issued a certificate but the reply was lost, the
	// retry with the same key is recognised and served.
	key, err := m.nextKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, m.enl.Name)
	if err != nil {
		return err
	}
	var resp agentproto.RenewResponse
	by := "proof of possession of the expired certificate's key"
	expired := !m.cfg.Now().Before(cur.Leaf.NotAfter.Add(-5 * time.Second))
	if !expired {
		by = "mutual TLS"
		resp, err = m.client.renew(ctx, csr)
		// The master refused the certificate in the handshake: most
		// often because by its clock, ahead of this one, it has expired.
		// Proof of possession does not need it valid (and is refused,
		// as this was, if the master refuses the target).
		expired = refusedAtTLS(err)
	}
	if expired {
		by = "proof of possession of the expired certificate's key"
		sig, serr := ecdsa.SignASN1(rand.Reader, oldKey, pki.RenewalDigest(csr))
		if serr != nil {
			return serr
		}
		resp, err = m.client.renewExpired(ctx, agentproto.RenewExpiredRequest{Cert: cur.Leaf.Raw, CSR: csr, Signature: sig})
	}
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(resp.Cert, keyPEM)
	if err != nil {
		return fmt.Errorf("the renewed certificate does not match the new key: %w", err)
	}
	dir := m.cfg.DataDir
	if err := pki.WriteFileAtomic(filepath.Join(dir, nextCertFile), resp.Cert, 0o644); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, nextKeyFile), filepath.Join(dir, KeyFile)); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, nextCertFile), filepath.Join(dir, CertFile)); err != nil {
		return err
	}
	m.client.setCert(&cert)
	m.log.Info("certificate renewed", "by", by, "serial", pki.SerialString(cert.Leaf.SerialNumber), "not_after", cert.Leaf.NotAfter)
	return nil
}

// refusedAtTLS reports whether err is the master refusing the TLS
// handshake with an alert, as it refuses a client certificate it finds
// expired, rather than a reply or a connection that failed.
func refusedAtTLS(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// nextKey returns the key of a renewal in progress (key.pem.next), or makes
// and saves a new one.
func (m *Main) nextKey() (*ecdsa.PrivateKey, error) {
	path := filepath.Join(m.cfg.DataDir, nextKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		if key, err := pki.ParseKeyPEM(b); err == nil {
			return key, nil
		}
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	return key, pki.WriteFileAtomic(path, keyPEM, 0o600)
}
