package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	if code == 0 {
		// The harness's proxies, readers of process output and clients
		// are all stopped by the tests that start them.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// plan sizes the suite: the short version runs in CI's `go test -race
// ./...` within a minute or two on 2 cores; MUSTER_FAULTS=full runs the
// sizes of the reliability test plan.
type plan struct {
	full bool
	// T7: STARTs dispatched while the master is killed, the pause between
	// dispatches, and the range of the pause between kills.
	dispatches        int
	dispatchPace      time.Duration
	killMin, killMax  time.Duration
	dispatchBound     time.Duration
	targetKills       int           // T8
	cut               time.Duration // T9, each of drop and stall
	tickCron          string        // T9's schedule
	fireRestarts      int           // T10
	outputBytes       int64         // T15
	outputPeakRSSMiB  float64       // T15: the target's memory bound
	outputDiskMiB     float64       // T15: growth of each data directory
	perTestWallBounds time.Duration // every test, whatever it waits for
	// The tests of a group of masters: STARTs through the two masters, and
	// how long the database stays down each time it is stopped.
	haDispatches int
	databaseDown time.Duration
}

func plans() plan {
	if os.Getenv("MUSTER_FAULTS") == "full" {
		return plan{
			full:       true,
			dispatches: 1000, dispatchPace: 150 * time.Millisecond, killMin: 2 * time.Second, killMax: 10 * time.Second,
			dispatchBound: 15 * time.Minute,
			targetKills:   20,
			cut:           10 * time.Minute, tickCron: "*/6 * * * * *",
			fireRestarts: 200,
			outputBytes:  1 << 30, outputPeakRSSMiB: 256, outputDiskMiB: 64,
			perTestWallBounds: 30 * time.Minute,
			haDispatches:      1000, databaseDown: 10 * time.Second,
		}
	}
	return plan{
		dispatches: 80, dispatchPace: 50 * time.Millisecond, killMin: 700 * time.Millisecond, killMax: 1500 * time.Millisecond,
		dispatchBound: 3 * time.Minute,
		targetKills:   3,
		cut:           6 * time.Second, tickCron: "* * * * * *",
		fireRestarts: 4,
		// The race detector multiplies a daemon's memory several times.
		outputBytes: 1 << 30, outputPeakRSSMiB: 512, outputDiskMiB: 64,
		perTestWallBounds: 4 * time.Minute,
		haDispatches:      120, databaseDown: 2 * time.Second,
	}
}

// fleet is a master process and target processes in a test's directory.
type fleet struct {
	t       *testing.T
	exe     string
	dir     string
	master  *bench.Master
	targets []*bench.TargetProcess
	// effects is the file every step appends its run id to: the
	// independent record of what ran.
	effects string
}

// newFleet starts a master process listening on 127.0.0.1.
func newFleet(t *testing.T) *fleet { return newFleetOn(t, "") }

// newFleetOn starts a master process listening on listen (host:port), or
// on 127.0.0.1 when listen is "".
func newFleetOn(t *testing.T, listen string) *fleet {
	t.Helper()
	return newFleetWith(t, bench.MasterOptions{Listen: listen})
}

// newFleetWith starts a master process shaped by o.
func newFleetWith(t *testing.T, o bench.MasterOptions) *fleet {
	t.Helper()
	f := &fleet{t: t, exe: testenv.MusterBinary(t), dir: t.TempDir()}
	f.effects = filepath.Join(f.dir, "effects.log")
	m, err := bench.StartMaster(context.Background(), f.exe, filepath.Join(f.dir, "master"), o)
	if err != nil {
		t.Fatal(err)
	}
	f.master = m
	t.Cleanup(func() {
		for _, tg := range f.targets {
			tg.Kill()
			// A daemon killed leaves its runs' cgroups for its next start;
			// there is none.
			if err := agent.RemoveCgroups(tg.UID); err != nil {
				t.Errorf("target %s: %v", tg.Name, err)
			}
			if t.Failed() {
				t.Logf("target %s log:\n%s", tg.Name, tail(tg.Log(), 40))
			}
		}
		m.Kill()
		if t.Failed() {
			t.Logf("master log:\n%s", tail(m.Log(), 40))
		}
	})
	return f
}

// withTarget starts a master and one target, web1, for a test bounded by
// the plan's wall time.
func withTarget(t *testing.T) (plan, context.Context, *fleet, *bench.TargetProcess) {
	t.Helper()
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), p.perTestWallBounds)
	t.Cleanup(cancel)
	f := newFleet(t)
	return p, ctx, f, f.addTarget("web1", f.master.URL)
}

// addTarget enlists a target through masterURL (the master's own, or a
// proxy's) and starts it, through wrap when it is given (ip netns exec NS).
func (f *fleet) addTarget(name, masterURL string, wrap ...string) *bench.TargetProcess {
	f.t.Helper()
	tg, err := bench.EnlistTarget(context.Background(), f.exe, f.master.Client, masterURL, name, filepath.Join(f.dir, name))
	if err != nil {
		f.t.Fatal(err)
	}
	tg.Wrap = wrap
	if err := tg.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.targets = append(f.targets, tg)
	return tg
}

// effectJob is a job whose step first appends "RUN_ID SCHEDULED_AT" to the
// effects file (with >>, that is O_APPEND), then runs then.
func (f *fleet) effectJob(name, target, then string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, []string{target}
	script := fmt.Sprintf(`echo "$MUSTER_RUN_ID $MUSTER_SCHEDULED_AT" >> '%s'`, f.effects)
	if then != "" {
		script += "\n" + then
	}
	j.Steps = []muster.Step{{Name: "main", Shell: script}}
	return j
}

// apply applies jobs and waits until every target holds them.
func (f *fleet) apply(ctx context.Context, jobs ...muster.Job) {
	f.t.Helper()
	if err := retry(ctx, func() error {
		_, err := f.master.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: jobs})
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	f.settle(ctx)
}

// settle waits until no instruction is pending.
func (f *fleet) settle(ctx context.Context) {
	f.t.Helper()
	f.eventually(ctx, "every target to acknowledge its instructions", func() bool {
		pending, err := f.master.Client.DownloadList(ctx, httpapi.DownloadListFilter{Pending: true, Limit: 1})
		return err == nil && len(pending) == 0
	})
}

// eventually waits for cond, checking often, until ctx ends.
func (f *fleet) eventually(ctx context.Context, what string, cond func() bool) {
	f.t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			f.t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// history returns a job's runs on the master by run id, with how many
// times each is there.
func (f *fleet) history(ctx context.Context, job string) (map[string]muster.Run, map[string]int) {
	f.t.Helper()
	var runs []muster.Run
	if err := retry(ctx, func() (err error) {
		runs, err = f.master.Client.History(ctx, job, "", 10000)
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	byID, count := map[string]muster.Run{}, map[string]int{}
	for _, r := range runs {
		byID[r.RunID] = r
		count[r.RunID]++
	}
	return byID, count
}

// effect is one line of the effects file: one execution of a step.
type effect struct {
	runID       string
	scheduledAt time.Time // zero unless a schedule fired the run
}

// readEffects reads the effects file: every execution, in order.
func (f *fleet) readEffects() []effect {
	f.t.Helper()
	file, err := os.Open(f.effects)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var out []effect
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		id, at, _ := strings.Cut(sc.Text(), " ")
		e := effect{runID: id}
		if at != "" {
			e.scheduledAt, _ = time.Parse(time.RFC3339, at)
		}
		out = append(out, e)
	}
	return out
}

// executions counts the executions of each run id.
func executions(effects []effect) map[string]int {
	n := map[string]int{}
	for _, e := range effects {
		n[e.runID]++
	}
	return n
}

// retry calls fn until it succeeds, retrying while the master cannot be
// reached, until ctx ends.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || muster.ErrorCode(err) != muster.EUNAVAILABLE {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// uniform returns a duration in [lo, hi).
func uniform(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// report logs a test's figures and, with MUSTER_FAULTS_REPORT=FILE,
// appends them to FILE as a JSON line.
func report(t *testing.T, figures map[string]any) {
	t.Helper()
	b, _ := json.Marshal(figures)
	t.Logf("figures: %s", b)
	path := os.Getenv("MUSTER_FAULTS_REPORT")
	if path == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{"test": t.Name(), "full": plans().full, "at": time.Now().UTC().Format(time.RFC3339), "figures": figures})
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}

var reportMu sync.Mutex

// ms renders a duration in milliseconds, to the tenth.
func ms(d time.Duration) float64 { return float64(d.Round(100*time.Microsecond)) / 1e6 }

// checkOnce holds the runs of the STARTs ids to "exactly once": each ran
// once by the steps' own record (ran, from executions) and is on the
// master once among runs, each succeeded, and nothing ran that no START
// asked for. It returns how many never ran and how many ran more than once.
func checkOnce(t *testing.T, ids []muster.RunRef, runs []muster.Run, ran map[string]int) (lost, duplicated int) {
	t.Helper()
	onMaster := map[string]int{}
	for _, r := range runs {
		onMaster[r.RunID]++
		if r.Status != muster.RunSucceeded {
			t.Errorf("run %s of %s: %s %q", r.RunID, r.Job, r.Status, r.Message)
		}
	}
	for _, ref := range ids {
		id := ref.RunID
		switch n := ran[id]; {
		case n == 0:
			lost++
		case n > 1:
			duplicated++
		}
		if onMaster[id] != 1 {
			t.Errorf("run %s is on the master %d times", id, onMaster[id])
		}
		delete(ran, id)
	}
	for id, n := range ran {
		t.Errorf("run %s ran %d times but no START asked for it", id, n)
	}
	if lost > 0 || duplicated > 0 {
		t.Errorf("of %d dispatches, %d never ran and %d ran more than once", len(ids), lost, duplicated)
	}
	return lost, duplicated
}
