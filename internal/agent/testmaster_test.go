package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
)

// testMaster is a real master in this process, on 127.0.0.1, with its
// catalog in a temporary directory: what the agent's protocol side is
// tested against.
type testMaster struct {
	*master.Main
	api  *httpapi.Client
	dir  string
	stop context.CancelFunc
	done chan error
}

// quiet is a logger that writes nothing.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startTestMaster starts a master; it stops when the test ends.
func startTestMaster(t testing.TB, adjust ...func(*master.Config)) *testMaster {
	t.Helper()
	tm := &testMaster{dir: t.TempDir()}
	tm.listen(t, "127.0.0.1:0", adjust...)
	t.Cleanup(func() { tm.halt(t) })
	return tm
}

func (tm *testMaster) listen(t testing.TB, listen string, adjust ...func(*master.Config)) {
	t.Helper()
	cfg := master.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.Logger = filepath.Join(tm.dir, "master"), listen, quiet()
	for _, fn := range adjust {
		fn(&cfg)
	}
	m, err := master.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tm.Main != nil {
		m.AdminToken = tm.AdminToken
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm.Main, tm.stop, tm.done = m, cancel, make(chan error, 1)
	go func() { tm.done <- m.Run(ctx) }()
	if tm.api, err = httpapi.NewClient(tm.URL, tm.AdminToken, tm.CA.Pool()); err != nil {
		t.Fatal(err)
	}
}

// halt stops the master, if it runs, and releases its data directory.
func (tm *testMaster) halt(t testing.TB) {
	if tm.stop == nil {
		return
	}
	tm.stop()
	if err := <-tm.done; err != nil {
		t.Errorf("master: %v", err)
	}
	tm.Close()
	tm.stop = nil
}

// enlist enlists a target in a data directory of its own and opens its
// daemon, which the test runs (runTarget) or drives by hand.
func (tm *testMaster) enlist(t testing.TB, name string, adjust ...func(*Config)) *Main {
	t.Helper()
	return tm.enlistIn(t, name, t.TempDir(), adjust...)
}

// enlistIn is enlist into the data directory dir.
func (tm *testMaster) enlistIn(t testing.TB, name, dir string, adjust ...func(*Config)) *Main {
	t.Helper()
	if _, err := Enlist(context.Background(), EnlistOptions{MasterURL: tm.URL, Token: tm.token(t, name), Name: name, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	return openTarget(t, dir, adjust...)
}

// token is an enlistment token for name.
func (tm *testMaster) token(t testing.TB, name string) string {
	t.Helper()
	tok, _, err := tm.NewEnlistToken(context.Background(), name, time.Minute, tm.Self())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// openTarget opens the daemon of an enlisted data directory; it is closed
// when the test ends.
func openTarget(t testing.TB, dir string, adjust ...func(*Config)) *Main {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Logger = dir, quiet()
	for _, fn := range adjust {
		fn(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// runTarget runs the daemon until the test ends, or until the returned
// function stops it and hands back what Run returned.
func runTarget(t testing.TB, m *Main) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			err, stopped = <-done, true
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// apply applies jobs on the master.
func (tm *testMaster) apply(t testing.TB, jobs ...muster.Job) {
	t.Helper()
	if _, err := tm.api.Apply(context.Background(), httpapi.ApplyRequest{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
}

// shellJob is a job of one shell step per script, on targets.
func shellJob(name string, targets []string, scripts ...string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, targets
	for i, s := range scripts {
		j.Steps = append(j.Steps, muster.Step{Name: fmt.Sprintf("step%d", i+1), Shell: s})
	}
	return j
}

// waitFor waits until cond holds, checking every few milliseconds, and
// fails the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start starts a job by hand and returns its run ids.
func (tm *testMaster) start(t testing.TB, job string) []string {
	t.Helper()
	res, err := tm.api.StartJob(context.Background(), job, httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res.Runs {
		ids = append(ids, r.RunID)
	}
	return ids
}

// finished waits until the master holds the runs finished, and returns
// them.
func (tm *testMaster) finished(t testing.TB, ids ...string) []muster.Run {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		refs := make([]muster.RunRef, len(ids))
		for i, id := range ids {
			refs[i] = muster.RunRef{RunID: id}
		}
		runs, err := tm.api.Runs(context.Background(), refs, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if httpapi.AllFinished(runs, len(ids)) {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs %v not finished on the master after a minute: %+v", ids, runs)
		}
	}
}

// settled waits until every target has acknowledged every instruction.
func (tm *testMaster) settled(t testing.TB) {
	t.Helper()
	waitFor(t, time.Minute, "every instruction acknowledged", func() bool {
		pending, err := tm.api.DownloadList(context.Background(), httpapi.DownloadListFilter{Pending: true, Limit: 1})
		return err == nil && len(pending) == 0
	})
}
