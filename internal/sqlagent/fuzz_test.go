package sqlagent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/schedule"
	"github.com/musterhq/muster/internal/sqlagent"
)

// FuzzImport reads any bytes as a script: it never panics, and whatever
// jobs it returns are valid and survive a trip through a job file. The
// seed corpus is the scripts of testdata and testdata/fuzz/FuzzImport.
func FuzzImport(f *testing.F) {
	scripts, _ := filepath.Glob("testdata/*.sql")
	for _, path := range scripts {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		res, err := sqlagent.Import([]sqlagent.Script{{Name: "fuzz.sql", Text: script}}, sqlagent.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res.Jobs {
			if err := j.Validate(); err != nil {
				t.Fatalf("an imported job is not valid: %v", err)
			}
			if err := schedule.ValidateAll(j.Schedules, time.UTC); err != nil {
				t.Fatalf("an imported job's schedules do not compile: %v", err)
			}
		}
		var buf bytes.Buffer
		if err := jobfile.Write(&buf, res.Jobs); err != nil {
			t.Fatal(err)
		}
		back, err := jobfile.Read("fuzz.yaml", &buf)
		if err != nil || len(back) != len(res.Jobs) {
			t.Fatalf("the imported jobs do not read back: %v", err)
		}
	})
}

// Scripts made to be costly (a step inserted first again and again, jobs
// and schedules by the thousand, comments nested deep, a job on thousands
// of servers) are read with memory in proportion to their size, and
// within muster's bounds on steps, schedules and jobs.
func TestImportBoundsWork(t *testing.T) {
	var b strings.Builder
	b.WriteString("EXEC sp_add_job @job_name = N'big'\n")
	for i := range 50000 {
		fmt.Fprintf(&b, "EXEC sp_add_jobstep @job_name = N'big', @step_id = 1, @step_name = N's%d', @command = N'SELECT 1', @on_fail_action = 4, @on_fail_step_id = 2\n", i)
	}
	for i := range 20000 {
		fmt.Fprintf(&b, "EXEC sp_add_jobschedule @job_name = N'big', @name = N'x%d', @freq_type = 4, @freq_interval = 1\n", i)
		fmt.Fprintf(&b, "EXEC sp_add_jobserver @job_name = N'big', @server_name = N'srv%d'\n", i)
	}
	for i := range 12000 {
		fmt.Fprintf(&b, "EXEC sp_add_job @job_name = N'j%d'\nEXEC sp_delete_job @job_name = N'j%d'\nEXEC sp_add_job @job_name = N'k%d'\n", i, i, i)
	}
	b.WriteString(strings.Repeat("/*", 100000) + strings.Repeat("*/", 100000))
	script := []byte(b.String())
	if len(script) > sqlagent.MaxScriptSize {
		t.Fatalf("the script is %d bytes, over the limit the test means to stay under", len(script))
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := sqlagent.Import([]sqlagent.Script{{Name: "big.sql", Text: script}}, sqlagent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte script: %d bytes allocated (%.1f per byte of script), %d findings",
		len(script), allocated, float64(allocated)/float64(len(script)), len(res.Findings))
	if limit := uint64(24 * len(script)); allocated > limit {
		t.Errorf("reading a %d-byte script allocated %d bytes, more than %d", len(script), allocated, limit)
	}

	var big *muster.Job
	for i := range res.Jobs {
		if res.Jobs[i].Name == "big" {
			big = &res.Jobs[i]
		}
	}
	switch {
	case big != nil:
		t.Errorf("job big, with more steps than muster allows, was imported")
	case len(res.Jobs) > 10000:
		t.Errorf("%d jobs imported, more than one import takes", len(res.Jobs))
	}
	if !hasFinding(res, sqlagent.NotImported, `job "big": the job has`, "a muster job has at most 100") {
		t.Errorf("job big's steps are not reported")
	}
}
