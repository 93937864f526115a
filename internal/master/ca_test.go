package master

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/pki"
)

// A master whose catalog its targets were enlisted in with one CA never
// starts with another: not with a new one made because the data
// directory's CA files are gone (restored to a new machine without them),
// nor with another master's. Either would leave every target unable to
// reach it, with nothing saying why.
func TestMasterKeepsToItsCatalogsCA(t *testing.T) {
	dir := t.TempDir()
	open := func(dataDir string) (*Main, error) {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Listen = dataDir, "127.0.0.1:0"
		cfg.Logger = slog.New(slog.DiscardHandler)
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m, m.Open(context.Background())
	}
	m, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fingerprint := m.CA.Fingerprint()
	enlist(t, m, "web1")
	m.Close()

	// The CA files are lost: no new CA is made.
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, f+".saved")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = open(dir)
	if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), fingerprint) {
		t.Fatalf("a master without its CA files: %v, want EPRECONDITION naming the CA %s", err, fingerprint)
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); !os.IsNotExist(err) {
		t.Errorf("a refused start made a CA key: %v", err)
	}

	// Another master's CA beside the catalog is refused too.
	other := t.TempDir()
	if _, _, err := pki.LoadOrCreateCA(other, m.now()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(other, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = open(dir)
	if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), fingerprint) {
		t.Fatalf("a master with another CA: %v, want EPRECONDITION naming the CA %s", err, fingerprint)
	}

	// With its own CA back, it starts.
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if err := os.Rename(filepath.Join(dir, f+".saved"), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	m, err = open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.CreatedCA || m.CA.Fingerprint() != fingerprint {
		t.Errorf("restarted with CA %s (created %v), want %s", m.CA.Fingerprint(), m.CreatedCA, fingerprint)
	}
	m.Close()

	// A catalog from before the fingerprint was recorded, with enlisted
	// targets, is not given a new CA either.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, CatalogFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM meta WHERE key = ?`, metaCAFingerprint); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = open(dir)
	if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), "1 enlisted targets") {
		t.Fatalf("a master without its CA files, its catalog without the CA's fingerprint: %v, want EPRECONDITION", err)
	}
}

// A --host the server certificate could never match (a URL, a port, a
// bracketed address, a space) is refused when the master is configured,
// naming it and the form it takes, not written into the certificate for
// targets to fail on later. Names and addresses are taken.
func TestHostsAreNamesOrAddresses(t *testing.T) {
	for _, bad := range []string{"https://m1.example.com:7070", "m1.example.com:7070", "[::1]", "bad name", "", "m1..example.com", "-m1.example.com",
		"*", "m1.*.example.com", strings.Repeat("a", 64) + ".example.com"} {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Hosts = t.TempDir(), []string{"m1.example.com", bad}
		_, err := New(cfg)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "--host") || !strings.Contains(err.Error(), "host name or an address") {
			t.Errorf("--host %q: %v, want EINVALID naming --host and what it takes", bad, err)
		}
	}
	for _, good := range []string{"m1.example.com", "M1.Example.COM", "m1.example.com.", "*.example.com", "10.0.0.5", "::1", "fe80::1", "master", "xn--bcher-kva.example", "a-b_c.example"} {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Hosts = t.TempDir(), []string{good}
		if _, err := New(cfg); err != nil {
			t.Errorf("--host %q: %v, want it taken", good, err)
		}
	}
}

// lockedBuffer is a log sink several goroutines may write.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A master whose CA ends within a year says so when it starts, with the
// date, and one whose CA has ended says that nothing can verify it: from
// the CA's end no target or operator can reach the master, and nothing
// else would say why.
func TestMasterWarnsOfItsCAsEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		left  time.Duration // of the CA's life when the master starts
		level string
		says  string
	}{
		{"ten years left", pki.CAValidity, "", ""},
		{"thirty days left", 30 * 24 * time.Hour, "level=WARN", "the certificate authority expires"},
		{"ended a day ago", -24 * time.Hour, "level=ERROR", "the certificate authority expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			dir := t.TempDir()
			ca, _, err := pki.LoadOrCreateCA(dir, now.Add(tc.left-pki.CAValidity))
			if err != nil {
				t.Fatal(err)
			}
			var log lockedBuffer
			testMaster(t, func(c *Config) {
				c.DataDir, c.Logger = dir, slog.New(slog.NewTextHandler(&log, nil))
			})
			end := ca.Cert.NotAfter.UTC().Format(time.RFC3339)
			lines := 0
			for _, line := range strings.Split(log.String(), "\n") {
				if strings.Contains(line, "certificate authority expire") {
					lines++
					if !strings.Contains(line, tc.level) || !strings.Contains(line, tc.says) || !strings.Contains(line, end) {
						t.Errorf("the master logged %q; want %s saying %q and the CA's end, %s", line, tc.level, tc.says, end)
					}
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tc.says == ""]; lines != want {
				t.Errorf("%d lines about the CA's end, want %d; the log:\n%s", lines, want, log.String())
			}
		})
	}
}

// A master of a catalog on PostgreSQL keeps only ca.pem in its data
// directory. Started there without its --store, it is told to give it,
// not to remove ca.pem, which would make it a new master with a new CA
// that no target trusts.
func TestMasterWithOnlyCAPemAsksForItsStore(t *testing.T) {
	dir := t.TempDir()
	caDir := t.TempDir()
	if _, _, err := pki.LoadOrCreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.CACertFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = dir, "127.0.0.1:0", slog.New(slog.DiscardHandler)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Open(context.Background())
	if muster.ErrorCode(err) != muster.EPRECONDITION {
		t.Fatalf("a master with ca.pem alone: %v, want EPRECONDITION", err)
	}
	for _, want := range []string{pki.CAKeyFile, "--store", "--secret-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "remove both") {
		t.Errorf("the refusal %q says to remove ca.pem", err)
	}
	for _, f := range []string{pki.CAKeyFile, CatalogFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("a refused start made %s: %v", f, err)
		}
	}
}
