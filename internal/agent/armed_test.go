package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// A START's shell step is started while the run's record commits, and runs
// its script only once the record is durable: when the commit fails, the
// process started for it leaves without having run anything, and the
// START, sent again, runs the script once.
func TestArmedStepRunsOnlyOnceItsRunIsCommitted(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "ran")
	j := flowJob("report", muster.Step{Name: "main", Shell: `echo ran >> "$MARKER"; ` +
		`[ -e /proc/self/fd/3 ] && echo "gate left" open; ` +
		`tr '\0' ' ' < /proc/$$/cmdline` + "\nno_such_command_here 2>&1; true"})
	j.Env = map[string]string{"MARKER": marker}
	if _, err := m.apply(ctx, insert(t, 1, j), time.Now()); err != nil {
		t.Fatal(err)
	}
	// The START's transaction fails at its COMMIT, after the step was
	// armed: its ack leaves a row that breaks a deferred foreign key.
	for _, stmt := range []string{
		`CREATE TABLE test_parent (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE test_child (parent INTEGER REFERENCES test_parent (id) DEFERRABLE INITIALLY DEFERRED)`,
		`CREATE TRIGGER test_orphan AFTER INSERT ON acks BEGIN INSERT INTO test_child VALUES (42); END`,
	} {
		if _, err := m.store.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	in := start(t, 2, "report", "r1", time.Now().Add(time.Minute))
	if _, err := m.apply(ctx, in, time.Now()); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
		t.Fatalf("apply of a START that cannot commit: %v", err)
	}
	m.exec.wait() // the armed process, let go and reaped
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the step ran although its run was never committed: %v", err)
	}
	if m.enl.Cursor != 1 {
		t.Fatalf("cursor %d after the failed START, want 1", m.enl.Cursor)
	}

	if _, err := m.store.write.ExecContext(ctx, `DROP TRIGGER test_orphan`); err != nil {
		t.Fatal(err)
	}
	ar, err := m.apply(ctx, in, time.Now())
	if err != nil || ar == nil {
		t.Fatalf("the START sent again: %v %v", ar, err)
	}
	m.exec.wait()
	b, err := os.ReadFile(marker)
	if err != nil || string(b) != "ran\n" {
		t.Fatalf("the marker after the START ran: %q %v, want one line", b, err)
	}
	r := localRun(t, m, "r1")
	if r.Status != muster.RunSucceeded {
		t.Fatalf("run %s %q", r.Status, r.Message)
	}
	out := r.Steps[0].Output
	if strings.Contains(out, "gate left open") {
		t.Errorf("the script saw the gate's descriptor: %q", out)
	}
	if !strings.Contains(out, "2: no_such_command_here") {
		t.Errorf("the script's line numbers moved: %q", out)
	}
	if !strings.Contains(out, gateScript) {
		t.Errorf("the step was not armed (its command line has no gate): %q", out)
	}
}

// A step that is not a shell script, or a run that queues, is not armed:
// it starts after the commit as before.
func TestOnlyShellStepsAreArmed(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.MaxConcurrentRuns = 1 })
	ctx := context.Background()
	cmdJob := flowJob("cmd", muster.Step{Name: "main", Command: []string{"sh", "-c", `tr '\0' ' ' < /proc/$$/cmdline`}})
	shJob := flowJob("sh", muster.Step{Name: "main", Shell: `tr '\0' ' ' < /proc/$$/cmdline`})
	for i, j := range []muster.Job{cmdJob, shJob} {
		if _, err := m.apply(ctx, insert(t, int64(i+1), j), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	launched := 0
	for i, name := range []string{"cmd", "sh"} {
		ar, err := m.apply(ctx, start(t, int64(i+3), name, "r-"+name, time.Now().Add(time.Minute)), time.Now())
		if err != nil || ar == nil {
			t.Fatalf("START of %s: %v %v", name, ar, err)
		}
		launched++
	}
	m.exec.wait()
	if launched != 2 {
		t.Fatalf("%d runs launched, want 2", launched)
	}
	for _, id := range []string{"r-cmd", "r-sh"} {
		r := localRun(t, m, id)
		if r.Status != muster.RunSucceeded {
			t.Fatalf("%s: %s %q", id, r.Status, r.Message)
		}
		if strings.Contains(r.Steps[0].Output, gateScript) {
			t.Errorf("%s was armed: %q", id, r.Steps[0].Output)
		}
	}
}
