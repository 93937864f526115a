package master

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A master alone on a shared catalog gives its targets no list of
// masters: its own URL, made from its listener, may not be how they reach
// it, and a list replaces theirs. Once another master has said it is
// alive, both are given.
func TestAMasterAloneGivesNoMasters(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	key := make([]byte, 32)
	rand.Read(key)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testMaster(t, func(c *Config) { c.Store, c.SecretFile, c.Listen = url, secret, "0.0.0.0:0" })
	ctx := context.Background()
	if err := m.recheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.masterURLs(); len(got) != 0 {
		t.Errorf("alone, the master gives its targets %v, want none", got)
	}
	other := "https://m2.example:7070"
	if err := m.Catalog.UpsertMaster(ctx, catalog.MasterRow{Name: "m2", URL: other, StartedAt: time.Now(), SeenAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	if err := m.recheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.masterURLs(); len(got) != 2 || !slices.Contains(got, m.URL) || !slices.Contains(got, other) {
		t.Errorf("with another master, it gives %v, want its own URL %s and %s", got, m.URL, other)
	}
}
