package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// What the master holds as free text (a job's description and scripts, a
// run's message, which for a SQL step holds the database's error and so
// whatever the statement quoted) reaches a terminal with its control
// characters escaped, as a table's cells and step output do: job show,
// job start --wait and the error line do not let it retitle, clear or
// rewrite the operator's terminal. Piped, it is printed as it is.
func TestServerTextOnATerminal(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Target: func(c *agent.Config) {
		c.Settings.Connections = map[string]agent.Connection{
			"local": {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "local.db")},
		}
	}})
	const hostile = "\x1b]0;owned\x07\x1b[2J"
	j := muster.NewJob()
	j.Name, j.Targets = "esc", []string{"web1"}
	j.Description = "red " + hostile
	j.Steps = []muster.Step{{Name: "q", Connection: "local", SQL: `SELECT * FROM "` + hostile + `"`}}
	applyJobs(t, env.Client, j)
	t.Setenv("MUSTER_ADDR", env.Master.URL)
	t.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
	t.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))

	stdout, stderr := &bytes.Buffer{}, &bytes.Buffer{}
	defer func(old func(io.Writer) bool) { writesToTerminal = old }(writesToTerminal)
	writesToTerminal = func(w io.Writer) bool { return w == stdout || w == stderr }

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"job", "start", "esc", "--wait"}, 1},
		{[]string{"job", "show", "esc"}, 0},
		{[]string{"job", "history", "esc", "--steps"}, 0},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(c.args, stdout, stderr); code != c.code {
			t.Fatalf("muster %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.code, stdout, stderr)
		}
		for name, b := range map[string]*bytes.Buffer{"stdout": stdout, "stderr": stderr} {
			if strings.ContainsAny(b.String(), "\x1b\x07") {
				t.Errorf("muster %s: %s holds a control character:\n%q", strings.Join(c.args, " "), name, b.String())
			}
		}
		if !strings.Contains(stdout.String()+stderr.String(), `\x1b]0;owned\a\x1b[2J`) {
			t.Errorf("muster %s: the text is not shown escaped:\n%s%s", strings.Join(c.args, " "), stdout, stderr)
		}
	}

	// Piped, the description is printed as it is.
	var piped bytes.Buffer
	if code := run([]string{"job", "show", "esc"}, &piped, io.Discard); code != 0 || !strings.Contains(piped.String(), "red "+hostile+"\n") {
		t.Errorf("job show, piped: exit %d, output\n%q", code, piped.String())
	}
}
