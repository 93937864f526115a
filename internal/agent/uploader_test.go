package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// What the master holds of a run's output is what the target kept, byte
// for byte, uploaded as the steps wrote it: within output_limit per
// attempt and run_output_limit per run, each cut said.
func TestOutputReachesTheMasterAsKept(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1", func(c *Config) {
		c.Settings.OutputLimit = 64 << 10
		c.Settings.RunOutputLimit = 160 << 10
	})
	runTarget(t, m)
	print := fmt.Sprintf("yes 0123456789abcdef | head -c %d", 100<<10)
	tm.apply(t, shellJob("loud", []string{"web1"}, print, print, print, print))
	waitFor(t, time.Minute, "the job on web1", func() bool { jobs, _ := m.Jobs(context.Background()); return len(jobs) == 1 })
	ids := tm.start(t, "loud")
	r := tm.finished(t, ids...)[0]
	local := localRun(t, m, ids[0])
	if len(r.Steps) != 4 || len(local.Steps) != 4 {
		t.Fatalf("%d attempts on the master, %d on the target; want 4", len(r.Steps), len(local.Steps))
	}
	var total int
	for i, a := range r.Steps {
		if a.Output != local.Steps[i].Output {
			t.Errorf("step %d: the master holds %d bytes, the target kept %d", i+1, len(a.Output), len(local.Steps[i].Output))
		}
		total += len(a.Output)
	}
	for i, want := range []string{"(output_limit 64KiB)", "(output_limit 64KiB)", "(run_output_limit 160KiB, of which the run had", "run_output_limit 160KiB, of which the run had"} {
		if !strings.Contains(r.Steps[i].Output, want) {
			t.Errorf("step %d does not say %q: %.80q…", i+1, want, r.Steps[i].Output)
		}
	}
	if total > 160<<10+4<<10 {
		t.Errorf("the run kept %d bytes, over run_output_limit (160 KiB, and the lines about the cuts)", total)
	}
}
