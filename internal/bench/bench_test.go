package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// run runs a scenario at a small size and checks that its table renders.
func run(t *testing.T, scenario string, o bench.Options) bench.Result {
	t.Helper()
	o.Exe = testenv.MusterBinary(t)
	o.Dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, scenario, o)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := res.Table(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "BUDGET") {
		t.Errorf("table without budgets:\n%s", table.String())
	}
	t.Logf("\n%s", table.String())
	return res
}

// The scenarios, each at a size that proves it works (figures here mean
// nothing: they are measured under the race detector, beside other tests).
// What is asserted are counts: every start measured, every fire
// accounted for, every target held.

func TestDispatch(t *testing.T) {
	t.Run("process", func(t *testing.T) {
		r := run(t, "dispatch", bench.Options{Runs: 20}).(*bench.DispatchResult)
		if r.StartToRunning.Count != 20 || r.StartToRecorded.Count != 20 {
			t.Errorf("measured %d and %d starts, want 20", r.StartToRunning.Count, r.StartToRecorded.Count)
		}
		// The machine-readable report has the documented keys.
		b, _ := json.Marshal(r)
		var m map[string]any
		json.Unmarshal(b, &m)
		for _, k := range []string{"scenario", "targets", "runs", "start_to_running", "start_to_recorded"} {
			if _, ok := m[k]; !ok {
				t.Errorf("-o json has no %q: %s", k, b)
			}
		}
		for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "max_ms", "count"} {
			if _, ok := m["start_to_running"].(map[string]any)[k]; !ok {
				t.Errorf("start_to_running has no %q: %s", k, b)
			}
		}
	})
	t.Run("simulated", func(t *testing.T) {
		r := run(t, "dispatch", bench.Options{Targets: 3, Runs: 10, Mode: bench.ModeSim}).(*bench.DispatchResult)
		if r.StartToRunning.Count != 10 || r.TargetMode != bench.ModeSim {
			t.Errorf("measured %d starts on %s targets, want 10 on simulated ones", r.StartToRunning.Count, r.TargetMode)
		}
	})
}

func TestFanout(t *testing.T) {
	r := run(t, "fanout", bench.Options{Targets: 5, Runs: 2, Mode: bench.ModeSim}).(*bench.FanoutResult)
	if r.AllRunning.Count != 2 || r.StartToRunning.Count != 10 {
		t.Errorf("measured %d fan-outs and %d starts, want 2 and 10", r.AllRunning.Count, r.StartToRunning.Count)
	}
}

func TestSchedule(t *testing.T) {
	r := run(t, "schedule", bench.Options{Jobs: 3, Duration: 3 * time.Second}).(*bench.ScheduleResult)
	if r.Expected != 9 || r.Missed != 0 || r.Duplicates != 0 || r.Lateness.Count != 9 {
		t.Errorf("expected %d fires, %d missed, %d duplicates, %d measured; want 9, 0, 0, 9", r.Expected, r.Missed, r.Duplicates, r.Lateness.Count)
	}
}

func TestFleet(t *testing.T) {
	r := run(t, "fleet", bench.Options{Targets: 20, Duration: time.Second}).(*bench.FleetResult)
	if r.PollsHeld < 20 || r.MasterOpenFiles < 20 || r.MasterRSSMiB <= 0 {
		t.Errorf("%d polls held, %d open files, %.0f MiB: want the master holding 20 targets", r.PollsHeld, r.MasterOpenFiles, r.MasterRSSMiB)
	}
}

func TestIngest(t *testing.T) {
	r := run(t, "ingest", bench.Options{Targets: 2, Runs: 2000}).(*bench.IngestResult)
	if r.BatchLatency.Count != 4 || r.RunsPerSecond <= 0 {
		t.Errorf("%d uploads at %.0f runs/s: want 4 batches of 500", r.BatchLatency.Count, r.RunsPerSecond)
	}
}

func TestUpload(t *testing.T) {
	if testenv.Race {
		t.Skip("two 63 MiB uploads through a master built with the race detector take a minute; the scenario runs without it")
	}
	r := run(t, "upload", bench.Options{Targets: 2, Runs: 2}).(*bench.UploadResult)
	if r.UploadLatency.Count != 2 || len(r.Shapes) != 2 || r.BodyBytes < 60<<20 || r.PeakRSSMiB <= r.IdleRSSMiB {
		t.Errorf("%d uploads of %d bytes in %d shapes, RSS %.0f → %.0f MiB: want 2 uploads of over 60 MiB, one of each shape, measured",
			r.UploadLatency.Count, r.BodyBytes, len(r.Shapes), r.IdleRSSMiB, r.PeakRSSMiB)
	}
}

func TestAgent(t *testing.T) {
	r := run(t, "agent", bench.Options{Jobs: 2, Duration: time.Second}).(*bench.AgentResult)
	if r.RSSMiB <= 0 || r.OpenFiles == 0 {
		t.Errorf("RSS %.1f MiB, %d open files: the target was not measured", r.RSSMiB, r.OpenFiles)
	}
}

func TestUnknownScenario(t *testing.T) {
	if _, err := bench.Run(context.Background(), "nope", bench.Options{}); err == nil {
		t.Error("an unknown scenario ran")
	}
}

func TestOutput(t *testing.T) {
	r := run(t, "output", bench.Options{Runs: 3, Size: 200 << 10}).(*bench.OutputResult)
	if r.Steps != 3 || r.StoredOutputBytes == 0 || r.PeakRSSMiB <= 0 {
		t.Errorf("%d steps, %d bytes of output stored, peak RSS %.1f MiB: want 3 steps measured", r.Steps, r.StoredOutputBytes, r.PeakRSSMiB)
	}
}

func TestConsole(t *testing.T) {
	r := run(t, "console", bench.Options{Targets: 20, Jobs: 10, Runs: 2}).(*bench.ConsoleResult)
	if r.Runs != 20 || len(r.Pages) != 14 {
		t.Fatalf("%d runs recorded, %d pages timed: want a run of each job on each of its 2 targets, and 14 pages", r.Runs, len(r.Pages))
	}
	for _, p := range r.Pages {
		if p.Latency.Count != 2 || p.Bytes == 0 {
			t.Errorf("%s: fetched %d times, %d bytes: want 2 fetches of a page", p.Page, p.Latency.Count, p.Bytes)
		}
	}
}
