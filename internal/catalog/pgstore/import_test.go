package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
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

// A table is copied in batches, bounded in rows and in bytes, as it is
// read, not held whole: every row arrives, whichever bound ends a batch.
func TestImportCopiesInBatches(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		rows, bytes int
	}{{"by rows", 7, 1 << 20}, {"by bytes", 1000, 2500}} {
		t.Run(c.name, func(t *testing.T) {
			defer pgstore.SetImportBatch(c.rows, c.bytes)()
			s := catalogtest.OpenPostgres(t, catalogtest.PostgresURL(t))
			var rows [][]any
			for i := range 25 {
				rows = append(rows, []any{fmt.Sprintf("k%02d", i), strings.Repeat(string(rune('a'+i)), 1000)})
			}
			src := rowsSource{"meta": {cols: []string{"key", "value"}, rows: rows}}
			counts, err := s.Import(ctx, src, []string{"meta"}, nil)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if counts["meta"] != 25 {
				t.Errorf("%d rows copied, want 25", counts["meta"])
			}
			checked := 0
			for i := range 25 {
				v, ok, err := s.Meta(ctx, fmt.Sprintf("k%02d", i))
				if err != nil || !ok || v != rows[i][1] {
					t.Errorf("k%02d after the copy: %d bytes, %v, %v", i, len(v), ok, err)
				}
				checked++
			}
			if checked != 25 {
				t.Fatalf("checked %d rows, want 25", checked)
			}
		})
	}
}

// Schemas made at the same moment (tests side by side, benchmarks) get
// names of their own: a name taken from a time-ordered id collided within
// a millisecond.
func TestNewSchemasAtOnce(t *testing.T) {
	dsn := catalogtest.PostgresDSN(t)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, drop, err := pgstore.NewSchema(ctx, dsn, "muster_test_")
			if err == nil {
				t.Cleanup(func() { drop(context.Background()) })
			}
			errs[i] = err
		})
	}
	wg.Wait()
	made := 0
	for _, err := range errs {
		if err != nil {
			t.Error(err)
			continue
		}
		made++
	}
	if made != n {
		t.Errorf("%d of %d schemas made", made, n)
	}
}
