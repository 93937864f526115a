package master

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster"
	targetagent "github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testMaster opens a master in a temporary directory without serving it:
// tests send requests to its handler directly, which is what the listener
// would call. adjust, when not nil, changes the configuration first.
func testMaster(t testing.TB, adjust func(*Config)) *Main {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testTarget is a target enlisted through the master's own handler: its
// key, and the TLS state of a connection on which it presented the
// certificate it was given.
type testTarget struct {
	name string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	tls  *tls.ConnectionState
}

// enlist enlists a target named name from testAddr, with a token made for
// it, and fails the test unless the master takes it.
func enlist(t testing.TB, m *Main, name string) testTarget {
	t.Helper()
	return enlistFrom(t, m, testAddr, name)
}

// enlistFrom is enlist from the address addr.
func enlistFrom(t testing.TB, m *Main, addr, name string) testTarget {
	t.Helper()
	tok, _, err := m.NewEnlistToken(context.Background(), name, time.Hour, m.Self())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	w := serveFrom(m, addr, nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{Token: tok, Name: name, CSR: csr, PollInterval: 60})
	if w.Code != http.StatusOK {
		t.Fatalf("enlist %s: %d %s", name, w.Code, w.Body)
	}
	var resp agentproto.EnlistResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(resp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return testTarget{name: name, key: key, cert: cert,
		tls: &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert},
			VerifiedChains: [][]*x509.Certificate{{cert, m.CA.Cert}}}}
}

// testAddr is where requests come from unless a test says otherwise.
const testAddr = "192.0.2.10:40000"

// serve sends a request to the master's handler as a connection from
// testAddr with state cs (none: no client certificate) would, body encoded
// as JSON unless it is a []byte or nil.
func serve(m *Main, cs *tls.ConnectionState, method, target string, body any) *httptest.ResponseRecorder {
	return serveFrom(m, testAddr, cs, method, target, body)
}

// serveFrom is serve from the address addr.
func serveFrom(m *Main, addr string, cs *tls.ConnectionState, method, target string, body any) *httptest.ResponseRecorder {
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	r := httptest.NewRequest(method, target, bytes.NewReader(b))
	if body == nil {
		r = httptest.NewRequest(method, target, nil)
	}
	return serveRequest(m, addr, cs, r)
}

// serveRequest sends r to the master's handler as a connection from addr
// with state cs (none: no client certificate) would.
func serveRequest(m *Main, addr string, cs *tls.ConnectionState, r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = addr
	r.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	if cs == nil {
		cs = &tls.ConnectionState{HandshakeComplete: true}
	}
	r.TLS = cs
	w := httptest.NewRecorder()
	m.srv.Handler.ServeHTTP(w, r)
	return w
}

// errorCode returns the code of an error reply.
func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	code, _ := errorReply(t, w)
	return code
}

// errorReply returns the code and message of an error reply.
func errorReply(t testing.TB, w *httptest.ResponseRecorder) (code, message string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("reply %d is not an error body: %q", w.Code, w.Body)
	}
	return body.Error.Code, body.Error.Message
}

// A master's data directory is locked while it runs: a second master on it
// is refused, naming the first, and starts once the first has closed.
func TestDataDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Main, error) {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m, m.Open(context.Background())
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); muster.ErrorCode(err) != muster.ECONFLICT {
		t.Fatalf("a second master on the same directory: %v, want refused as a conflict", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := open()
	if err != nil {
		t.Fatalf("a master on the directory once the first closed: %v", err)
	}
	again.Close()
}

// A target's data directory cannot be a master's (a target cannot be a
// master, as a master cannot be a target): the master refuses it, saying
// so, and writes no catalog into it.
func TestTargetDataDirectoryIsNotAMasters(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, targetagent.StoreFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Open(context.Background())
	if err == nil {
		m.Close()
	}
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "is a target's data directory") {
		t.Errorf("a master on a target's data directory: %v (code %q), want refused as a target's", err, muster.ErrorCode(err))
	}
	if _, err := os.Stat(filepath.Join(dir, CatalogFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a catalog was written into the target's data directory: %v", err)
	}
}
