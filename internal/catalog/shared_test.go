package catalog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// Two masters on one PostgreSQL catalog, writing at once: every invariant a
// single SQLite writer gave for free must hold by the catalog's own locks
// and constraints.

// twoMasters opens two catalogs on one new PostgreSQL catalog, with one
// clock.
func twoMasters(t *testing.T) (a, b *catalog.Catalog, clk *clock) {
	t.Helper()
	url := catalogtest.PostgresURL(t)
	clk = &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	open := func() *catalog.Catalog {
		c, err := catalog.Open(context.Background(), catalogtest.OpenPostgres(t, url), catalog.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return open(), open(), clk
}

// Sequence numbers of one target posted by two masters at once are unique,
// without gaps, and commit in order: a poller never sees seq N+1 before N.
// One master names the target, so that its STARTs take their numbers with
// their first reads (ClaimStart); the other's go to the job's two targets,
// which take theirs after reading the job.
func TestSharedSequenceNumbersCommitInOrder(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	web1 := enlist(t, a, "web1")
	enlist(t, a, "web2")
	if _, err := a.ApplyJobs(ctx, []muster.Job{job("tick", "web1", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	const perMaster = 60
	stop := make(chan struct{})
	var gaps []string
	polled := 0
	var pollerDone sync.WaitGroup
	pollerDone.Add(1)
	go func() {
		defer pollerDone.Done()
		cursor := int64(1) // the INSERT
		for {
			select {
			case <-stop:
				return
			default:
			}
			ins, err := b.PendingInstructions(ctx, web1.ID, cursor)
			if err != nil {
				gaps = append(gaps, err.Error())
				return
			}
			for _, in := range ins {
				if in.Seq != cursor+1 {
					gaps = append(gaps, fmt.Sprintf("after %d the poller saw %d", cursor, in.Seq))
				}
				cursor = in.Seq
				polled++
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 2*perMaster)
	for i, c := range []*catalog.Catalog{a, b} {
		req := catalog.StartRequest{Job: "tick"}
		if i == 1 {
			req.Targets = []string{"web1"}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perMaster {
				if _, err := c.StartJob(ctx, req, admin); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Let the poller catch up with the last commit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ins, err := a.PendingInstructions(ctx, web1.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) == 2*perMaster+1 || time.Now().After(deadline) {
			break
		}
	}
	close(stop)
	pollerDone.Wait()
	if len(gaps) > 0 {
		t.Fatalf("%d gaps, first: %s", len(gaps), gaps[0])
	}
	all, err := a.FindInstructions(ctx, catalog.InstructionFilter{Target: "web1", Operation: muster.OpStart})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2*perMaster {
		t.Fatalf("%d STARTs posted, want %d", len(all), 2*perMaster)
	}
	for i, in := range all {
		if want := int64(i + 2); in.Seq != want {
			t.Fatalf("START %d has seq %d, want %d (unique, no gaps)", i, in.Seq, want)
		}
	}
	if polled == 0 {
		t.Fatal("the poller saw no instruction while the masters posted")
	}
}

// An idempotency key sent to two masters at once starts the job once, and
// the retry that lost takes no sequence number of the target it names.
func TestSharedIdempotencyKey(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	enlist(t, a, "web1")
	if _, err := a.ApplyJobs(ctx, []muster.Job{job("deploy", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		key := fmt.Sprintf("k%d", round)
		results := make([]muster.StartResult, 2)
		var wg sync.WaitGroup
		for i, c := range []*catalog.Catalog{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.StartJob(ctx, catalog.StartRequest{Job: "deploy", Targets: []string{"web1"}, IdempotencyKey: key}, admin)
				if err != nil {
					t.Error(err)
				}
				results[i] = res
			}()
		}
		wg.Wait()
		if results[0].Replayed == results[1].Replayed {
			t.Fatalf("round %d: replayed %v and %v, want exactly one replay", round, results[0].Replayed, results[1].Replayed)
		}
		if results[0].Runs[0].RunID != results[1].Runs[0].RunID {
			t.Fatalf("round %d: runs %s and %s, want the same run", round, results[0].Runs[0].RunID, results[1].Runs[0].RunID)
		}
	}
	starts, err := a.FindInstructions(ctx, catalog.InstructionFilter{Operation: muster.OpStart})
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != 20 {
		t.Fatalf("%d STARTs posted for 20 keys", len(starts))
	}
	for i, in := range starts {
		if want := int64(i + 2); in.Seq != want { // after the job's INSERT
			t.Fatalf("START %d has seq %d, want %d (unique, no gaps)", i, in.Seq, want)
		}
	}
}

// A run uploaded to two masters at once, at different revisions, keeps the
// newest revision whatever the order the two commit in.
func TestSharedRunRevisionGuard(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	web1 := enlist(t, a, "web1")
	if _, err := a.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	for round := range rounds {
		id := fmt.Sprintf("run-%d", round)
		var wg sync.WaitGroup
		for i, c := range []*catalog.Catalog{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status := muster.RunRunning
				if i == 1 {
					status = muster.RunSucceeded
				}
				at := clk.Now()
				res, err := c.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: int64(i + 1), Run: muster.Run{Job: "backup",
					RunID: id, Status: status, Trigger: "schedule:nightly", StartedAt: at}}})
				if err != nil || !res[0].OK {
					t.Errorf("upload %s: %+v %v", id, res, err)
				}
			}()
		}
		wg.Wait()
	}
	runs, err := a.FindRuns(ctx, catalog.RunFilter{Job: "backup", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != rounds {
		t.Fatalf("%d runs recorded, want %d", len(runs), rounds)
	}
	for _, r := range runs {
		if r.Status != muster.RunSucceeded {
			t.Errorf("run %s: %s, want succeeded (revision 2)", r.RunID, r.Status)
		}
	}
}

// STARTs held back by max_parallel_targets are released by two masters at
// once: each is posted exactly once.
func TestSharedQueuedStartsReleasedOnce(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	var targets []catalog.TargetIdentity
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("web%d", i+1)
		targets = append(targets, enlist(t, a, name))
		names = append(names, name)
	}
	j := job("deploy", names...)
	j.MaxParallelTargets = 2
	if _, err := a.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	res, err := a.StartJob(ctx, catalog.StartRequest{Job: "deploy"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, r := range res.Runs {
		if r.Queued {
			queued++
		}
	}
	if queued != 4 {
		t.Fatalf("%d STARTs queued, want 4 of 6", queued)
	}
	// Every START's run ends at once, each reported through either master;
	// the masters release the queue meanwhile.
	clk.Add(time.Minute)
	for round := 0; round < 4; round++ {
		starts, err := a.FindInstructions(ctx, catalog.InstructionFilter{Operation: muster.OpStart})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, in := range starts {
			tid := targets[slices.Index(names, in.Target)]
			c := []*catalog.Catalog{a, b}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				runID := startRunID(t, c, in.Target, in.Seq)
				at := clk.Now()
				if _, err := c.UpsertRuns(ctx, tid, []catalog.RunUpload{{Revision: 9, Run: muster.Run{Job: "deploy", RunID: runID,
					Status: muster.RunSucceeded, Trigger: "operator", StartedAt: at, FinishedAt: &at}}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Add(2)
		go func() { defer wg.Done(); a.ReleaseQueuedStarts(ctx) }()
		go func() { defer wg.Done(); b.ReleaseQueuedStarts(ctx) }()
		wg.Wait()
	}
	starts, err := a.FindInstructions(ctx, catalog.InstructionFilter{Operation: muster.OpStart})
	if err != nil {
		t.Fatal(err)
	}
	perTarget := map[string]int{}
	for _, in := range starts {
		perTarget[in.Target]++
	}
	for _, name := range names {
		if perTarget[name] != 1 {
			t.Errorf("target %s got %d STARTs, want 1", name, perTarget[name])
		}
	}
}

// startRunID returns the run id of the START seq posted to a target.
func startRunID(t *testing.T, c *catalog.Catalog, target string, seq int64) string {
	t.Helper()
	ins, err := c.Store().InstructionsBySeq(context.Background(), target, seq)
	if err != nil || len(ins) != 1 {
		t.Fatalf("START %d on %s: %v %v", seq, target, ins, err)
	}
	return ins[0].RunID
}

// Two masters applying changes to one job at once never give two
// definitions the same version, and every target ends with the job as the
// catalog holds it.
func TestSharedApplyVersions(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	web1 := enlist(t, a, "web1")
	const rounds = 15
	var wg sync.WaitGroup
	for i, c := range []*catalog.Catalog{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				j := job("shared", "web1")
				j.Description = fmt.Sprintf("master %d, round %d", i, r)
				if _, err := c.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	inserts, err := a.PendingInstructions(ctx, web1.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[int64]string{}
	for _, in := range inserts {
		var d struct {
			Version     int64  `json:"version"`
			Description string `json:"description"`
		}
		if err := json.Unmarshal(in.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if prev, ok := versions[d.Version]; ok && prev != d.Description {
			t.Fatalf("version %d is both %q and %q", d.Version, prev, d.Description)
		}
		versions[d.Version] = d.Description
	}
	final, err := a.FindJob(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if final.Version != int64(len(versions)) {
		t.Fatalf("the job is at version %d after %d distinct versions were sent", final.Version, len(versions))
	}
}

// An enlistment token offered to two masters at once enlists once.
func TestSharedEnlistTokenUsedOnce(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	for round := range 10 {
		name := fmt.Sprintf("web%d", round)
		if _, err := a.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, admin); err != nil {
			t.Fatal(err)
		}
		codes := make([]string, 2)
		var wg sync.WaitGroup
		for i, c := range []*catalog.Catalog{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: fmt.Sprintf("uid-%s-%d", name, i)},
					func(uid string) (catalog.IssuedCert, error) {
						return catalog.IssuedCert{Serial: "serial-" + uid, NotAfter: clk.Now().Add(time.Hour)}, nil
					})
				codes[i] = muster.ErrorCode(err)
			}()
		}
		wg.Wait()
		slices.Sort(codes)
		// One enlists; the other finds the token used (or, having read it
		// unused, the name taken).
		if codes[0] != "" || (codes[1] != muster.EUNAUTHORIZED && codes[1] != muster.ECONFLICT) {
			t.Fatalf("round %d: codes %q, want one success and one refusal", round, codes)
		}
	}
}

// Two masters changing one job at once each record every change they
// commit, once, under their own actor, and the log read newest first is
// the order they committed in: each entry's diff starts from what the one
// before it left.
func TestSharedAuditRecordsEachChangeInOrder(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	enlist(t, a, "web1")
	const rounds = 15
	var wg sync.WaitGroup
	for i, c := range []*catalog.Catalog{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			by := muster.Actor{Kind: muster.ActorKey, Name: fmt.Sprintf("key%d", i), Role: catalog.RoleOperator, Source: "10.0.0.1"}
			for r := range rounds {
				j := job("shared", "web1")
				j.Description = fmt.Sprintf("master %d, round %d", i, r)
				if _, err := c.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, by); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	entries := audit(t, b, catalog.AuditFilter{Job: "shared", Limit: catalog.MaxAuditList})
	if len(entries) != 2*rounds {
		t.Fatalf("%d entries on the job, want %d", len(entries), 2*rounds)
	}
	prev, by := "", map[string]int{}
	for _, e := range slices.Backward(entries) {
		by[e.Actor.Name]++
		var from, to string
		for _, l := range e.Changes {
			if _, err := fmt.Sscanf(l, "~ description: %q -> %q", &from, &to); err == nil {
				break
			}
			if _, err := fmt.Sscanf(l, "+ description: %q", &to); err == nil {
				from = ""
				break
			}
		}
		if to == "" || from != prev {
			t.Fatalf("entry %d (%s by %s): description %q -> %q, but the entry before left %q", e.ID, e.Action, e.Actor.Name, from, to, prev)
		}
		prev = to
	}
	if by["key0"] != rounds || by["key1"] != rounds {
		t.Errorf("entries by actor: %v, want %d each", by, rounds)
	}
	if final, err := a.FindJob(ctx, "shared"); err != nil || final.Description != prev {
		t.Errorf("the job's description %q (%v), but the newest entry says %q", final.Description, err, prev)
	}
}
