package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/bench"
)

// `muster bench` starts its daemons from its own executable: here this
// test binary, which runs as the CLI because the environment says so.
func TestBenchCommand(t *testing.T) {
	cmd := startMuster(t, "bench", "agent", "--duration", "1s", "--dir", t.TempDir(), "-q", "-o", "json")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("muster bench agent: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("muster bench agent did not finish")
	}
	var res struct {
		Scenario string  `json:"scenario"`
		RSSMiB   float64 `json:"rss_mib"`
		Budget   []struct {
			Figure   string  `json:"figure"`
			Measured float64 `json:"measured"`
		} `json:"budget"`
		Met *bool `json:"met"`
	}
	out := cmd.Stdout.(*syncBuffer).String()
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.Scenario != "agent" || res.RSSMiB <= 0 {
		t.Errorf("got %+v, want the agent scenario's figures", res)
	}
	// The report holds its figures to the budget, for a script to read.
	if res.Met == nil || len(res.Budget) != 2 || res.Budget[0].Figure != "rss_mib" || res.Budget[0].Measured != res.RSSMiB {
		t.Errorf("budget %+v, met %v: want the RSS and CPU bounds with what was measured", res.Budget, res.Met)
	}
}

// `muster bench output` takes the size each step prints with a unit.
func TestBenchOutputSize(t *testing.T) {
	cmd := startMuster(t, "bench", "output", "--runs", "2", "--size", "64KiB", "--dir", t.TempDir(), "-q", "-o", "json")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("muster bench output: %v", err)
	}
	var res struct {
		Steps     int   `json:"steps"`
		StepBytes int64 `json:"step_bytes"`
		Stored    int64 `json:"stored_output_bytes"`
	}
	out := cmd.Stdout.(*syncBuffer).String()
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.Steps != 2 || res.StepBytes != 64<<10 || res.Stored != 2*64<<10 {
		t.Errorf("got %+v, want 2 steps of 64 KiB, all of it stored", res)
	}
}

// A bench flag whose help names the scenarios it serves names each scenario
// an example or the docs use it with.
func TestBenchFlagsNameTheirScenarios(t *testing.T) {
	cmd := newBenchCmd()
	lines := musterCommands(cmd.Example)
	doc, err := os.ReadFile("../../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, musterCommands(string(doc))...)
	for _, args := range lines {
		if len(args) < 2 || args[0] != "bench" || !slices.Contains(bench.Scenarios, args[1]) {
			continue
		}
		for _, w := range args[2:] {
			f := cmd.Flags().Lookup(strings.TrimPrefix(w, "--"))
			if !strings.HasPrefix(w, "--") || f == nil {
				continue
			}
			// The list is in brackets: "(schedule, agent)", "(dispatch,
			// fanout, ingest, fleet; default: SQLite)".
			var named []string
			for _, m := range regexp.MustCompile(`\(([a-z, ]+)[;)]`).FindAllStringSubmatch(f.Usage, -1) {
				list := strings.Split(m[1], ", ")
				if !slices.ContainsFunc(list, func(s string) bool { return !slices.Contains(bench.Scenarios, s) }) {
					named = append(named, list...)
				}
			}
			if len(named) > 0 && !slices.Contains(named, args[1]) {
				t.Errorf("muster %s: the help of %s names the scenarios it serves, and not %s: %q", strings.Join(args, " "), w, args[1], f.Usage)
			}
		}
	}
}
