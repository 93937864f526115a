package sqlagent_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/sqlagent"
)

// The script docs/migrate-from-sql-server.md shows imports to exactly the
// job file it shows.
func TestDocumentedImport(t *testing.T) {
	doc, err := os.ReadFile("../../docs/migrate-from-sql-server.md")
	if err != nil {
		t.Fatal(err)
	}
	script := regexp.MustCompile("(?s)```sql\n(.*?)```").FindSubmatch(doc)
	if script == nil {
		t.Fatal("the page shows no ```sql block")
	}
	var want []byte
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		if bytes.HasPrefix(b[1], []byte("jobs:")) {
			want = b[1]
			break
		}
	}
	if want == nil {
		t.Fatal("the page shows no job file")
	}
	res, err := sqlagent.Import([]sqlagent.Script{{Name: "nightly.sql", Text: script[1]}}, sqlagent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := jobfile.Write(&got, res.Jobs); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("the page's script imports to\n%s\nand the page shows\n%s", got.String(), want)
	}
	for _, f := range res.Findings {
		if f.Level != sqlagent.Note || !strings.Contains(f.Message, "in muster") && !strings.Contains(f.Message, "operator") {
			t.Errorf("the page's script reports more than renamings: %s", f)
		}
	}
}
