package master

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/pki"
)

// A master alone on a shared catalog gives its targets no list of
// masters: its own URL, made from its listener, may not be how they reach
// it, and a list replaces theirs. Once another master has said it is
// alive, both are given.
func TestAMasterAloneGivesNoMasters(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	m := testMaster(t, func(c *Config) { c.Store, c.SecretFile, c.Listen = url, secret, "0.0.0.0:0" })
	ctx := context.Background()
	if err := m.recheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.masterURLs(); len(got) != 0 {
		t.Errorf("alone, the master gives its targets %v, want none", got)
	}
	other := "https://m2.example:7070"
	if _, err := m.Catalog.UpsertMaster(ctx, catalog.MasterRow{Name: "m2", URL: other, StartedAt: time.Now(), SeenAt: time.Now()}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := m.recheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.masterURLs(); len(got) != 2 || !slices.Contains(got, m.URL) || !slices.Contains(got, other) {
		t.Errorf("with another master, it gives %v, want its own URL %s and %s", got, m.URL, other)
	}
}

// Two masters of one catalog advertising one URL would each believe
// itself alone (it is the only URL the catalog lists): neither would
// notify the other of its commits, and targets would have no second
// master to move to. A master whose --advertise another master serving
// the catalog has recorded is refused, naming it; the same master
// started again is not, nor is one taking the URL of a master gone
// quiet. The master that lost its URL so says, at its next check.
func TestTwoMastersAdvertisingOneURL(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	const addr = "https://m.example.com:7070"
	shared := func(name string, now func() time.Time) func(*Config) {
		return func(c *Config) {
			c.Store, c.SecretFile, c.Advertise, c.Name, c.Now = url, secret, addr, name, now
		}
	}
	base := time.Now()
	m1 := testMaster(t, shared("m1", func() time.Time { return base }))

	cfg := DefaultConfig()
	shared("m2", func() time.Time { return base.Add(time.Second) })(&cfg)
	cfg.DataDir, cfg.Listen, cfg.Logger = t.TempDir(), "127.0.0.1:0", m1.log
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m2.Open(context.Background())
	if code := muster.ErrorCode(err); code != muster.ECONFLICT || !strings.Contains(err.Error(), "--advertise "+addr) || !strings.Contains(err.Error(), "master m1") {
		t.Fatalf("a second master advertising %s: %q (%s), want a conflict naming the flag and master m1", addr, err, code)
	}

	// m1 started again, in another directory: its own row, not another's.
	testMaster(t, shared("m1", func() time.Time { return base.Add(2 * time.Second) }))

	// m1 gone quiet (frozen) for longer than three checks: m3 takes the
	// URL, and m1, resumed, is told.
	later := base.Add(3*DefaultConfig().RecheckInterval + 3*time.Second)
	testMaster(t, shared("m3", func() time.Time { return later }))
	err = m1.recheckOnce(context.Background())
	if code := muster.ErrorCode(err); code != muster.ECONFLICT || !strings.Contains(err.Error(), "master m3") {
		t.Fatalf("m1's check after m3 took its URL: %q (%s), want a conflict naming master m3", err, code)
	}
}

// A master of a shared catalog without --advertise is given to the targets
// at the URL made from its listener; from a loopback listener (the
// default, 127.0.0.1:7070), a URL no target on another host can reach it
// by. It says so when it starts, naming the flag; a master alone, or given
// its URL, or listening on every address, says nothing of it.
func TestMasterWarnsOfALoopbackURLOnASharedCatalog(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	for _, c := range []struct {
		name      string
		shared    bool
		listen    string
		advertise string
		warned    bool
	}{
		{"shared, loopback listener", true, "127.0.0.1:0", "", true},
		{"shared, loopback listener, advertised", true, "127.0.0.1:0", "https://m1.example.com:7070", false},
		{"shared, every address", true, "0.0.0.0:0", "", false},
		{"alone, loopback listener", false, "127.0.0.1:0", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log lockedBuffer
			m := testMaster(t, func(cfg *Config) {
				cfg.Listen, cfg.Advertise, cfg.Name = c.listen, c.advertise, c.name
				cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
				if c.shared {
					cfg.Store, cfg.SecretFile = url, secret
				}
			})
			lines := 0
			for _, line := range strings.Split(log.String(), "\n") {
				if strings.Contains(line, "reached from this host only") {
					lines++
					if !strings.Contains(line, "level=WARN") || !strings.Contains(line, m.URL) || !strings.Contains(line, "--advertise") {
						t.Errorf("the master logged %q; want a warning naming its URL %s and --advertise", line, m.URL)
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[c.warned]; lines != want {
				t.Errorf("%d lines about a loopback URL, want %d; the log:\n%s", lines, want, log.String())
			}
		})
	}
}

// A master given another secret than the one the catalog's CA key was
// sealed with is refused, naming the flag: it writes no ca.pem, and the
// catalog keeps its CA as it was, for the masters that have the secret.
func TestMasterWithAnotherSecretIsRefused(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	m1 := testMaster(t, func(c *Config) { c.Store, c.SecretFile, c.Name = url, secret, "m1" })
	ctx := context.Background()
	before, _, err := m1.Catalog.Store().Meta(ctx, metaCAKey)
	if err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = t.TempDir(), "127.0.0.1:0", m1.log
	cfg.Store, cfg.SecretFile, cfg.Name = url, catalogtest.SecretFile(t), "m2"
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m2.Open(ctx)
	if code := muster.ErrorCode(err); code != muster.EPRECONDITION || !strings.Contains(err.Error(), "--secret-file "+cfg.SecretFile+": the catalog's CA key was sealed with another secret") {
		t.Fatalf("a master with another secret: %v (%s), want a precondition error naming --secret-file", err, code)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, pki.CACertFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused master's %s: %v, want none written", pki.CACertFile, err)
	}
	after, _, err := m1.Catalog.Store().Meta(ctx, metaCAKey)
	if err != nil || after != before {
		t.Errorf("the catalog's CA key changed when a master with another secret started (%v)", err)
	}
	m3 := testMaster(t, func(c *Config) { c.Store, c.SecretFile, c.Name = url, secret, "m3" })
	if m3.CA.Fingerprint() != m1.CA.Fingerprint() {
		t.Errorf("a master with the catalog's secret, after the refusal, has CA %s; want the catalog's, %s", m3.CA.Fingerprint(), m1.CA.Fingerprint())
	}
}
