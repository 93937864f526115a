package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every systemd unit the docs show starts a command that exists with flags
// that exist, and a unit of a daemon that runs steps (a target, or a master,
// which does with --also-target) has systemd signal the daemon alone at a stop
// (KillMode=mixed): the daemon stops its runs itself and records them
// canceled. With systemd's default, the steps are sent SIGTERM with it, and
// one that dies of it first is recorded failed, its on_failure flow
// started while the daemon stops.
func TestDocumentedUnitsWork(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	runbooks, _ := filepath.Glob("../../docs/runbooks/*.md")
	units := 0
	for _, page := range append(pages, runbooks...) {
		doc, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range regexp.MustCompile("(?s)```ini\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
			keys := map[string][]string{}
			for _, line := range strings.Split(b[1], "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
					keys[strings.TrimSpace(k)] = append(keys[strings.TrimSpace(k)], strings.TrimSpace(v))
				}
			}
			if len(keys["ExecStart"]) != 1 {
				continue
			}
			units++
			name := fmt.Sprintf("%s, block %d", filepath.Base(page), i+1)
			args := strings.Fields(keys["ExecStart"][0])
			if filepath.Base(args[0]) != "muster" {
				t.Errorf("%s: ExecStart runs %s, not muster", name, args[0])
				continue
			}
			root := newRoot(io.Discard, io.Discard, args[1:])
			cmd, rest, err := root.Find(args[1:])
			if err != nil || cmd == root {
				t.Errorf("%s: %s: no such command: %v", name, strings.Join(args[1:], " "), err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: %s: %v", name, strings.Join(args[1:], " "), err)
			}
			// A master runs steps once given --also-target, which an
			// operator adds to a unit as it is.
			runsSteps := cmd.Name() == "target" || cmd.Name() == "master"
			if km := keys["KillMode"]; runsSteps && !slices.Equal(km, []string{"mixed"}) {
				t.Errorf("%s (muster %s): KillMode %v, want [mixed]", name, cmd.Name(), km)
			}
		}
	}
	if units < 2 {
		t.Errorf("found %d units in the docs; there are more", units)
	}
}
