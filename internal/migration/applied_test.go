package migration

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "record the statements of migrations testdata/applied.txt has not seen")

// The migrations of every store, as the stores embed them.
var stores = []string{"../catalog/sqlitestore/migrations", "../catalog/pgstore/migrations", "../agent/migrations"}

// A migration is never changed once recorded: a store that applied it
// does not apply it again, so a statement added to it later (a column, a
// table) is missing from every store made before, whose masters or
// targets then fail at their first statement that needs it. A change goes
// in a new migration. Comments and layout may change; they are not
// recorded. A new migration is recorded with go test -run
// TestMigrationsAreNotChanged -update.
func TestMigrationsAreNotChanged(t *testing.T) {
	const golden = "testdata/applied.txt"
	recorded := map[string]string{}
	if b, err := os.ReadFile(golden); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if name, sum, ok := strings.Cut(sc.Text(), " "); ok {
				recorded[name] = sum
			}
		}
	}
	var lines []string
	for _, dir := range stores {
		files, err := List(os.DirFS(dir), ".")
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no migrations in %s", dir)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f.Name))
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(strings.TrimPrefix(dir, "../"), f.Name)
			sum := fmt.Sprintf("%x", sha256.Sum256([]byte(statements(string(b)))))
			lines = append(lines, name+" "+sum)
			switch was, ok := recorded[name]; {
			case ok && was != sum:
				t.Errorf("%s changed after it was recorded: stores that applied it will not apply it again; put the change in a new migration", name)
			case !ok && !*update:
				t.Errorf("%s is not recorded: record it with go test ./internal/migration -run %s -update", name, t.Name())
			}
		}
	}
	if *update {
		slices.Sort(lines)
		if err := os.WriteFile(golden, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var comment = regexp.MustCompile(`--[^\n]*`)

// statements returns a migration's statements without their comments, its
// whitespace folded to single spaces.
func statements(sql string) string {
	return strings.Join(strings.Fields(comment.ReplaceAllString(sql, "")), " ")
}
