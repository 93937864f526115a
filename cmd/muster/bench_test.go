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
	}
	out := cmd.Stdout.(*syncBuffer).String()
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.Scenario != "agent" || res.RSSMiB <= 0 {
		t.Errorf("got %+v, want the agent scenario's figures", res)
	}
}
