package master

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/pki"
)

// guessEnlist tries to enlist name from addr with a well-formed token of
// this master that was never issued, and returns the reply's status.
func guessEnlist(t *testing.T, m *Main, addr, name string) int {
	t.Helper()
	tok := pki.NewEnlistToken(m.CA.Fingerprint()).String()
	w := serveFrom(m, addr, nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{Token: tok, Name: name, PollInterval: 60})
	// A guess refused for the failures before it is told to wait a minute.
	if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") != "60" {
		t.Errorf("a refused guess says Retry-After %q, want 60", w.Header().Get("Retry-After"))
	}
	return w.Code
}

// Token guessing is limited per (address, target name): of 1,000 guesses
// at one target's token from one address in a minute, 10 reach the
// catalog and the rest are refused; the window passing lets guesses
// through again.
func TestEnlistGuessingIsLimited(t *testing.T) {
	clk := &pinned{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	m := testMaster(t, func(c *Config) { c.Now = clk.Now })
	counts := map[int]int{}
	for range 1000 {
		counts[guessEnlist(t, m, testAddr, "web1")]++
	}
	if counts[http.StatusUnauthorized] != 10 || counts[http.StatusTooManyRequests] != 990 {
		t.Errorf("1,000 guesses were answered %v; want 10 × 401 and 990 × 429", counts)
	}
	clk.Add(61 * time.Second)
	if got := guessEnlist(t, m, testAddr, "web1"); got != http.StatusUnauthorized {
		t.Errorf("a guess a minute later was answered %d, want 401", got)
	}
}

// Failures from one address never hold back a valid token from that
// address when they were for other names: targets behind one NAT or load
// balancer enlist while a neighbour keeps failing.
func TestEnlistFailuresDoNotRefuseAValidTokenFromTheSameAddress(t *testing.T) {
	clk := &pinned{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	m := testMaster(t, func(c *Config) { c.Now = clk.Now })
	refused := 0
	for i := range 50 {
		name := "web9"
		if i%2 == 1 {
			name = "db1"
		}
		if guessEnlist(t, m, testAddr, name) == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 30 {
		t.Fatalf("%d of 50 failing attempts were refused; want 30 (20 reach the catalog, 10 for each name)", refused)
	}
	enlist(t, m, "web1") // from testAddr: fails the test unless 200
	// The names guessed at are held back from that address only.
	enlistFrom(t, m, "198.51.100.7:5000", "web9")
}

// A bad name is refused for what it is, and counts as no guess.
func TestEnlistInvalidNameIsNotAGuess(t *testing.T) {
	m := testMaster(t, nil)
	for range 20 {
		w := serve(m, nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{Token: "x", Name: "no spaces allowed"})
		if w.Code != http.StatusBadRequest || errorCode(t, w) != muster.EINVALID {
			t.Fatalf("an invalid name: %d %s, want 400 invalid", w.Code, w.Body)
		}
	}
	if got := guessEnlist(t, m, testAddr, "web1"); got != http.StatusUnauthorized {
		t.Errorf("a guess after 20 invalid names was answered %d, want 401", got)
	}
}

// What a target says of itself when it enlists is checked as an
// operator's words are: a refusal names the field, and leaves the token
// unspent and the target unenlisted.
func TestEnlistChecksWhatTheTargetReports(t *testing.T) {
	m := testMaster(t, nil)
	ctx := context.Background()
	tok, _, err := m.NewEnlistToken(ctx, "web1", time.Hour, m.Self())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "web1")
	if err != nil {
		t.Fatal(err)
	}
	good := agentproto.EnlistRequest{Token: tok, Name: "web1", CSR: csr, PollInterval: 60,
		Location: "rack 4", EnlistedBy: "root", TimeZone: "Europe/Paris", Version: "1.0"}
	for _, c := range []struct {
		name   string
		change func(*agentproto.EnlistRequest)
		msg    string
	}{
		{"an escape sequence in the location", func(r *agentproto.EnlistRequest) { r.Location = "rack 4\x1b[2J" }, "location: only printable text on one line"},
		{"a long location", func(r *agentproto.EnlistRequest) { r.Location = strings.Repeat("x", 201) }, "location: at most 200 characters, not 201"},
		{"a line break in enlisted_by", func(r *agentproto.EnlistRequest) { r.EnlistedBy = "root\nadmin" }, "enlisted_by: only printable text on one line"},
		{"a long enlisted_by", func(r *agentproto.EnlistRequest) { r.EnlistedBy = strings.Repeat("é", 101) }, "enlisted_by: at most 100 characters, not 101"},
		{"a tab in the time zone", func(r *agentproto.EnlistRequest) { r.TimeZone = "Europe/\tParis" }, "time_zone: only printable text on one line"},
		{"a NUL in the version", func(r *agentproto.EnlistRequest) { r.Version = "1.0\x00" }, "version: only printable text on one line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := good
			c.change(&req)
			w := serve(m, nil, http.MethodPost, agentproto.PathEnlist, req)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("got %d, want 400 %s %q", w.Code, muster.EINVALID, c.msg)
			}
			if code, msg := errorReply(t, w); code != muster.EINVALID || !strings.Contains(msg, c.msg) {
				t.Errorf("got %s %q, want %s %q", code, msg, muster.EINVALID, c.msg)
			}
		})
	}
	if w := serve(m, nil, http.MethodPost, agentproto.PathEnlist, good); w.Code != http.StatusOK {
		t.Fatalf("enlisting with the token after the refusals: %d %s", w.Code, w.Body)
	}
	got, err := m.Catalog.FindTarget(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Location != "rack 4" || got.EnlistedBy != "root" || got.TimeZone != "Europe/Paris" || got.Version != "1.0" {
		t.Errorf("enlisted at %q by %q in %q, version %q; want what the request said", got.Location, got.EnlistedBy, got.TimeZone, got.Version)
	}
}

// renewExpiredRequest is a renewal of cert for a new key, signed with
// signer (the certificate's own key for a valid proof).
func renewExpiredRequest(t *testing.T, cert []byte, signer *ecdsa.PrivateKey, name string) agentproto.RenewExpiredRequest {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, signer, pki.RenewalDigest(csr))
	if err != nil {
		t.Fatal(err)
	}
	return agentproto.RenewExpiredRequest{Cert: cert, CSR: csr, Signature: sig}
}

// Failed proofs of possession count against the certificate they claim:
// a valid proof for another certificate from the same address is served.
func TestRenewExpiredFailuresDoNotRefuseAValidProof(t *testing.T) {
	clk := &pinned{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	m := testMaster(t, func(c *Config) { c.Now = clk.Now; c.CertTTL = time.Hour })
	web1, web2 := enlist(t, m, "web1"), enlist(t, m, "web2")
	clk.Add(2 * time.Hour) // both certificates expired while the master was away

	// Someone holding web2's certificate, but not its key, tries 20 times.
	stranger, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for range 20 {
		w := serve(m, nil, http.MethodPost, agentproto.PathRenewExpired, renewExpiredRequest(t, web2.cert.Raw, stranger, "web2"))
		counts[w.Code]++
	}
	if counts[http.StatusUnauthorized] != 10 || counts[http.StatusTooManyRequests] != 10 {
		t.Errorf("20 forged proofs were answered %v; want 10 × 401, then 10 × 429", counts)
	}
	// Certificates this master never issued are refused, whatever their number.
	for range 20 {
		w := serve(m, nil, http.MethodPost, agentproto.PathRenewExpired, agentproto.RenewExpiredRequest{Cert: []byte("not a certificate")})
		if w.Code != http.StatusUnauthorized || errorCode(t, w) != muster.EUNAUTHORIZED {
			t.Fatalf("a certificate not issued here: %d %s, want 401", w.Code, w.Body)
		}
	}
	w := serve(m, nil, http.MethodPost, agentproto.PathRenewExpired, renewExpiredRequest(t, web1.cert.Raw, web1.key, "web1"))
	if w.Code != http.StatusOK {
		t.Errorf("web1's valid proof from the same address: %d %s, want 200", w.Code, w.Body)
	}
	// web2's owner, from another address, is not held back either.
	w = serveFrom(m, "198.51.100.7:5000", nil, http.MethodPost, agentproto.PathRenewExpired, renewExpiredRequest(t, web2.cert.Raw, web2.key, "web2"))
	if w.Code != http.StatusOK {
		t.Errorf("web2's valid proof from its own address: %d %s, want 200", w.Code, w.Body)
	}
}

// The failures kept stay bounded under a spray of names.
func TestFailureLimiterIsBounded(t *testing.T) {
	l := newFailureLimiter(10, time.Minute)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	n := 0
	for i := range 3 * maxFailureKeys {
		l.fail(failureKey{kind: "enlist", addr: "192.0.2.1", subject: "t" + string(rune('a'+i%26)) + time.Duration(i).String()}, now)
		n++
	}
	if n != 3*maxFailureKeys || len(l.fails) > maxFailureKeys {
		t.Errorf("after %d failures under distinct keys the limiter holds %d keys; want at most %d", n, len(l.fails), maxFailureKeys)
	}
}

// A target deleted while it was away for longer than its certificate
// lived still collects its DEFECT when it returns: its proof of possession
// renews the certificate, which, as its old one, serves only to collect
// the DEFECT. Refused, the target would never learn it was deleted, and
// would go on running its jobs on its own schedules.
func TestDeletedTargetWithAnExpiredCertificateCollectsItsDefect(t *testing.T) {
	clk := &pinned{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	m := testMaster(t, func(c *Config) { c.Now = clk.Now; c.CertTTL = time.Hour })
	web1 := enlist(t, m, "web1")
	if err := m.Catalog.DeleteTarget(context.Background(), "web1", false, m.Self()); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour) // away for longer than its certificate lived

	w := serve(m, nil, http.MethodPost, agentproto.PathRenewExpired, renewExpiredRequest(t, web1.cert.Raw, web1.key, "web1"))
	if w.Code != http.StatusOK {
		t.Fatalf("the deleted target's proof of possession: %d %s, want 200", w.Code, w.Body)
	}
	var renewed agentproto.RenewResponse
	if err := json.Unmarshal(w.Body.Bytes(), &renewed); err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(renewed.Cert)
	if err != nil {
		t.Fatal(err)
	}
	cs := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert},
		VerifiedChains: [][]*x509.Certificate{{cert, m.CA.Cert}}}
	w = serve(m, cs, http.MethodGet, agentproto.PathInstructions+"?after=0&wait=0&poll_interval=60", nil)
	var poll agentproto.PollResponse
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &poll) != nil || len(poll.Instructions) != 1 || poll.Instructions[0].Operation != muster.OpDefect {
		t.Fatalf("the renewed tombstone's poll: %d %s, want its DEFECT", w.Code, w.Body)
	}
	// The new certificate is a tombstone's as the old one was.
	if w := serve(m, cs, http.MethodPost, agentproto.PathRuns, agentproto.RunsRequest{}); w.Code != http.StatusGone {
		t.Errorf("the renewed tombstone uploads runs: %d %s, want 410", w.Code, w.Body)
	}
	if w := serve(m, cs, http.MethodPost, agentproto.PathRenew, agentproto.RenewRequest{}); w.Code != http.StatusGone {
		t.Errorf("the renewed tombstone renews over mutual TLS: %d %s, want 410", w.Code, w.Body)
	}
}
