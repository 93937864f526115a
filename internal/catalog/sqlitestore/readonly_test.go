package sqlitestore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// A catalog that cannot be written (its filesystem turned read-only, as
// one does after an I/O error) is unavailable, said as such, not an
// internal error: /readyz then fails, and operators are told why.
func TestReadOnlyCatalogIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.write.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx catalog.Tx) error {
		_, err := tx.InsertMeta(ctx, "k", "v")
		return err
	})
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE || !strings.Contains(muster.ErrorMessage(err), "read-only") {
		t.Fatalf("a write to a read-only catalog: code %q (%v), want %q saying it is read-only", code, err, muster.EUNAVAILABLE)
	}
}
