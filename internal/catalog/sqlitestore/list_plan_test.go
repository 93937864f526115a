package sqlitestore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog/internal/listtest"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// Each operator's list, at 100,000 rows a table, walks an index (or the
// table's key) in the list's order and stops at its limit: no plan reads
// all the filter selects to sort it, whatever the filter and the cursor.
func TestListsReadAnIndexAt100000Rows(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 500,000 rows")
	}
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	listtest.SeedLists(t, s, func(ctx context.Context, q string) error {
		_, err := s.write.ExecContext(ctx, q)
		return err
	})
	checked := 0
	for _, c := range listtest.ListCalls {
		e := &explainer{Querier: &querier{db: s.write, stmts: s.writeStmts}, t: t, db: s.write, table: c.From, label: c.Name, plans: map[string][]string{}}
		start := time.Now()
		if err := c.Call(ctx, sqlstore.New(e, dialect)); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		took := time.Since(start)
		plan := e.plans[c.Name]
		t.Logf("%s (%s):\n\t%s", c.Name, took.Round(time.Microsecond), strings.Join(plan, "\n\t"))
		if len(plan) == 0 {
			t.Errorf("%s ran no statement with %q", c.Name, c.From)
		}
		if why := c.Exempt["sqlite"]; why != "" {
			t.Logf("%s may read more than its page: %s", c.Name, why)
			checked++
			continue
		}
		// SCAN t alone walks the table by its key, newest first, as the
		// list is ordered, and stops at the limit; a sort of what was read
		// means everything the filter selects was read.
		for _, line := range plan {
			if strings.HasPrefix(line, "USE TEMP B-TREE FOR ORDER BY") {
				t.Errorf("%s reads all it selects to sort it: %q in its plan:\n%s", c.Name, line, strings.Join(plan, "\n"))
			}
		}
		checked++
	}
	if checked != len(listtest.ListCalls) {
		t.Fatalf("checked %d lists, want %d", checked, len(listtest.ListCalls))
	}
}
