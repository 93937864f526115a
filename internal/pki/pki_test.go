package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/pki"
)

func TestEnlistTokenRoundTrip(t *testing.T) {
	tok := pki.NewEnlistToken(strings.Repeat("ab", 32))
	got, err := pki.ParseEnlistToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("got %+v, %v; want %+v", got, err, tok)
	}
	notToken, badCA, short := "this is not an enlistment token", "CA fingerprint is not 64 hex digits", "secret is too short"
	for _, bad := range []struct{ token, why string }{
		{"", notToken},
		{"mst1", notToken},
		{"mst1.zz.secret", badCA},
		{"mst2." + strings.Repeat("ab", 32) + "." + pki.RandomSecret(), notToken},
		{"mst1." + strings.Repeat("ab", 31) + "." + pki.RandomSecret(), badCA},
		{"mst1." + strings.Repeat("ab", 32) + ".short", short},
	} {
		if _, err := pki.ParseEnlistToken(bad.token); err == nil || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("ParseEnlistToken(%q): %v, want it refused saying %q", bad.token, err, bad.why)
		}
	}
}

func TestSignTargetIsClientAuthOnly(t *testing.T) {
	now := time.Now()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "ignored-name")
	cert, err := ca.SignTarget(csr, "web1", "uid-1", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.ParseCertPEM(cert.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "web1" || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != 2 /* client auth */ {
		t.Errorf("CN %q, EKU %v: want web1, client auth only", leaf.Subject.CommonName, leaf.ExtKeyUsage)
	}
	if leaf.URIs[0].String() != "muster://target/uid-1" {
		t.Errorf("URI %s", leaf.URIs[0])
	}
	if _, err := ca.VerifyExpiredTarget(cert.DER); err != nil {
		t.Errorf("VerifyExpiredTarget: %v", err)
	}
	other, _, _ := pki.LoadOrCreateCA(t.TempDir(), now)
	var unknown x509.UnknownAuthorityError
	if _, err := other.VerifyExpiredTarget(cert.DER); !errors.As(err, &unknown) {
		t.Errorf("another CA: %v, want the certificate refused as signed by an unknown authority", err)
	}
}

// The pinned configuration trusts only the CA named by the token.
func TestPinnedTLSConfig(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, _, err := pki.LoadOrCreateCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadOrIssueServerCert(dir, ca, []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	var getAs func(fp, name string) error
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	get := func(fp string) error { return getAs(fp, "127.0.0.1") }
	getAs = func(fp, name string) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.PinnedTLSConfig(fp, name)}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(ca.Fingerprint()); err != nil {
		t.Errorf("the right fingerprint: %v", err)
	}
	other, _, _ := pki.LoadOrCreateCA(t.TempDir(), now)
	if err := get(other.Fingerprint()); err == nil || !strings.Contains(err.Error(), "did not present the CA") {
		t.Errorf("another CA's fingerprint: %v, want a refusal", err)
	}
	// The right master at a name its certificate does not cover is told
	// apart from a wrong master.
	var uncovered x509.HostnameError
	if err := getAs(ca.Fingerprint(), "other.example"); !errors.As(err, &uncovered) || uncovered.Host != "other.example" {
		t.Errorf("a name the certificate does not cover: %v, want a x509.HostnameError for it", err)
	}
}

func TestSealRoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := pki.Seal(secret, []byte("the CA key"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pki.Unseal(secret, sealed)
	if err != nil || string(got) != "the CA key" {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	other := []byte("fedcba9876543210fedcba9876543210")
	if _, err := pki.Unseal(other, sealed); !errors.Is(err, pki.ErrUnseal) {
		t.Errorf("Unseal with another secret: %v, want ErrUnseal", err)
	}
	tampered := sealed[:len(sealed)-4] + "AAA="
	if _, err := pki.Unseal(secret, tampered); !errors.Is(err, pki.ErrUnseal) {
		t.Errorf("Unseal of an altered value: %v, want ErrUnseal", err)
	}
	if _, err := pki.Seal([]byte("short"), []byte("x")); err == nil || !strings.Contains(err.Error(), "shorter than 32 bytes") {
		t.Errorf("Seal of a 5-byte secret: %v, want it refused as shorter than 32 bytes", err)
	}
}

// Nothing the CA issues outlives it: a chain is valid only while every
// certificate in it is, so a certificate that ended after its CA would
// be refused from the CA's end on, whatever it says.
func TestCertificatesDoNotOutliveTheCA(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, now.Add(-pki.CAValidity+time.Hour)) // an hour of its life left
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "web1")
	client, err := ca.SignTarget(csr, "web1", "uid-1", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !client.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("a target's certificate ends at %s, want at the CA's end, %s", client.NotAfter, ca.Cert.NotAfter)
	}
	if leaf, err := pki.ParseCertPEM(client.PEM); err != nil || !leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("the certificate itself ends at %v (%v), want %s", leaf.NotAfter, err, ca.Cert.NotAfter)
	}
	server, err := pki.LoadOrIssueServerCert(dir, ca, []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !server.Leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("the server certificate ends at %s, want at the CA's end, %s", server.Leaf.NotAfter, ca.Cert.NotAfter)
	}
}

// The server certificate is re-issued once it is due, and then not again
// until the new one is; one that ends with its CA, which a new one would
// too, is never re-issued.
func TestServerCertIsReissuedOnceDue(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name     string
		caLeft   time.Duration
		reissued bool
	}{
		{"a CA of ten years", pki.CAValidity, true},
		{"a CA of thirty days", 30 * 24 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			dir := t.TempDir()
			ca, _, err := pki.LoadOrCreateCA(dir, start.Add(tc.caLeft-pki.CAValidity))
			if err != nil {
				t.Fatal(err)
			}
			sc, err := pki.NewServerCert(dir, ca, []string{"127.0.0.1"}, func() time.Time { return now }, func(err error) { t.Error(err) })
			if err != nil {
				t.Fatal(err)
			}
			first, _ := sc.Get(nil)
			now = now.Add(min(pki.ServerValidity*4/5, tc.caLeft-time.Hour))
			second, _ := sc.Get(nil)
			third, _ := sc.Get(nil)
			if got := second != first; got != tc.reissued {
				t.Errorf("re-issued when due: %v, want %v", got, tc.reissued)
			}
			if third != second {
				t.Error("re-issued again at once")
			}
		})
	}
}
