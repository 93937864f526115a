package master_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/sqlite"
	"github.com/musterhq/muster/internal/testenv"
)

// identity is a client certificate and the key presented with it.
type identity struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func (id identity) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.cert.Raw}, PrivateKey: id.key, Leaf: id.cert}
}

// enlistRaw enlists a target named name over the agent protocol, as the
// target does, and returns its identity.
func enlistRaw(t *testing.T, env *testenv.Env, name string) identity {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	var resp agentproto.EnlistResponse
	if err := call(env, nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{Token: env.Token(name), Name: name, CSR: csr, PollInterval: 60}, &resp); err != nil {
		t.Fatalf("enlist %s: %v", name, err)
	}
	cert, err := pki.ParseCertPEM(resp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return identity{cert: cert, key: key}
}

// client returns an HTTP client that trusts the master and presents cert,
// when not nil.
func client(env *testenv.Env, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: env.Master.CA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// call sends one agent-protocol request presenting id, if any.
func call(env *testenv.Env, id *identity, method, path string, in, out any) error {
	var cert *tls.Certificate
	if id != nil {
		c := id.tls()
		cert = &c
	}
	hc := client(env, cert)
	defer hc.CloseIdleConnections()
	return jsonhttp.Do(context.Background(), hc, jsonhttp.Request{Method: method, URL: env.Master.URL + path, In: in, Out: out,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
}

// catalogRows counts the rows of every table of the master's catalog.
func catalogRows(t *testing.T, env *testenv.Env) map[string]int {
	t.Helper()
	write, read, err := sqlite.Open(filepath.Join(env.Dir, "master", master.CatalogFile), "NORMAL", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer write.Close()
	defer read.Close()
	rows, err := read.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	counts := map[string]int{}
	for _, table := range tables {
		var n int
		if err := read.QueryRow(`SELECT COUNT(*) FROM "` + table + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	if len(counts) < 5 {
		t.Fatalf("the catalog has %d tables: %v", len(counts), tables)
	}
	return counts
}

// requestBody is what a negative case sends to route: for the routes that
// take no certificate, a request that names a target and carries a proof
// that does not hold, so that only the certificate could make it pass.
func requestBody(route master.AgentRoute) []byte {
	switch {
	case strings.HasSuffix(route.Pattern, agentproto.PathEnlist):
		return []byte(`{"token":"mst1.` + strings.Repeat("0", 64) + `.` + strings.Repeat("x", 43) + `","name":"web1","poll_interval":60}`)
	case strings.HasSuffix(route.Pattern, agentproto.PathRenewExpired):
		return []byte(`{"cert":"AAAA","csr":"AAAA","signature":"AAAA"}`)
	case strings.HasPrefix(route.Pattern, "GET "):
		return nil
	}
	return []byte(`{}`)
}

// outcome is how a request was refused: "tls" when the handshake or the
// TLS layer refused it, else its HTTP status.
func outcome(t *testing.T, env *testenv.Env, cert *tls.Certificate, route master.AgentRoute) string {
	t.Helper()
	method, path, _ := strings.Cut(route.Pattern, " ")
	req, err := http.NewRequest(method, env.Master.URL+path+"?after=0&poll_interval=60&wait=0", bytes.NewReader(requestBody(route)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	hc := client(env, cert)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		// crypto/tls reports an alert the peer sent as a *net.OpError
		// whose Op is "remote error".
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			return "tls"
		}
		t.Fatalf("%s: %v, neither a TLS refusal nor a reply", route.Pattern, err)
	}
	defer resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// plaintext sends route's request without TLS and returns the reply's
// status line, which the TLS layer writes.
func plaintext(t *testing.T, env *testenv.Env, route master.AgentRoute) string {
	t.Helper()
	method, path, _ := strings.Cut(route.Pattern, " ")
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.Master.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := requestBody(route)
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: master\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "closed"
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(b.String(), "HTTP request to an HTTPS server") {
		return "tls"
	}
	return strconv.Itoa(resp.StatusCode)
}

// Every endpoint of the target protocol, as the master lists them, refuses
// a client without a certificate this master issued to an active target,
// at TLS or with 401, 403 or 410, and writes nothing to the catalog.
func TestAgentRoutesRefuseBadCertificates(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ca := env.Master.CA
	now := time.Now()

	web1 := enlistRaw(t, env, "web1")
	gone := enlistRaw(t, env, "gone") // defects
	if err := call(env, &gone, http.MethodPost, agentproto.PathDefect, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	deleted := enlistRaw(t, env, "deleted") // deleted on the master, its DEFECT not yet collected
	if err := env.Client.DeleteTarget(context.Background(), "deleted", false); err != nil {
		t.Fatal(err)
	}

	other, _, err := pki.LoadOrCreateCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(ca *pki.CA, notBefore time.Time, ttl time.Duration) *tls.Certificate {
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.SignTargetKey(&key.PublicKey, "web1", "uid", notBefore, ttl)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		id := identity{cert: cert, key: key}.tls()
		return &id
	}
	// A certificate of this CA for a server, not a client: the master's own.
	serverUse, err := pki.LoadOrIssueServerCert(t.TempDir(), ca, []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	mismatched := identity{cert: web1.cert, key: stranger}.tls()
	noCert, goneCert, deletedCert := (*tls.Certificate)(nil), gone.tls(), deleted.tls()

	cases := []struct {
		name string
		cert *tls.Certificate
		want func(master.AgentRoute) string // "" to skip the route
	}{
		{"plaintext", nil, nil},
		{"no certificate", noCert, func(master.AgentRoute) string { return "401" }},
		{"another CA", mint(other, now, time.Hour), tlsRefusal},
		{"a server certificate", &serverUse, tlsRefusal},
		{"expired", mint(ca, now.Add(-48*time.Hour), 24*time.Hour), tlsRefusal},
		{"not yet valid", mint(ca, now.Add(time.Hour+pki.Backdate), 24*time.Hour), tlsRefusal},
		{"another key", &mismatched, tlsRefusal},
		{"a defected target", &goneCert, func(master.AgentRoute) string { return "401" }},
		{"a deleted target", &deletedCert, func(r master.AgentRoute) string {
			switch r.Access {
			case master.AccessTombstone:
				return "" // served by design: it collects its DEFECT there
			case master.AccessTarget:
				return "410"
			}
			return "401"
		}},
	}
	routes := env.Master.AgentRoutes()
	if len(routes) < 11 {
		t.Fatalf("the master lists %d agent routes: %v", len(routes), routes)
	}
	before := catalogRows(t, env)
	tried := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, route := range routes {
				var got, want string
				if tc.want == nil {
					got, want = plaintext(t, env, route), "tls"
				} else {
					if want = tc.want(route); want == "" {
						continue
					}
					got = outcome(t, env, tc.cert, route)
				}
				tried++
				if got != want {
					t.Errorf("%s: %s, want %s", route.Pattern, got, want)
				}
			}
		})
	}
	after := catalogRows(t, env)
	for table, n := range before {
		if after[table] != n {
			t.Errorf("table %s: %d rows before, %d after", table, n, after[table])
		}
	}
	// Each case on each route, but the deleted target's on the routes that
	// serve it.
	if want := len(cases)*len(routes) - countAccess(routes, master.AccessTombstone); tried != want {
		t.Errorf("%d requests tried, want %d", tried, want)
	}
}

func tlsRefusal(master.AgentRoute) string { return "tls" }

func countAccess(routes []master.AgentRoute, a master.Access) int {
	n := 0
	for _, r := range routes {
		if r.Access == a {
			n++
		}
	}
	return n
}
