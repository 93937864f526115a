package sqlagent_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/schedule"
	"github.com/musterhq/muster/internal/sqlagent"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata from what the import gives")

// corpusOptions are the maps every script of the corpus is imported with:
// one database mapped to a connection, one named instance to a target.
var corpusOptions = sqlagent.Options{
	Connections: map[string]string{"dba": "dba-tools"},
	Targets:     map[string]string{`SQL03\REPORTS`: "sql03-reports"},
}

// Each script of testdata imports to exactly its golden jobs.yaml, and
// reports exactly its golden findings. The scripts are in the shapes SSMS
// and dbatools write and in hand-written styles; run with -update after a
// deliberate change, and read the diff.
func TestCorpus(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 5 {
		t.Fatalf("found %d scripts in testdata; the corpus has more", len(scripts))
	}
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".sql")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := sqlagent.Import([]sqlagent.Script{{Name: filepath.Base(path), Text: text}}, corpusOptions)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Jobs) == 0 {
				t.Fatal("the script imports no job")
			}
			var jobs bytes.Buffer
			if err := jobfile.Write(&jobs, res.Jobs); err != nil {
				t.Fatal(err)
			}
			golden(t, "testdata/"+name+".yaml", jobs.Bytes())
			golden(t, "testdata/"+name+".report", report(res))

			// The golden jobs are a job file that apply takes, and every
			// schedule in it compiles.
			back, err := jobfile.Read(name+".yaml", bytes.NewReader(jobs.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range back {
				if err := schedule.ValidateAll(j.Schedules, time.UTC); err != nil {
					t.Errorf("job %s: %v", j.Name, err)
				}
			}
		})
	}
}

// report renders what an import found besides its jobs.
func report(res *sqlagent.Result) []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, "operators:")
	for _, o := range res.Operators {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(o.Name+" "+o.Email))
	}
	fmt.Fprintln(&b, "alerts:")
	for _, a := range res.Alerts {
		fmt.Fprintf(&b, "  %s: %s of job %s notifies %s\n", a.Name, a.Event, a.Job, strings.Join(a.Notify, ", "))
	}
	fmt.Fprintln(&b, strings.TrimSpace("categories: "+strings.Join(res.Categories, ", ")))
	fmt.Fprintln(&b, "unmapped:")
	for _, u := range res.Unmapped {
		fmt.Fprintf(&b, "  %s (jobs %s): %s\n", u.Server, strings.Join(u.Jobs, ", "), u.Reason)
	}
	fmt.Fprintln(&b, "findings:")
	for _, f := range res.Findings {
		fmt.Fprintf(&b, "  %s: %s\n", f.Level, f)
	}
	return b.Bytes()
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCorpus -update to write it, then read it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the import gives:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
