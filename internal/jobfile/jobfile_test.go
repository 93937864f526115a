package jobfile_test

import (
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/jobfile"
)

func TestRead(t *testing.T) {
	jobs, err := jobfile.Read("jobs.yaml", strings.NewReader(`
jobs:
  - name: hello
    targets: [web1, WEB2]
    steps:
      - name: greet
        shell: echo hello
  - name: quiet
    enabled: false
    steps:
      - name: noop
        command: ["true"]
    schedules:
      - cron: "*/5 * * * *"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || !jobs[0].Enabled || jobs[1].Enabled {
		t.Fatalf("got %+v, want hello enabled and quiet disabled", jobs)
	}
	if jobs[1].Steps[0].Command[0] != "true" || jobs[1].Schedules[0].Cron != "*/5 * * * *" {
		t.Errorf("got %+v", jobs[1])
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown step key", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shel: echo\n", `jobs.yaml: line 5: unknown key "shel" in a step`},
		{"unknown job key", "jobs:\n  - name: a\n    stpes: []\n", `line 3: unknown key "stpes" in a job`},
		{"no jobs", "job:\n  - name: a\n", `unknown key "job" in the file`},
		{"empty", "", "the file is empty"},
		{"two kinds", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: x\n        command: [y]\n", `line 2: job "a": steps[0] "s": set exactly one of shell, command or sql, not shell and command`},
		{"no steps", "jobs:\n  - name: a\n", `line 2: job "a": steps: a job needs at least one step`},
		{"bad duration", "jobs:\n  - name: a\n    steps: [{name: s, shell: x}]\n    schedules:\n      - daily: {}\n        jitter: soon\n", `line 6: invalid duration "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jobfile.Read("jobs.yaml", strings.NewReader(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadRefusesOversizedFiles(t *testing.T) {
	big := "jobs: []\n# " + strings.Repeat("x", jobfile.MaxSize)
	if _, err := jobfile.Read("big.yaml", strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("got %v, want a size error", err)
	}
}
