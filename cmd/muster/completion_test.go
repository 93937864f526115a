package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// The shells' completion (muster completion bash, zsh, fish, powershell)
// completes the names of jobs, targets, groups, operators and alerts from
// the master the environment points at, as arguments and as the values of
// the flags that take them, and the values of -o.
func TestCompletionOfNames(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	applyJobs(t, env.Client, shellJob("backup", "true", "web1"), shellJob("report", "true", "web2"))
	if code := run([]string{"group", "create", "web", "--addr", env.Master.URL, "--token", env.Master.AdminToken,
		"--cacert", filepath.Join(env.Dir, "master", pki.CACertFile)}, &strings.Builder{}, &strings.Builder{}); code != 0 {
		t.Fatalf("group create: exit %d", code)
	}
	t.Setenv("MUSTER_ADDR", env.Master.URL)
	t.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
	t.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"job", "start", ""}, []string{"backup", "report"}},
		{[]string{"job", "history", "b"}, []string{"backup"}},
		{[]string{"job", "start", "backup", ""}, nil}, // one job only
		{[]string{"job", "start", "backup", "--target", ""}, []string{"web1", "web2"}},
		{[]string{"export", "backup", ""}, []string{"backup", "report"}},
		{[]string{"target", "show", "w"}, []string{"web1", "web2"}},
		{[]string{"target", "pause", "web1", ""}, []string{"web1", "web2"}},
		{[]string{"group", "add", ""}, []string{"web"}},
		{[]string{"group", "add", "web", ""}, []string{"web1", "web2"}},
		{[]string{"operator", "update", ""}, []string{"MSXOperator"}},
		{[]string{"alert", "create", "a", "--notify", ""}, []string{"MSXOperator"}},
		{[]string{"downloadlist", "--job", "r"}, []string{"report"}},
		{[]string{"target", "pause", "--group", ""}, []string{"web"}},
		{[]string{"job", "list", "-o", ""}, []string{"table", "json", "yaml"}},
		{[]string{"export", "-o", ""}, []string{"yaml", "json"}},
	} {
		var stdout, stderr strings.Builder
		if code := run(append([]string{"__complete"}, tc.args...), &stdout, &stderr); code != 0 {
			t.Errorf("complete %q: exit %d, stderr %s", tc.args, code, stderr.String())
			continue
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if !strings.HasPrefix(line, ":") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("complete %q: got %q, want %q", tc.args, got, tc.want)
		}
		if lines := strings.Split(strings.TrimSpace(stdout.String()), "\n"); lines[len(lines)-1] != ":4" { // no file names
			t.Errorf("complete %q: directive is not NoFileComp:\n%s", tc.args, stdout.String())
		}
	}
}
