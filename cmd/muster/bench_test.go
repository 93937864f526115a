package main

import (
	"encoding/json"
	"testing"
	"time"
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
