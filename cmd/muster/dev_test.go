package main

import (
	"bufio"
	"fmt"
	"iter"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The commands muster dev prints run as printed: "muster" only when PATH
// finds this very binary under that name, else the binary's absolute path.
func TestCLIName(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	onPath := t.TempDir()
	if err := os.Symlink(self, filepath.Join(onPath, "muster")); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "muster"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"this binary on PATH", onPath, "muster"},
		{"another muster on PATH", other, self},
		{"none on PATH", t.TempDir(), self},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			if got := cliName(); got != tc.want {
				t.Errorf("cliName() = %q, want %q", got, tc.want)
			}
		})
	}
}

// muster dev as a person first runs it: it says what it started, every
// command it prints runs as printed in another shell that sourced the
// environment file it names, and Ctrl-C stops it.
func TestDevCommandsRunAsPrinted(t *testing.T) {
	dir := t.TempDir()
	dev := exec.Command(os.Args[0], "dev", "--targets", "1", "--listen", "127.0.0.1:0", "--data", dir)
	dev.Env = append(os.Environ(), "MUSTER_TEST_MAIN=1")
	dev.Stderr = &syncBuffer{}
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	t.Cleanup(func() {
		if dev.ProcessState == nil { // the test failed before Ctrl-C
			dev.Process.Kill()
			for range lines {
			}
			dev.Wait()
		}
	})
	var printed []string
	for line := range readyLines(t, lines, dev.Stderr.(*syncBuffer)) {
		printed = append(printed, line)
	}
	if want := "muster dev: a master and 1 target (dev-1) are running; data in " + dir; printed[0] != want {
		t.Errorf("first line %q, want %q", printed[0], want)
	}

	// The environment file to source, and the commands: the lines
	// indented by two spaces.
	var env []string
	var commands [][]string
	for _, line := range printed {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 2 && fields[0] == ".":
			env = exportsOf(t, fields[1])
		case strings.HasPrefix(line, "  ") && len(fields) > 1:
			commands = append(commands, fields)
		}
	}
	if len(env) != 3 {
		t.Fatalf("the environment file exports %d variables, want 3 (address, token, CA): %q", len(env), env)
	}
	want := map[string]string{ // each command's output holds this
		"target list":       "dev-1",
		"apply":             "hello",
		"job start hello":   "succeeded",
		"job history hello": "hello from dev-1",
		"downloadlist":      "dev-1",
		"login-link":        "https://127.0.0.1:",
	}
	self, err := os.Stat(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		// As a shell finds it: testscript puts this binary on PATH as
		// "muster", and muster dev then prints that name.
		path, err := exec.LookPath(c[0])
		if err != nil {
			t.Errorf("%q: %v", strings.Join(c, " "), err)
			continue
		}
		if bin, err := os.Stat(path); err != nil || !os.SameFile(self, bin) {
			t.Errorf("%q does not run this binary (%v)", strings.Join(c, " "), err)
			continue
		}
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(append(os.Environ(), "MUSTER_TEST_MAIN=1"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c[1:], " "), err, out)
			continue
		}
		line := strings.Join(c[1:], " ")
		for prefix, text := range want {
			if strings.HasPrefix(line, prefix) {
				if !strings.Contains(string(out), text) {
					t.Errorf("%s printed no %q:\n%s", line, text, out)
				}
				delete(want, prefix)
			}
		}
	}
	if len(want) != 0 { // each command checked deletes its entry
		t.Errorf("commands expected and not printed, or not run: %v", slices.Sorted(maps.Keys(want)))
	}

	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for line := range lines {
		rest = append(rest, line)
	}
	if err := dev.Wait(); err != nil {
		t.Errorf("muster dev after Ctrl-C: %v\n%s", err, dev.Stderr)
	}
	if !slices.Contains(rest, "stopping") {
		t.Errorf("muster dev printed %q after Ctrl-C, want a line \"stopping\"", rest)
	}
}

// readyLines yields what muster dev prints up to "Press Ctrl-C to stop.",
// or fails t if it stops first or takes over a minute.
func readyLines(t *testing.T, lines <-chan string, stderr fmt.Stringer) iter.Seq[string] {
	return func(yield func(string) bool) {
		timeout := time.NewTimer(time.Minute)
		defer timeout.Stop()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("muster dev stopped before it was ready:\n%s", stderr)
				}
				if !yield(line) || line == "Press Ctrl-C to stop." {
					return
				}
			case <-timeout.C:
				t.Fatalf("muster dev was not ready within a minute:\n%s", stderr)
			}
		}
	}
}

// exportsOf reads the NAME=VALUE of each export line of a shell file.
func exportsOf(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok || !strings.Contains(kv, "=") {
			t.Fatalf("%s: %q is not an export", path, line)
		}
		env = append(env, kv)
	}
	return env
}
