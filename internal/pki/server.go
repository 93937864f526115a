package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServerValidity is the lifetime of the master's server certificate. It is
// re-issued when less than a quarter of it remains, at start or while the
// master runs (ServerCert), and at start when the host names it must cover
// change.
const ServerValidity = 365 * 24 * time.Hour

// LoadOrIssueServerCert returns the master's server certificate from dir,
// issuing a new one from ca when there is none, it is not from ca, it expires
// within a quarter of its life, or it does not cover every name in hosts.
func LoadOrIssueServerCert(dir string, ca *CA, hosts []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && serverCertFits(c.Leaf, ca, hosts, now) {
		return c, nil
	}
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "muster master"},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     ca.notAfter(now.Add(ServerValidity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	// The chain includes the CA so that a target enlisting with a token can
	// find the certificate it pins in the handshake.
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.CertPEM...)
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func serverCertFits(leaf *x509.Certificate, ca *CA, hosts []string, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	if at, ok := ca.serverRenewAt(leaf); ok && !now.Before(at) {
		return false
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// serverRenewAt is when a server certificate is re-issued: once less than
// a quarter of its life is left; never if it ends with the CA, as a new
// one would.
func (ca *CA) serverRenewAt(leaf *x509.Certificate) (time.Time, bool) {
	if !leaf.NotAfter.Before(ca.Cert.NotAfter) {
		return time.Time{}, false
	}
	return leaf.NotAfter.Add(-ServerValidity / 4), true
}

// ServerCert is the master's server certificate as its listener presents
// it (tls.Config.GetCertificate): re-issued while the master runs, when
// LoadOrIssueServerCert would re-issue it at a start, so that a master
// running for longer than a certificate's life never presents an expired
// one.
type ServerCert struct {
	dir   string
	ca    *CA
	hosts []string
	now   func() time.Time
	// failed is told when a certificate due could not be re-issued; the
	// current one is presented meanwhile, and issuing tried again a
	// minute later.
	failed func(error)

	mu  sync.Mutex // held while re-issuing
	cur atomic.Pointer[presentedCert]
}

// presentedCert is a certificate, and when to re-issue it.
type presentedCert struct {
	cert  *tls.Certificate
	next  time.Time
	renew bool
}

// NewServerCert loads or issues the server certificate in dir
// (LoadOrIssueServerCert) for hosts, and keeps it current by the clock
// now. failed, if not nil, is told of a re-issue that failed.
func NewServerCert(dir string, ca *CA, hosts []string, now func() time.Time, failed func(error)) (*ServerCert, error) {
	s := &ServerCert{dir: dir, ca: ca, hosts: hosts, now: now, failed: failed}
	c, err := LoadOrIssueServerCert(dir, ca, hosts, now())
	if err != nil {
		return nil, err
	}
	s.keep(&c)
	return s, nil
}

func (s *ServerCert) keep(c *tls.Certificate) {
	next, renew := s.ca.serverRenewAt(c.Leaf)
	s.cur.Store(&presentedCert{cert: c, next: next, renew: renew})
}

// Get returns the certificate to present, re-issuing it first if it is
// due.
func (s *ServerCert) Get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p := s.cur.Load()
	if !p.renew || s.now().Before(p.next) {
		return p.cert, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p = s.cur.Load(); !p.renew || s.now().Before(p.next) {
		return p.cert, nil // re-issued meanwhile
	}
	c, err := LoadOrIssueServerCert(s.dir, s.ca, s.hosts, s.now())
	if err != nil {
		s.cur.Store(&presentedCert{cert: p.cert, next: s.now().Add(time.Minute), renew: true})
		if s.failed != nil {
			s.failed(err)
		}
		return p.cert, nil
	}
	s.keep(&c)
	return &c, nil
}

// CoveredNames lists the host names and addresses a server certificate
// was issued for, as a master's --host and --advertise would name them.
func CoveredNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// CheckHost says why h cannot be a name the master's server certificate
// covers, or returns nil: it is an IP address, or a DNS name (labels of
// letters, digits, '-' and '_', at most 63 characters each, 253 in all,
// not starting or ending with '-'), which may start with a "*." wildcard
// and end with a dot. A URL, a port or a bracketed address would be
// written into the certificate and never match.
func CheckHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	switch {
	case h == "":
		return errors.New("it is empty")
	case strings.Contains(h, "://"):
		return errors.New("it is a URL; give its host alone")
	case strings.HasPrefix(h, "["):
		return errors.New("give an IPv6 address without brackets")
	case strings.Contains(h, ":"):
		return errors.New("it has a port; give the host alone")
	}
	name := strings.TrimSuffix(strings.TrimPrefix(h, "*."), ".")
	if len(name) > 253 {
		return errors.New("it is longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a DNS label (1 to 63 characters, not starting or ending with '-')", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q may hold only letters, digits, '-' and '_'", label)
			}
		}
	}
	return nil
}

// DefaultHosts are the names every server certificate covers, besides the
// listen address and any names the operator adds.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// ServerTLSConfig is the master's listener configuration: TLS 1.2 or later,
// asking for a client certificate without demanding one (operators use bearer
// tokens; targets present certificates, which the agent middleware requires),
// and verifying any certificate offered against the CA.
func ServerTLSConfig(cert tls.Certificate, ca *CA) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool(),
	}
}

// ClientTLSConfig is a target's configuration for talking to its master:
// the master is verified against the CA, and the target presents cert.
func ClientTLSConfig(roots *x509.CertPool, cert *tls.Certificate) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}
