package pgstore_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/internal/listtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// Each operator's list, at 100,000 rows a table, reads an index in the
// order of its list and stops at its limit: no plan reads its table whole
// (Seq Scan), or sorts all it read.
func TestListsReadAnIndexAt100000Rows(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 500,000 rows")
	}
	ctx := context.Background()
	s := catalogtest.OpenPostgres(t, catalogtest.PostgresURL(t))
	listtest.SeedLists(t, s, func(ctx context.Context, q string) error { return pgstore.Exec(ctx, s, q) })
	checked := 0
	for _, c := range listtest.ListCalls {
		var plans []string
		start := time.Now()
		if err := c.Call(ctx, pgstore.Explained(t, s, c.From, &plans)); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		took := time.Since(start)
		t.Logf("%s (%s):\n%s", c.Name, took.Round(time.Microsecond), strings.Join(plans, "\n"))
		if len(plans) == 0 {
			t.Errorf("%s ran no statement with %q", c.Name, c.From)
		}
		if why := c.Exempt["postgres"]; why != "" {
			t.Logf("%s may read more than its page: %s", c.Name, why)
			checked++
			continue
		}
		for _, line := range plans {
			if m := sortAll.FindStringSubmatch(line); wholeTable.MatchString(line) || m != nil && len(m[1]) > 3 {
				t.Errorf("%s: %q in its plan:\n%s", c.Name, strings.TrimSpace(line), strings.Join(plans, "\n"))
			}
		}
		checked++
	}
	if checked != len(listtest.ListCalls) {
		t.Fatalf("checked %d lists, want %d", checked, len(listtest.ListCalls))
	}
}

var (
	wholeTable = regexp.MustCompile(`Seq Scan on (runs|events|deliveries|audit|instructions)\b`)
	// A Sort (not an Incremental Sort of ties) of more than a page of
	// rows, by the planner's estimate: a few dozen of a rare job's are
	// sorted rather than read in order, as the planner sees fit.
	sortAll = regexp.MustCompile(`^\s*(?:->\s*)?Sort  \(cost=\S+ rows=(\d+)`)
)
