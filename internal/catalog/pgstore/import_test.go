package pgstore_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// rowsSource is a catalog to copy from, held in memory.
type rowsSource map[string]struct {
	cols []string
	rows [][]any
}

func (s rowsSource) Dump(_ context.Context, table string, fn func([]string, []any) error) error {
	for _, r := range s[table].rows {
		if err := fn(s[table].cols, append([]any(nil), r...)); err != nil {
			return err
		}
	}
	return nil
}

// Text PostgreSQL cannot hold (a NUL byte, which SQLite keeps in a run's
// message as well as anywhere) is copied with the character replaced,
// as invalid UTF-8 is, rather than failing the whole copy.
func TestImportReplacesWhatPostgresCannotHold(t *testing.T) {
	ctx := context.Background()
	s := catalogtest.OpenPostgres(t, catalogtest.PostgresURL(t))
	src := rowsSource{"meta": {cols: []string{"key", "value"}, rows: [][]any{{"note", "a\x00b\xffc"}}}}
	if _, err := s.Import(ctx, src, []string{"meta"}, nil); err != nil {
		t.Fatalf("import: %v", err)
	}
	v, ok, err := s.Meta(ctx, "note")
	if err != nil || !ok || v != "a\uFFFDb\uFFFDc" {
		t.Fatalf("meta note after the copy: %q, %v, %v; want %q", v, ok, err, "a\uFFFDb\uFFFDc")
	}
}
