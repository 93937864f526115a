package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names in a master's data directory.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
)

// CAValidity is the lifetime of a new CA certificate.
const CAValidity = 10 * 365 * 24 * time.Hour

// Backdate is subtracted from every NotBefore so that a peer whose clock is
// a few minutes behind still accepts a fresh certificate.
const Backdate = 5 * time.Minute

// CA is the master's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// HasCA reports whether dir holds a CA's certificate or key (or both).
func HasCA(dir string) bool {
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// LoadOrCreateCA loads the CA from dir, or creates one (ECDSA P-256) when
// neither file exists. It reports whether it created one.
func LoadOrCreateCA(dir string, now time.Time) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("load CA from %s: %w", dir, err)
		}
		return ca, false, nil
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, false, certErr
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, false, keyErr
	default:
		return nil, false, fmt.Errorf("load CA from %s: one of %s and %s is missing; restore both or remove both", dir, CACertFile, CAKeyFile)
	}

	certPEM, keyPEM, err = NewCA(now)
	if err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, false, err
	}
	ca, err = ParseCA(certPEM, keyPEM)
	return ca, true, err
}

// NewCA makes a certificate authority (ECDSA P-256) and returns its
// certificate and key as PEM.
func NewCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "muster CA", Organization: []string{"muster"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, err
}

// ParseCA returns the CA whose certificate and key are given as PEM.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Fingerprint is the SHA-256 of the CA certificate, in hex. Enlistment tokens
// carry it so a new target can verify the master before trusting it.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert.Raw) }

// Fingerprint returns the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ClientCert is a certificate issued to a target.
type ClientCert struct {
	DER      []byte
	PEM      []byte
	Serial   string
	NotAfter time.Time
}

// TargetURI is the URI SAN that carries a target's enlistment id.
func TargetURI(uid string) *url.URL {
	return &url.URL{Scheme: "muster", Host: "target", Path: "/" + uid}
}

// TargetUID returns the enlistment id a target's certificate carries
// (its TargetURI), or "" if it carries none.
func TargetUID(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if u.Scheme == "muster" && u.Host == "target" && len(u.Path) > 1 {
			return u.Path[1:]
		}
	}
	return ""
}

// SignTarget issues a client certificate for the public key in csrDER, for
// the target named name with enlistment id uid, valid for ttl from now. The
// CSR's own subject is ignored: the name and id come from the catalog.
func (ca *CA) SignTarget(csrDER []byte, name, uid string, now time.Time, ttl time.Duration) (*ClientCert, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature does not verify: %w", err)
	}
	return ca.signClient(csr.PublicKey, name, uid, now, ttl)
}

// SignTargetKey issues a client certificate for an already proven public key
// (certificate renewal).
func (ca *CA) SignTargetKey(pub any, name, uid string, now time.Time, ttl time.Duration) (*ClientCert, error) {
	return ca.signClient(pub, name, uid, now, ttl)
}

func (ca *CA) signClient(pub any, name, uid string, now time.Time, ttl time.Duration) (*ClientCert, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("csr: the key must be ECDSA P-256 or P-384")
		}
	default:
		return nil, errors.New("csr: the key must be ECDSA P-256 or P-384")
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{"target"}},
		URIs:         []*url.URL{TargetURI(uid)},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     ca.notAfter(now.Add(ttl)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return &ClientCert{
		DER:      der,
		PEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Serial:   SerialString(tmpl.SerialNumber),
		NotAfter: tmpl.NotAfter,
	}, nil
}

// notAfter is end, or the CA's own end if that comes first: a chain is
// valid only while each of its certificates is, so a certificate that
// said it lived longer would be refused from the CA's end on all the same,
// and renewed too late.
func (ca *CA) notAfter(end time.Time) time.Time {
	if end.After(ca.Cert.NotAfter) {
		return ca.Cert.NotAfter
	}
	return end
}

// SerialString renders a certificate serial as the catalog stores it.
func SerialString(n *big.Int) string { return n.Text(16) }

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// RenewalDigest is what a target signs with its expired certificate's key to
// renew it: the SHA-256 of a fixed label and the new CSR, so the proof
// binds the new key and cannot be reused for another.
func RenewalDigest(csrDER []byte) []byte {
	h := sha256.New()
	h.Write([]byte("muster renew-expired v1\x00"))
	h.Write(csrDER)
	return h.Sum(nil)
}

// VerifyExpiredTarget checks that der is a target certificate this CA
// issued, ignoring only its expiry, and returns it.
func (ca *CA) VerifyExpiredTarget(der []byte) (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: cert.NotAfter.Add(-time.Second),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("the certificate was not issued by this master: %w", err)
	}
	return cert, nil
}

// KeyHash is the hex SHA-256 of a public key's DER (SubjectPublicKeyInfo):
// the identity of the key a certificate or a request carries.
func KeyHash(pub any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return Fingerprint(der), nil
}

// CSRKeyHash returns the KeyHash of the key in a DER certificate request.
func CSRKeyHash(csrDER []byte) (string, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return "", fmt.Errorf("csr: %w", err)
	}
	return KeyHash(csr.PublicKey)
}
