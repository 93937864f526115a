package master_test

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// presented returns the certificate the master presents in a handshake.
func presented(t *testing.T, env *testenv.Env) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(env.Master.URL, "https://"), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// A master that runs for longer than its server certificate's life
// re-issues it as a restart would, within the last quarter of its life:
// it never presents an expired certificate, which every target and
// operator would refuse until someone restarted it.
func TestServerCertificateRenewsWhileTheMasterRuns(t *testing.T) {
	clock := &testenv.Clock{}
	env := testenv.New(t, testenv.Options{Master: func(c *master.Config) { c.Now = clock.Now }})
	first := presented(t, env)
	if again := presented(t, env); !again.Equal(first) {
		t.Fatalf("the master presented another certificate with no time passed")
	}
	clock.Advance(pki.ServerValidity * 4 / 5) // within the last quarter of its life
	second := presented(t, env)
	if second.Equal(first) {
		t.Fatalf("with %s of its life left, the master still presents its certificate ending %s", first.NotAfter.Sub(clock.Now()).Round(time.Hour), first.NotAfter)
	}
	if !second.NotAfter.After(clock.Now().Add(pki.ServerValidity * 9 / 10)) {
		t.Errorf("the new certificate ends at %s, want a year from the master's now, %s", second.NotAfter, clock.Now())
	}
	_, err := second.Verify(x509.VerifyOptions{Roots: env.Master.CA.Pool(), DNSName: "127.0.0.1", CurrentTime: clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Errorf("the new certificate: %v", err)
	}
	if third := presented(t, env); !third.Equal(second) {
		t.Errorf("the master presented a third certificate with no more time passed")
	}
}
