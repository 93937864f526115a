package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/testdb"
	"github.com/musterhq/muster/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	if code == 0 {
		// Every scenario stops what it started: its processes' readers,
		// its simulated targets, its clients' connections.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// run runs a scenario at a small size and checks that its table renders.
func run(t *testing.T, scenario string, o bench.Options) bench.Result {
	t.Helper()
	o.Exe = testenv.MusterBinary(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
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

// reportOf is the machine-readable report of res, as -o json prints it.
func reportOf(t *testing.T, res bench.Result) map[string]any {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkBudget checks that the report lists a bound for each of figures, with
// the value measured for it, and that every bound over a floor carries the
// floor and the ratio to it.
func checkBudget(t *testing.T, res bench.Result, figures ...string) {
	t.Helper()
	m := reportOf(t, res)
	if _, ok := m["met"].(bool); !ok {
		t.Errorf("-o json has no \"met\": %v", m)
	}
	list, _ := m["budget"].([]any)
	seen := map[string]bool{}
	for _, c := range list {
		c := c.(map[string]any)
		f, _ := c["figure"].(string)
		seen[f] = true
		for _, k := range []string{"measured", "unit", "at_most", "bound", "met"} {
			if _, ok := c[k]; !ok {
				t.Errorf("budget entry %q has no %q: %v", f, k, c)
			}
		}
		if times, ok := c["floor_times"].(float64); ok && times > 0 {
			floor, _ := c["floor"].(float64)
			ratio, _ := c["ratio"].(float64)
			measured, _ := c["measured"].(float64)
			if floor <= 0 || ratio <= 0 {
				t.Errorf("budget entry %q over a floor without the floor or the ratio: %v", f, c)
			} else if got := measured / floor; got < ratio-0.001 || got > ratio+0.001 {
				t.Errorf("budget entry %q: ratio %v, but measured / floor is %v", f, ratio, got)
			}
		}
	}
	for _, f := range figures {
		if !seen[f] {
			t.Errorf("-o json has no budget for %q: %v", f, list)
		}
	}
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
		// The floor was measured after each counted start, every part of
		// it, and the budget of start → running is held to it.
		floor, _ := m["dispatch_floor"].(map[string]any)
		for _, k := range []string{"", "master_commit", "tls_round_trip", "target_commit", "exec"} {
			s := floor
			if k != "" {
				s, _ = floor[k].(map[string]any)
			}
			if n, _ := s["count"].(float64); n != 20 {
				t.Errorf("dispatch_floor %q: %v samples, want 20: %s", k, s["count"], b)
			}
			if p50, _ := s["p50_ms"].(float64); p50 <= 0 {
				t.Errorf("dispatch_floor %q: p50 %v, want a measured time: %s", k, s["p50_ms"], b)
			}
		}
		// Each hop was timed for every counted start, and the hops come in
		// the order the start takes them.
		hops, _ := m["hops"].(map[string]any)
		for _, k := range []string{"request_to_transaction", "transaction_to_poll_reply", "poll_reply_to_target_read",
			"target_read_to_commit", "commit_to_exec_returned", "request_to_response"} {
			s, _ := hops[k].(map[string]any)
			if n, _ := s["count"].(float64); n != 20 {
				t.Errorf("hops %q: %v samples, want 20: %s", k, s["count"], b)
			}
			if p50, _ := s["p50_ms"].(float64); p50 <= 0 {
				t.Errorf("hops %q: p50 %v, want a measured time: %s", k, s["p50_ms"], b)
			}
		}
		checkBudget(t, r, "start_to_running.p50_ms", "start_to_running.p99_ms", "start_to_recorded.p50_ms")
		if got, want := r.Budget[0].Floor, r.DispatchFloor.P50; got != want || got <= 0 {
			t.Errorf("start → running held to a floor of %v ms, want the measured floor p50 %v", got, want)
		}
	})
	// On a catalog in PostgreSQL (--store), with --dir naming a directory
	// that does not exist yet: the bench makes it, and keeps the masters'
	// shared secret there.
	t.Run("postgres", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "kept")
		r := run(t, "dispatch", bench.Options{Runs: 5, Store: testdb.Postgres(t), Dir: dir}).(*bench.DispatchResult)
		if r.Store != "postgres" || r.StartToRunning.Count != 5 || r.StartToRecorded.Count != 5 {
			t.Errorf("measured %d and %d starts on %s, want 5 on postgres", r.StartToRunning.Count, r.StartToRecorded.Count, r.Store)
		}
		if _, err := os.Stat(filepath.Join(dir, "secret")); err != nil {
			t.Errorf("the masters' secret is not kept in --dir: %v", err)
		}
	})
	t.Run("simulated", func(t *testing.T) {
		r := run(t, "dispatch", bench.Options{Targets: 3, Runs: 10, Mode: bench.ModeSim}).(*bench.DispatchResult)
		if r.StartToRunning.Count != 10 || r.TargetMode != bench.ModeSim {
			t.Errorf("measured %d starts on %s targets, want 10 on simulated ones", r.StartToRunning.Count, r.TargetMode)
		}
		if r.Hops != nil {
			t.Errorf("hops %+v from simulated targets, which trace nothing", r.Hops)
		}
		if r.DispatchFloor.Count != 10 || r.DispatchFloor.TargetCommit.P50 <= 0 {
			t.Errorf("floor: %d samples, target commit p50 %v ms; want 10 measured", r.DispatchFloor.Count, r.DispatchFloor.TargetCommit.P50)
		}
		// Three targets are held to the fleet's multiple of the floor.
		if r.Budget[0].FloorTimes != 1.5 {
			t.Errorf("start → running of 3 targets held to %v × the floor, want 1.5", r.Budget[0].FloorTimes)
		}
	})
}

func TestFanout(t *testing.T) {
	// Five simulated targets, two to a sim process: three processes.
	r := run(t, "fanout", bench.Options{Targets: 5, Runs: 2, Mode: bench.ModeSim, SimsPerProcess: 2}).(*bench.FanoutResult)
	if r.AllRunning.Count != 2 || r.StartToRunning.Count != 10 || r.SimProcesses != 3 {
		t.Errorf("measured %d fan-outs and %d starts in %d sim processes, want 2 and 10 in 3", r.AllRunning.Count, r.StartToRunning.Count, r.SimProcesses)
	}
	// Every start was seen on a target after the request, by the clock of
	// the sim process that held it.
	if r.StartToRunning.P50 <= 0 || r.AllRunning.Max < r.StartToRunning.Max {
		t.Errorf("start → running p50 %v ms, all running max %v ms, each max %v ms: want times after the request, all running the slowest",
			r.StartToRunning.P50, r.AllRunning.Max, r.StartToRunning.Max)
	}
	checkBudget(t, r, "all_running.p50_ms", "all_running.max_ms")
	// The budget is for 1,000 targets: reported, not counted.
	for _, c := range r.Budget {
		if c.For == "" {
			t.Errorf("budget %q counted at 5 targets", c.Figure)
		}
	}
	if !r.Met {
		t.Error("a run whose every budget is for another size is not met")
	}
}

func TestSchedule(t *testing.T) {
	t.Run("one target", func(t *testing.T) {
		dir := t.TempDir()
		r := run(t, "schedule", bench.Options{Jobs: 3, Duration: 3 * time.Second, Dir: dir}).(*bench.ScheduleResult)
		if r.Expected != 9 || r.Missed != 0 || r.Duplicates != 0 || r.Lateness.Count != 9 {
			t.Errorf("expected %d fires, %d missed, %d duplicates, %d measured; want 9, 0, 0, 9", r.Expected, r.Missed, r.Duplicates, r.Lateness.Count)
		}
		// The floor started as many processes as fires were expected.
		if r.SpawnFloor.Count != 9 || r.SpawnFloor.P50 <= 0 {
			t.Errorf("spawn floor: %d processes, p50 %v ms; want 9 measured", r.SpawnFloor.Count, r.SpawnFloor.P50)
		}
		checkBudget(t, r, "lateness.p99_ms", "missed", "duplicates")
		if _, ok := reportOf(t, r)["spawn_floor"].(map[string]any)["p99_ms"]; !ok {
			t.Errorf("-o json has no spawn_floor.p99_ms")
		}
		// --dir keeps every sample summarized, each fire's and each of
		// the floor's spawns, with its planned instant.
		b, err := os.ReadFile(filepath.Join(dir, "schedule-samples.csv"))
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
			f := strings.Split(line, ",")
			if len(f) != 4 {
				t.Fatalf("sample %d: %q, want 4 fields", i+1, line)
			}
			if at, err := strconv.ParseInt(f[2], 10, 64); err != nil || at <= 0 {
				t.Errorf("sample %d: planned instant %q", i+1, f[2])
			}
			kinds[f[0]]++
		}
		if kinds["fire"] != 9 || kinds["floor"] != 9 || len(kinds) != 2 {
			t.Errorf("samples by kind: %v; want 9 fires, 9 of the floor", kinds)
		}
	})
	t.Run("three targets", func(t *testing.T) {
		r := run(t, "schedule", bench.Options{Targets: 3, Jobs: 6, Duration: 2 * time.Second}).(*bench.ScheduleResult)
		if r.Targets != 3 || r.Expected != 12 || r.Missed != 0 || r.Duplicates != 0 || r.Lateness.Count != 12 || r.SpawnFloor.Count != 12 {
			t.Errorf("%d targets: expected %d fires, %d missed, %d duplicates, %d measured, %d in the floor; want 3: 12, 0, 0, 12, 12",
				r.Targets, r.Expected, r.Missed, r.Duplicates, r.Lateness.Count, r.SpawnFloor.Count)
		}
		checkBudget(t, r, "lateness.p50_ms", "lateness.p99_ms")
	})
}

func TestFleet(t *testing.T) {
	// Twenty simulated targets, eight to a sim process: three processes,
	// the last holding four.
	r := run(t, "fleet", bench.Options{Targets: 20, Duration: time.Second, SimsPerProcess: 8}).(*bench.FleetResult)
	if r.PollsHeld < 20 || r.MasterOpenFiles < 20 || r.MasterRSSMiB <= 0 {
		t.Errorf("%d polls held, %d open files, %.0f MiB: want the master holding 20 targets", r.PollsHeld, r.MasterOpenFiles, r.MasterRSSMiB)
	}
	if r.SimProcesses != 3 {
		t.Errorf("%d sim processes, want 3 of at most 8 targets", r.SimProcesses)
	}
	if r.FanoutRunningMS <= 0 || r.FanoutRecordedMS < r.FanoutRunningMS {
		t.Errorf("fan-out all running %v ms, all recorded %v ms: want both measured, recorded after running", r.FanoutRunningMS, r.FanoutRecordedMS)
	}
	if r.MasterKiBPerTarget <= 0 {
		t.Errorf("master RSS per target %v KiB, want it measured", r.MasterKiBPerTarget)
	}
	checkBudget(t, r, "polls_held", "master_rss_kib_per_target", "fanout_all_running_ms")
}

func TestIngest(t *testing.T) {
	r := run(t, "ingest", bench.Options{Targets: 2, Runs: 2000}).(*bench.IngestResult)
	if r.BatchLatency.Count != 4 || r.RunsPerSecond <= 0 {
		t.Errorf("%d uploads at %.0f runs/s: want 4 batches of 500", r.BatchLatency.Count, r.RunsPerSecond)
	}
	checkBudget(t, r, "runs_per_s")
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
	checkBudget(t, r, "peak_above_idle_mib")
}

func TestAgent(t *testing.T) {
	r := run(t, "agent", bench.Options{Jobs: 2, Duration: time.Second}).(*bench.AgentResult)
	if r.RSSMiB <= 0 || r.OpenFiles == 0 {
		t.Errorf("RSS %.1f MiB, %d open files: the target was not measured", r.RSSMiB, r.OpenFiles)
	}
	// The two parts are read with the whole, in one read of the
	// process's status, and the binary is mapped, so both are there.
	if r.RSSAnonMiB <= 0 || r.RSSFileMiB <= 0 || r.RSSAnonMiB+r.RSSFileMiB > r.RSSMiB+0.01 {
		t.Errorf("RSS %.2f MiB: anonymous %.2f, mapped files %.2f; want both measured, within the whole", r.RSSMiB, r.RSSAnonMiB, r.RSSFileMiB)
	}
	checkBudget(t, r, "rss_mib", "cpu_percent")
}

func TestUnknownScenario(t *testing.T) {
	if _, err := bench.Run(context.Background(), "nope", bench.Options{}); err == nil || !strings.Contains(err.Error(), `no scenario "nope"`) {
		t.Errorf("an unknown scenario: %v, want it refused as no scenario", err)
	}
}

func TestOutput(t *testing.T) {
	r := run(t, "output", bench.Options{Runs: 3, Size: 200 << 10}).(*bench.OutputResult)
	if r.Steps != 3 || r.StoredOutputBytes == 0 || r.PeakRSSMiB <= 0 {
		t.Errorf("%d steps, %d bytes of output stored, peak RSS %.1f MiB: want 3 steps measured", r.Steps, r.StoredOutputBytes, r.PeakRSSMiB)
	}
	checkBudget(t, r, "took_s", "target_peak_rss_mib", "target_dir_grew_mib")
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
	figures := make([]string, len(r.Pages))
	for i := range r.Pages {
		figures[i] = fmt.Sprintf("pages[%d].latency.p99_ms", i)
	}
	checkBudget(t, r, figures...)
	// The budget is for 1,000 targets: reported, not counted.
	for _, c := range r.Budget {
		if c.For == "" {
			t.Errorf("budget %q counted at 20 targets", c.Figure)
		}
	}
}
