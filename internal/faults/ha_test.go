package faults

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// haPollInterval is the targets' poll interval in the tests of a group of
// masters: a target must be back in contact within it after any fault.
const haPollInterval = 20 * time.Second

// group is a fleet of two master processes on one PostgreSQL catalog, and
// targets enlisted with both.
type group struct {
	*fleet
	masters [2]*bench.Master
}

// newGroup starts two masters on the catalog at store, the second joining
// the first's, and three targets enlisted with both URLs, polling every
// haPollInterval.
func newGroup(ctx context.Context, t *testing.T, store string) *group {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	b := make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(secret, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFleetWith(t, bench.MasterOptions{Store: store, SecretFile: secret})
	g := &group{fleet: f}
	g.masters[0] = f.master
	m2, err := bench.StartMaster(ctx, f.exe, filepath.Join(f.dir, "master2"), bench.MasterOptions{Store: store, SecretFile: secret, Token: f.master.Token})
	if err != nil {
		t.Fatal(err)
	}
	g.masters[1] = m2
	t.Cleanup(func() {
		m2.Kill()
		if t.Failed() {
			t.Logf("master 2 log:\n%s", tail(m2.Log(), 40))
		}
	})
	urls := g.masters[0].URL + "," + g.masters[1].URL
	for i := range 3 {
		f.addTarget(fmt.Sprintf("web%d", i+1), urls)
	}
	if err := retry(ctx, func() error {
		_, err := f.master.Client.Post(ctx, httpapi.PostRequest{Operation: muster.OpSetPoll, Value: int(haPollInterval / time.Second)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f.settle(ctx)
	return g
}

// stalled is how long a START may go unaccepted by both masters before
// the test takes the live masters' goroutines and fails: far beyond a
// failover, which takes a poll interval.
const stalled = 3 * time.Minute

// start starts job through master i with an idempotency key, as `muster
// job start` does, resending it with the same key, through the other
// master, while the one tried cannot answer. It logs what each master
// answered while it cannot start, and when neither accepts it for longer
// than stalled, it dumps the running masters' goroutines into their logs
// and fails naming the files.
func (g *group) start(ctx context.Context, i int, job, key string) muster.RunRef {
	g.t.Helper()
	began, logged := time.Now(), time.Now()
	var last [2]error
	for {
		res, err := g.masters[i].Client.StartJob(ctx, job, httpapi.StartBody{IdempotencyKey: key})
		if err == nil {
			return res.Refs()[0]
		}
		last[i] = err
		if ctx.Err() != nil {
			g.t.Fatalf("start %s: %v", job, err)
		}
		if time.Since(logged) > 10*time.Second {
			g.t.Logf("start %s not accepted for %s: master 1: %v; master 2: %v", job, time.Since(began).Round(time.Second), last[0], last[1])
			logged = time.Now()
		}
		if time.Since(began) > stalled {
			g.t.Fatalf("start %s: accepted by neither master for %s (master 1: %v; master 2: %v); %s",
				job, stalled, last[0], last[1], g.dump())
		}
		i = 1 - i
		sleep(ctx, 50*time.Millisecond)
	}
}

// dump takes the goroutines of the running masters into their logs and
// copies the logs to a directory the test's cleanup does not remove,
// which it names.
func (g *group) dump() string {
	keep, err := os.MkdirTemp("", "muster-stall-")
	if err != nil {
		return fmt.Sprintf("the masters' logs could not be kept: %v", err)
	}
	for i, m := range g.masters {
		if m.Running() {
			if err := m.Dump(); err != nil {
				g.t.Log(err)
			}
		}
		b, err := os.ReadFile(m.LogFile())
		if err == nil {
			err = os.WriteFile(filepath.Join(keep, fmt.Sprintf("master%d.log", i+1)), b, 0o644)
		}
		if err != nil {
			g.t.Logf("master %d's log: %v", i+1, err)
		}
	}
	return "the masters' logs, with the goroutines of those that were running, are in " + keep
}

// inContact waits until every target has polled a master after since,
// asking master i, and returns how long after since the last one did.
func (g *group) inContact(ctx context.Context, i int, since time.Time) time.Duration {
	g.t.Helper()
	var last time.Time
	g.eventually(ctx, "every target to poll a master again", func() bool {
		targets, err := g.masters[i].Client.Targets(ctx, "")
		if err != nil || len(targets) != len(g.targets) {
			return false
		}
		last = since
		for _, tg := range targets {
			if tg.LastPoll == nil || !tg.LastPoll.After(since) {
				return false
			}
			last = maxTime(last, *tg.LastPoll)
		}
		return true
	})
	return last.Sub(since)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dispatchThrough runs a group's fault test: the plan's STARTs, one job
// each, alternately through the two masters, in four quarters; during the
// second and the fourth, fault strikes at a random point, and what it
// returns (the time from which every target must be back in contact, and
// the master to ask) is checked within a poll interval. Every run must
// then have happened exactly once, by the steps' own record, and be on
// the master once.
func (g *group) dispatchThrough(ctx context.Context, p plan, fault func(quarter int) (since time.Time, ask int)) map[string]any {
	t := g.t
	jobs := make([]muster.Job, p.haDispatches)
	for i := range jobs {
		jobs[i] = g.effectJob(fmt.Sprintf("d%04d", i+1), g.targets[i%3].Name, "")
	}
	g.apply(ctx, jobs...)

	ids := make([]muster.RunRef, 0, len(jobs))
	var contact []time.Duration
	quarter := len(jobs) / 4
	for q := range 4 {
		var wg sync.WaitGroup
		if q == 1 || q == 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sleep(ctx, uniform(0, time.Duration(quarter)*p.dispatchPace))
				since, ask := fault(q)
				contact = append(contact, g.inContact(ctx, ask, since))
			}()
		}
		for i := q * quarter; i < (q+1)*quarter || q == 3 && i < len(jobs); i++ {
			ids = append(ids, g.start(ctx, i%2, jobs[i].Name, fmt.Sprintf("ha-%d", i)))
			sleep(ctx, p.dispatchPace)
		}
		wg.Wait()
		if ctx.Err() != nil {
			t.Fatalf("quarter %d: %v", q+1, ctx.Err())
		}
	}
	for i, d := range contact {
		if d > haPollInterval {
			t.Errorf("after fault %d, the last target was back in contact after %s, more than a poll interval (%s)", i+1, d, haPollInterval)
		}
	}

	runs, _, err := bench.WaitRuns(ctx, g.masters[0].Client, ids, time.Until(deadline(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	lost, duplicated := checkOnce(t, ids, runs, executions(g.readEffects()))
	if len(ids) != len(jobs) {
		t.Errorf("%d STARTs accepted of %d", len(ids), len(jobs))
	}
	figures := map[string]any{"dispatches": len(ids), "targets": len(g.targets), "masters": len(g.masters), "lost": lost, "duplicated": duplicated,
		"poll_interval_s": haPollInterval.Seconds()}
	for i, d := range contact {
		figures[fmt.Sprintf("back_in_contact_%d_ms", i+1)] = ms(d)
	}
	return figures
}

// Two masters on one PostgreSQL catalog, three targets enlisted with both.
// STARTs go through both masters while each is killed with SIGKILL in turn
// (the first, which the targets poll, then the second, after the first
// came back and the targets moved to it). Nothing is lost or doubled, and
// the targets are back in contact within a poll interval each time.
func TestMasterOfGroupKilled(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), p.perTestWallBounds)
	defer cancel()
	g := newGroup(ctx, t, catalogtest.PostgresURL(t))
	kills := 0
	figures := g.dispatchThrough(ctx, p, func(q int) (time.Time, int) {
		i := 0 // the master the targets poll: the first of their list
		if q == 3 {
			// The first master is back; the targets moved to the second
			// when it was killed, and now leave it for the first.
			if err := g.masters[0].Restart(ctx); err != nil {
				t.Error(err)
			}
			i = 1
		}
		if err := g.masters[i].Kill(); err != nil {
			t.Error(err)
		} else {
			kills++
		}
		return time.Now(), 1 - i
	})
	if !g.masters[1].Running() {
		if err := g.masters[1].Restart(ctx); err != nil {
			t.Fatal(err)
		}
	}
	figures["master_kills"] = kills
	report(t, figures)
}

// Two masters on one PostgreSQL cluster that is stopped (immediate
// shutdown, as in a crash) and started again while STARTs go through both
// masters, twice. The masters answer 503 meanwhile, commit nothing half,
// and carry on: nothing is lost or doubled, and the targets are back in
// contact within a poll interval of the database's return.
func TestDatabaseOfGroupRestarted(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), p.perTestWallBounds)
	defer cancel()
	cluster := catalogtest.NewCluster(t)
	g := newGroup(ctx, t, cluster.URL)
	restarts := 0
	var longest time.Duration // from the database stopped to it started again
	figures := g.dispatchThrough(ctx, p, func(q int) (time.Time, int) {
		cluster.Stop()
		stopped := time.Now()
		sleep(ctx, p.databaseDown)
		cluster.Start()
		restarts++
		longest = max(longest, time.Since(stopped))
		return time.Now(), q % 2
	})
	figures["database_restarts"], figures["database_down_max_ms"] = restarts, ms(longest)
	report(t, figures)
}

// The acceptance: two masters on one new catalog share one CA; a
// target enlisted with both runs a job started through the first; once
// the first is killed with SIGKILL, a job started through the second runs
// on it; the history holds both runs, once each.
func TestGroupOutlivesAMaster(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), p.perTestWallBounds)
	defer cancel()
	g := newGroup(ctx, t, catalogtest.PostgresURL(t))
	ca1, err1 := os.ReadFile(filepath.Join(g.masters[0].Dir, pki.CACertFile))
	ca2, err2 := os.ReadFile(filepath.Join(g.masters[1].Dir, pki.CACertFile))
	if err1 != nil || err2 != nil || string(ca1) != string(ca2) {
		t.Fatalf("the masters' ca.pem differ (%v, %v)", err1, err2)
	}
	g.apply(ctx, g.effectJob("hello", "web1", ""))

	first, err := g.masters[0].Client.StartJob(ctx, "hello", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	if runs, _, err := bench.WaitRuns(ctx, g.masters[0].Client, first.Refs(), time.Minute); err != nil || runs[0].Status != muster.RunSucceeded {
		t.Fatalf("run through master 1: %+v %v", runs, err)
	}
	if err := g.masters[0].Kill(); err != nil {
		t.Fatal(err)
	}
	second, err := g.masters[1].Client.StartJob(ctx, "hello", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	if runs, _, err := bench.WaitRuns(ctx, g.masters[1].Client, second.Refs(), haPollInterval+time.Minute); err != nil || runs[0].Status != muster.RunSucceeded {
		t.Fatalf("run through master 2 after master 1 was killed: %+v %v", runs, err)
	}
	history, err := g.masters[1].Client.History(ctx, "hello", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range history {
		seen[r.RunID]++
	}
	if len(history) != 2 || seen[first.Refs()[0].RunID] != 1 || seen[second.Refs()[0].RunID] != 1 {
		t.Fatalf("history %v, want the two runs once each", seen)
	}
	if n := len(g.readEffects()); n != 2 {
		t.Fatalf("the step ran %d times, want 2", n)
	}
}
