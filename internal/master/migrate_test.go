package master

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A master whose SQLite catalog is kept out of its data directory
// (--store sqlite:PATH) has its CA in the data directory, not beside the
// catalog: muster store migrate is told where with --data, and says so
// when it finds no CA beside a catalog it was not told about.
func TestMigrateStoreTakesTheCAFromTheDataDirectory(t *testing.T) {
	ctx := context.Background()
	dataDir, catalogPath := t.TempDir(), filepath.Join(t.TempDir(), CatalogFile)
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Store, cfg.Listen = dataDir, "sqlite:"+catalogPath, "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	fingerprint := m.CA.Fingerprint()
	enlist(t, m, "web1")
	m.Close()

	b := make([]byte, 32)
	rand.Read(b)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := catalogtest.PostgresURL(t)
	_, err = MigrateStore(ctx, "sqlite:"+catalogPath, url, secret, "")
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("a migration without the data directory of a catalog kept apart: %v (code %s), want %s naming --data", err, muster.ErrorCode(err), muster.EINVALID)
	}
	moved, err := MigrateStore(ctx, "sqlite:"+catalogPath, url, secret, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if moved.CAFingerprint != fingerprint || moved.Rows["targets"] != 1 {
		t.Errorf("copied the CA %s and %d targets, want the master's CA %s and its target", moved.CAFingerprint, moved.Rows["targets"], fingerprint)
	}
}
