package master

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testdb"
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

// muster store migrate pointed at a SQLite file that is not a master's
// catalog (a target's store, another program's database) refuses it as
// such, and leaves it as it was: it does not apply the catalog's migrations
// to it, as opening it as a catalog would.
func TestMigrateStoreRefusesAFileThatIsNotACatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	certPEM, keyPEM, err := pki.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{pki.CACertFile: certPEM, pki.CAKeyFile: keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = MigrateStore(ctx, "sqlite:"+path, catalogtest.PostgresURL(t), secret, "")
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "not a muster catalog") {
		t.Fatalf("a migration from another program's database: %v (code %s), want %s saying it is not a muster catalog", err, muster.ErrorCode(err), muster.EINVALID)
	}
	db, err = sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := testdb.Column(t, db, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if len(tables) != 1 || tables[0] != "orders" {
		t.Errorf("the database holds the tables %q after the refusal, want only its own, orders", tables)
	}
}
