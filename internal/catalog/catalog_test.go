package catalog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// admin is the actor of the changes tests make: the master's first admin
// key.
var admin = muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin, Source: "127.0.0.1"}

// MustOpen opens a new catalog on an engine with a pinned clock and
// records every commit's woken targets.
func MustOpen(tb testing.TB, e catalogtest.Engine) (*catalog.Catalog, *clock, *[]catalog.Commit) {
	tb.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	commits := &[]catalog.Commit{}
	db, err := catalog.Open(context.Background(), e.Open(tb), catalog.Options{
		Now: clk.Now,
		OnCommit: func(c catalog.Commit) {
			mu.Lock()
			*commits = append(*commits, c)
			mu.Unlock()
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	tb.Cleanup(lead(tb, db)) // it holds the singleton duties, as a master alone does
	return db, clk, commits
}

// enlist creates a token and enlists a target with it.
// hourCerts signs each enlistment a certificate, its serial the target's
// uid, valid for an hour of clk.
func hourCerts(clk *clock) func(uid string) (catalog.IssuedCert, error) {
	return func(uid string) (catalog.IssuedCert, error) {
		return catalog.IssuedCert{Serial: uid, NotAfter: clk.Now().Add(time.Hour)}, nil
	}
}

func enlist(tb testing.TB, db *catalog.Catalog, name string) catalog.TargetIdentity {
	tb.Helper()
	ctx := context.Background()
	if _, err := db.CreateEnlistToken(ctx, "hash-"+name, name, 15*time.Minute, admin); err != nil {
		tb.Fatal(err)
	}
	id, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
		func(uid string) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
		})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func job(name string, targets ...string) muster.Job {
	j := muster.NewJob()
	j.Name = name
	j.Targets = targets
	j.Steps = []muster.Step{{Name: "hello", Shell: "echo hello"}}
	return j
}

func ops(ins []catalog.InstructionRow) []string {
	var out []string
	for _, in := range ins {
		out = append(out, string(in.Operation)+" "+in.Job)
	}
	return out
}

func TestEnlistToken(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		sign := hourCerts(clk)
		if _, err := db.CreateEnlistToken(ctx, "h1", "web1", 15*time.Minute, admin); err != nil {
			t.Fatal(err)
		}
		t.Run("name bound", func(t *testing.T) {
			_, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h1", Name: "web2", UID: "u0"}, sign)
			if got := muster.ErrorCode(err); got != muster.EFORBIDDEN {
				t.Fatalf("got %q (%v), want forbidden", got, err)
			}
		})
		t.Run("unknown", func(t *testing.T) {
			_, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "nope", Name: "web1", UID: "u0"}, sign)
			if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED {
				t.Fatalf("got %q, want unauthorized", got)
			}
		})
		t.Run("single use", func(t *testing.T) {
			if _, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h1", Name: "web1", UID: "u1"}, sign); err != nil {
				t.Fatal(err)
			}
			_, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h1", Name: "web1", UID: "u2"}, sign)
			if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED {
				t.Fatalf("got %q, want unauthorized", got)
			}
		})
		t.Run("name taken", func(t *testing.T) {
			if _, err := db.CreateEnlistToken(ctx, "h2", "web1", 15*time.Minute, admin); err != nil {
				t.Fatal(err)
			}
			_, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h2", Name: "web1", UID: "u3"}, sign)
			if got := muster.ErrorCode(err); got != muster.ECONFLICT {
				t.Fatalf("got %q, want conflict", got)
			}
		})
		t.Run("expired", func(t *testing.T) {
			if _, err := db.CreateEnlistToken(ctx, "h3", "web3", 15*time.Minute, admin); err != nil {
				t.Fatal(err)
			}
			clk.Add(16 * time.Minute)
			_, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h3", Name: "web3", UID: "u4"}, sign)
			if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED {
				t.Fatalf("got %q, want unauthorized", got)
			}
		})
	})
}

// Enlistments sent at once with one token, or with two tokens for one
// name, enlist the target once: the others are refused as a token already
// used or a name already taken, and the token that lost stays unused.
func TestEnlistTokenRace(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		sign := hourCerts(clk)
		for _, tokens := range [][]string{{"one"}, {"this", "that"}} {
			name := "web-" + tokens[0]
			for _, h := range tokens {
				if _, err := db.CreateEnlistToken(ctx, h, name, 15*time.Minute, admin); err != nil {
					t.Fatal(err)
				}
			}
			errs := make([]error, 8)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = db.Enlist(ctx, catalog.Enlistment{TokenHash: tokens[i%len(tokens)], Name: name,
						UID: fmt.Sprintf("%s-%d", name, i)}, sign)
				})
			}
			wg.Wait()
			enlisted := 0
			for _, err := range errs {
				switch muster.ErrorCode(err) {
				case "":
					enlisted++
				case muster.EUNAUTHORIZED, muster.ECONFLICT:
				default:
					t.Errorf("%s: %v, want enlisted, or refused as used or taken", name, err)
				}
			}
			if enlisted != 1 {
				t.Errorf("%s: enlisted %d times at once, want once: %v", name, enlisted, errs)
			}
		}
		// Of the two tokens for web-this, the one that lost is unused: it
		// enlists the name once the target left.
		live, err := db.FindTarget(ctx, "web-this")
		if err != nil {
			t.Fatal(err)
		}
		id, err := db.TargetID(ctx, live.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.DefectTarget(ctx, id, muster.Actor{Kind: muster.ActorTarget, Name: "web-this"}); err != nil {
			t.Fatal(err)
		}
		again := 0
		for _, h := range []string{"this", "that"} {
			if _, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: h, Name: "web-this", UID: "again-" + h}, sign); err == nil {
				again++
			}
		}
		if again != 1 {
			t.Errorf("after web-this left, %d of its two tokens enlisted it again; want the one that lost the race", again)
		}
	})
}

func TestApplyPostsInstructions(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, commits := MustOpen(t, eng)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")

		res, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2"), job("b", "web1")}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if res.Posted != 3 {
			t.Errorf("posted %d, want 3", res.Posted)
		}
		got, _ := db.PendingInstructions(ctx, web1.ID, 0)
		if want := []string{"INSERT a", "INSERT b"}; !slices.Equal(ops(got), want) {
			t.Errorf("web1 got %v, want %v", ops(got), want)
		}
		if got[0].Seq != 1 || got[1].Seq != 2 {
			t.Errorf("sequence numbers %d, %d; want 1, 2 (per target)", got[0].Seq, got[1].Seq)
		}
		last := (*commits)[len(*commits)-1]
		slices.Sort(last.Targets)
		if !slices.Equal(last.Targets, []int64{web1.ID, web2.ID}) {
			t.Errorf("woke %v, want both targets", last.Targets)
		}

		t.Run("unchanged posts nothing", func(t *testing.T) {
			res, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2"), job("b", "web1")}, catalog.ApplyOptions{}, admin)
			if err != nil {
				t.Fatal(err)
			}
			if res.Posted != 0 || res.Changes[0].Action != muster.ActionUnchanged {
				t.Errorf("got %+v, want nothing posted", res)
			}
		})
		t.Run("header change is an UPDATE, target removal a DELETE", func(t *testing.T) {
			a := job("a", "web1")
			a.Description = "new words"
			res, err := db.ApplyJobs(ctx, []muster.Job{a, job("b", "web1")}, catalog.ApplyOptions{}, admin)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"UPDATE web1", "DELETE web2"}; !slices.Equal(res.Changes[0].Instructions, want) {
				t.Errorf("got %v, want %v", res.Changes[0].Instructions, want)
			}
			if res.Changes[0].Version != 2 {
				t.Errorf("version %d, want 2", res.Changes[0].Version)
			}
		})
		t.Run("unknown target is named and nothing changes", func(t *testing.T) {
			before, _ := db.FindInstructions(ctx, catalog.InstructionFilter{})
			_, err := db.ApplyJobs(ctx, []muster.Job{job("c", "web1"), job("d", "db9")}, catalog.ApplyOptions{}, admin)
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), `"db9"`) {
				t.Fatalf("got %v, want an error naming db9", err)
			}
			after, _ := db.FindInstructions(ctx, catalog.InstructionFilter{})
			if len(before) != len(after) {
				t.Errorf("instructions went from %d to %d after a rejected apply", len(before), len(after))
			}
			if _, err := db.FindJob(ctx, "c"); muster.ErrorCode(err) != muster.ENOTFOUND {
				t.Errorf("job c exists after a rejected apply: %v", err)
			}
		})
		t.Run("dry run commits nothing", func(t *testing.T) {
			res, err := db.ApplyJobs(ctx, []muster.Job{job("e", "web1")}, catalog.ApplyOptions{Prune: true, DryRun: true}, admin)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 3 || res.Changes[1].Action != muster.ActionDelete {
				t.Errorf("got %+v, want create e and delete a, b", res.Changes)
			}
			jobs, _ := db.FindJobs(ctx)
			if len(jobs) != 2 {
				t.Errorf("%d jobs after a dry run, want 2", len(jobs))
			}
		})
	})
}

func TestFailedInstructionBlocksUntilSuperseded(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1"), job("b", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: 1, Status: muster.InstructionFailed, Error: "proxy not found"}, {Seq: 2, Status: muster.InstructionDownloaded}}); err != nil {
			t.Fatal(err)
		}
		status := func() muster.Target {
			tg, err := db.FindTarget(ctx, "web1")
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
		if tg := status(); tg.Status != muster.StatusBlocked || tg.BlockingInstructions != 1 {
			t.Fatalf("status %q with %d blocking, want blocked with 1", tg.Status, tg.BlockingInstructions)
		}
		// A newer INSERT of the failed job supersedes the failure.
		a := job("a", "web1")
		a.Steps[0].Shell = "echo fixed"
		if _, err := db.ApplyJobs(ctx, []muster.Job{a, job("b", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if tg := status(); tg.Status != muster.StatusNormal {
			t.Fatalf("status %q, want normal after the INSERT superseded the failure", tg.Status)
		}
		list, _ := db.FindInstructions(ctx, catalog.InstructionFilter{Job: "a"})
		if list[0].Status != muster.InstructionSuperseded || list[0].Error != "proxy not found" {
			t.Errorf("first instruction %+v, want superseded with its error kept", list[0])
		}

		t.Run("retry reposts and clears", func(t *testing.T) {
			if _, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: 3, Status: muster.InstructionFailed, Error: "still broken"}}); err != nil {
				t.Fatal(err)
			}
			in, err := db.RetryInstruction(ctx, "", 3, admin)
			if err != nil {
				t.Fatal(err)
			}
			if in.Seq != 4 || in.Operation != muster.OpInsert {
				t.Errorf("reposted %+v, want INSERT seq 4", in)
			}
			if tg := status(); tg.Status != muster.StatusNormal {
				t.Errorf("status %q after retry, want normal", tg.Status)
			}
		})
		t.Run("delete clears", func(t *testing.T) {
			if _, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: 4, Status: muster.InstructionFailed, Error: "again"}}); err != nil {
				t.Fatal(err)
			}
			if err := db.DeleteInstruction(ctx, "web1", 4, admin); err != nil {
				t.Fatal(err)
			}
			if tg := status(); tg.Status != muster.StatusNormal {
				t.Errorf("status %q after delete, want normal", tg.Status)
			}
			if err := db.DeleteInstruction(ctx, "web1", 4, admin); muster.ErrorCode(err) != muster.EPRECONDITION {
				t.Errorf("deleting twice: %v, want a precondition error", err)
			}
		})
	})
}

func TestStartIdempotency(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		first, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Runs) != 2 || first.Replayed {
			t.Fatalf("got %+v, want two fresh runs", first)
		}
		again, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || again.Runs[0].RunID != first.Runs[0].RunID {
			t.Errorf("got %+v, want the first result replayed", again)
		}
		starts, _ := db.FindInstructions(ctx, catalog.InstructionFilter{Operation: muster.OpStart})
		if len(starts) != 2 {
			t.Errorf("%d STARTs posted, want 2", len(starts))
		}
		_, err = db.StartJob(ctx, catalog.StartRequest{Job: "a", Targets: []string{"web1"}, IdempotencyKey: "k1"}, admin)
		if muster.ErrorCode(err) != muster.ECONFLICT {
			t.Errorf("reused key with another request: %v, want conflict", err)
		}
		_, err = db.StartJob(ctx, catalog.StartRequest{Job: "a", Targets: []string{"db1"}}, admin)
		if muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("start on a target the job does not run on: %v, want invalid", err)
		}
	})
}

// An idempotency key is remembered for IdempotencyWindow: past it, the
// same key starts the job again, whether or not the retention duty has
// deleted it yet (PruneStarts), and is remembered anew.
func TestStartKeyForgottenAfterItsWindow(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		start := func(req catalog.StartRequest) muster.StartResult { t.Helper(); return mustStart(t, db, req) }
		prune := func(want int64) {
			t.Helper()
			if n, err := db.PruneStarts(ctx); err != nil || n != want {
				t.Errorf("PruneStarts: %d, %v; want %d deleted", n, err, want)
			}
		}
		first := start(catalog.StartRequest{Job: "a", Targets: []string{"web1"}, IdempotencyKey: "k1"})
		clk.Add(catalog.IdempotencyWindow - time.Minute)
		prune(0)
		if again := start(catalog.StartRequest{Job: "a", Targets: []string{"web1"}, IdempotencyKey: "k1"}); !again.Replayed || again.Runs[0] != first.Runs[0] {
			t.Errorf("within the window: %+v, want %+v replayed", again, first)
		}
		clk.Add(2 * time.Minute)
		second := start(catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}) // another request: the key is free
		if second.Replayed || second.Runs[0].RunID == first.Runs[0].RunID {
			t.Errorf("past the window: %+v, want a new run", second)
		}
		if again := start(catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}); !again.Replayed || again.Runs[0] != second.Runs[0] {
			t.Errorf("the key recorded anew: %+v, want %+v replayed", again, second)
		}
		_, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", Targets: []string{"web1"}, IdempotencyKey: "k1"}, admin)
		if muster.ErrorCode(err) != muster.ECONFLICT {
			t.Errorf("the first request again: %v, want conflict with the key's new request", err)
		}
		// Another API key sending the same request under the same
		// idempotency key is not handed the first key's result (its run
		// ids), nor recorded as starting nothing: it is a conflict.
		other := muster.Actor{Kind: muster.ActorKey, Name: "ci", Role: catalog.RoleOperator}
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}, other)
		if muster.ErrorCode(err) != muster.ECONFLICT || len(res.Runs) != 0 || !strings.Contains(muster.ErrorMessage(err), "another API key") {
			t.Errorf("another key with the same idempotency key: %+v, %v; want a conflict saying another key used it, and no runs", res, err)
		}
		clk.Add(catalog.IdempotencyWindow + time.Minute)
		prune(1)
	})
}

// A START to one target (named, or the job's only one) takes the target's
// sequence number with its first reads; whatever becomes of the request, the target's
// instructions keep consecutive numbers: a replayed key, a refused request
// and a job under max_parallel_targets take none, and a key whose request
// was refused stays free.
func TestStartToOneTargetKeepsSequenceNumbers(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		capped := job("capped", "web1", "web2")
		capped.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2"), capped, job("gone", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		web1 := []string{"web1"}
		start := func(req catalog.StartRequest) muster.StartResult { t.Helper(); return mustStart(t, db, req) }
		first := start(catalog.StartRequest{Job: "a", Targets: web1, IdempotencyKey: "k1"})
		if again := start(catalog.StartRequest{Job: "a", Targets: web1, IdempotencyKey: "k1"}); !again.Replayed || again.Runs[0] != first.Runs[0] {
			t.Errorf("retried start: %+v, want %+v replayed", again, first)
		}
		_, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", Targets: web1, Step: "nope", IdempotencyKey: "k2"}, admin)
		if muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("start at a step the job does not have: %v, want invalid", err)
		}
		_, err = db.StartJob(ctx, catalog.StartRequest{Job: "nosuch", Targets: web1, IdempotencyKey: "k3"}, admin)
		if muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("start of a job that does not exist: %v, want not found", err)
		}
		start(catalog.StartRequest{Job: "a", Targets: web1, IdempotencyKey: "k2"})
		start(catalog.StartRequest{Job: "a", IdempotencyKey: "k3"})
		if res := start(catalog.StartRequest{Job: "capped", Targets: web1}); res.Runs[0].Queued {
			t.Errorf("capped job's first start: %+v, want posted", res.Runs[0])
		}
		if res := start(catalog.StartRequest{Job: "capped", Targets: web1}); !res.Runs[0].Queued {
			t.Errorf("capped job's second start: %+v, want queued", res.Runs[0])
		}
		start(catalog.StartRequest{Job: "gone"})
		gone := start(catalog.StartRequest{Job: "gone", Targets: web1, IdempotencyKey: "k4"})
		if _, err := db.DeleteJob(ctx, "gone", admin); err != nil {
			t.Fatal(err)
		}
		if again := start(catalog.StartRequest{Job: "gone", Targets: web1, IdempotencyKey: "k4"}); !again.Replayed || again.Runs[0] != gone.Runs[0] {
			t.Errorf("retried start of a job deleted since: %+v, want %+v replayed", again, gone)
		}
		all, err := db.FindInstructions(ctx, catalog.InstructionFilter{Target: "web1"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, in := range all {
			got = append(got, fmt.Sprintf("%d %s %s", in.Seq, in.Operation, in.Job))
			if in.Seq != int64(i+1) {
				t.Errorf("instruction %d has seq %d, want %d", i, in.Seq, i+1)
			}
		}
		want := []string{"1 INSERT a", "2 INSERT capped", "3 INSERT gone", "4 START a", "5 START a", "6 START a", "7 START capped", "8 START gone", "9 START gone", "10 DELETE gone"}
		if !slices.Equal(got, want) {
			t.Errorf("web1's instructions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestUpsertRunsRevisionGuard(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		run := func(rev int64, status muster.RunStatus) catalog.RunUpload {
			return catalog.RunUpload{Revision: rev, Run: muster.Run{Job: "a", RunID: "r1", Status: status, Trigger: "operator", StartedAt: clk.Now()}}
		}
		res, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{run(2, muster.RunSucceeded), run(1, muster.RunRunning),
			{Revision: 1, Run: muster.Run{Job: "a", RunID: "bad", Status: "exploded", StartedAt: clk.Now()}}})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].OK || !res[1].OK || res[2].OK {
			t.Errorf("results %+v, want ok, ok (stale), error", res)
		}
		runs, _ := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if len(runs) != 1 || runs[0].Status != muster.RunSucceeded {
			t.Fatalf("runs %+v, want one succeeded run (the stale revision ignored)", runs)
		}
		j, _ := db.FindJob(ctx, "a")
		if j.Outcomes[0].LastStatus != muster.RunSucceeded {
			t.Errorf("last outcome %q, want succeeded", j.Outcomes[0].LastStatus)
		}
		// web2 was never sent job a: its upload is refused, per run.
		res, _ = db.UpsertRuns(ctx, web2, []catalog.RunUpload{run(1, muster.RunSucceeded)})
		if res[0].OK {
			t.Errorf("a target uploaded a run of a job it was never sent")
		}
	})
}

// In one batch of distinct runs, each keeps its own revision guard and
// its own output: a stale revision changes nothing but its new output, a
// newer one replaces what is held, a new run is inserted; each is answered
// for itself.
func TestUpsertRunsBatchOfDistinctRuns(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		run := func(id string, rev int64, status muster.RunStatus, chunk catalog.OutputChunk) catalog.RunUpload {
			return catalog.RunUpload{Revision: rev, Output: []catalog.OutputChunk{chunk}, Run: muster.Run{Job: "a", RunID: id,
				Status: status, Trigger: "operator", StartedAt: clk.Now(),
				Steps: []muster.StepAttempt{{Name: "one", Attempt: 1, Status: muster.AttemptRunning, StartedAt: clk.Now()}}}}
		}
		first := []catalog.RunUpload{
			run("r1", 2, muster.RunSucceeded, catalog.OutputChunk{Data: "one "}),
			run("r2", 1, muster.RunRunning, catalog.OutputChunk{Data: "two "}),
		}
		if res, err := db.UpsertRuns(ctx, web1, first); err != nil || !res[0].OK || !res[1].OK || !res[0].Ended || res[1].Ended {
			t.Fatalf("first upload: %+v %v", res, err)
		}
		second := []catalog.RunUpload{
			run("r1", 1, muster.RunRunning, catalog.OutputChunk{Offset: 0, Data: "one more"}), // stale
			run("r2", 2, muster.RunFailed, catalog.OutputChunk{Offset: 4, Data: "done"}),      // newer
			run("r3", 1, muster.RunSucceeded, catalog.OutputChunk{Data: "three"}),             // new
		}
		res, err := db.UpsertRuns(ctx, web1, second)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []struct {
			id    string
			ended bool
		}{{"r1", false}, {"r2", true}, {"r3", true}} {
			if got := res[i]; got.RunID != want.id || !got.OK || got.Ended != want.ended {
				t.Errorf("result %d: %+v, want run %s ok, ended %v", i, got, want.id, want.ended)
			}
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range runs {
			got[r.RunID] = string(r.Status) + " " + r.Steps[0].Output
		}
		want := map[string]string{"r1": "succeeded one more", "r2": "failed two done", "r3": "succeeded three"}
		if len(got) != len(want) {
			t.Fatalf("runs %v, want %v", got, want)
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("run %s: %q, want %q", id, got[id], w)
			}
		}
	})
}

// An upload of as many runs as one may hold is stored over several
// statements: every run with its own revision guard and its own output,
// large chunks of output among small ones.
func TestUpsertRunsFullUpload(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		const n = catalog.MaxRunsPerUpload
		large := strings.Repeat("x", 300<<10) // over what one statement stores
		upload := func(i int, rev int64, status muster.RunStatus, chunk catalog.OutputChunk) catalog.RunUpload {
			return catalog.RunUpload{Revision: rev, Output: []catalog.OutputChunk{chunk}, Run: muster.Run{Job: "a",
				RunID: fmt.Sprintf("r%04d", i), Status: status, Trigger: "operator", StartedAt: clk.Now(),
				Steps: []muster.StepAttempt{{Name: "one", Attempt: 1, Status: muster.AttemptRunning, StartedAt: clk.Now()}}}}
		}
		first := make([]catalog.RunUpload, n)
		for i := range first {
			data := fmt.Sprintf("%04d ", i)
			if i%100 == 7 {
				data = large
			}
			first[i] = upload(i, 2, muster.RunRunning, catalog.OutputChunk{Data: data})
		}
		res, err := db.UpsertRuns(ctx, web1, first)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if !r.OK || r.Ended || r.RunID != first[i].Run.RunID {
				t.Fatalf("first upload, result %d: %+v, want run %s ok, not ended", i, r, first[i].Run.RunID)
			}
		}
		// Every third run comes again at an older revision, which changes
		// nothing but adds its output; the others end.
		second := make([]catalog.RunUpload, n)
		for i := range second {
			offset := int64(len(first[i].Output[0].Data))
			if i%3 == 0 {
				second[i] = upload(i, 1, muster.RunSucceeded, catalog.OutputChunk{Offset: offset, Data: "stale"})
			} else {
				second[i] = upload(i, 3, muster.RunFailed, catalog.OutputChunk{Offset: offset, Data: "done"})
			}
		}
		if res, err = db.UpsertRuns(ctx, web1, second); err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if want := i%3 != 0; !r.OK || r.Ended != want || r.RunID != second[i].Run.RunID {
				t.Fatalf("second upload, result %d: %+v, want run %s ok, ended %v", i, r, second[i].Run.RunID, want)
			}
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a", Limit: 2 * n})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != n {
			t.Fatalf("%d runs, want %d", len(runs), n)
		}
		for _, r := range runs {
			var i int
			fmt.Sscanf(r.RunID, "r%04d", &i)
			status, output := muster.RunFailed, first[i].Output[0].Data+"done"
			if i%3 == 0 {
				status, output = muster.RunRunning, first[i].Output[0].Data+"stale"
			}
			if r.Status != status || r.Steps[0].Output != output {
				t.Errorf("run %s: %s with %d bytes of output (%.12q), want %s with %d (%.12q)", r.RunID, r.Status,
					len(r.Steps[0].Output), r.Steps[0].Output, status, len(output), output)
			}
		}
	})
}

// Heartbeats are seen at once and written within the flush; one older than
// what the catalog holds (another master's, written later) changes nothing.
func TestHeartbeatsFlush(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		db, clk, _ := MustOpen(t, eng)
		ctx := context.Background()
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		offset := 1500 * time.Millisecond
		paris, _ := time.LoadLocation("Europe/Paris")
		newer := catalog.Heartbeat{At: clk.Now().Add(time.Minute), LocalTime: clk.Now().Add(time.Minute + 2*time.Second).In(paris),
			TimeZone: "Europe/Paris", PollInterval: 30, Version: "9.9", Protocol: 1, SpoolDepth: 3, SpoolDropped: 1, ClockOffset: &offset}
		db.RecordPoll(web1.ID, newer)
		db.RecordPoll(web2.ID, catalog.Heartbeat{At: clk.Now().Add(time.Minute), PollInterval: 20})
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		// An older heartbeat of web1, as a lagging master would flush it.
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 90, Version: "0.1"})
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Store().FindTargets(ctx, catalog.TargetQuery{})
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, r := range rows {
			switch r.Name {
			case "web1":
				checked++
				if r.PollInterval != 30 || r.Version != "9.9" || r.TimeZone != "Europe/Paris" || r.UTCOffsetMinutes != 60 ||
					r.ClockSkewMS != 2000 || r.SpoolDepth != 3 || r.SpoolDropped != 1 || r.ClockOffsetMS == nil || *r.ClockOffsetMS != 1500 ||
					r.LastPoll == nil || !r.LastPoll.Equal(newer.At.UTC()) {
					t.Errorf("web1 row %+v, want the newer heartbeat", r)
				}
			case "web2":
				checked++
				if r.PollInterval != 20 || r.ClockOffsetMS != nil {
					t.Errorf("web2 row %+v", r)
				}
			}
		}
		if checked != 2 {
			t.Fatalf("checked %d targets, want 2", checked)
		}
	})
}

// A START fanned out to many targets (posted on SQLite in one statement
// for the counters, one for the instructions and one for the audit
// entry's targets) gives every target the next number of its own
// sequence, each target's download list the START with its run and its
// expiry, and the audit entry every target.
func TestStartFannedOut(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		const n = 510
		ids := map[string]catalog.TargetIdentity{}
		var names []string
		for i := range n {
			name := fmt.Sprintf("t%03d", i)
			ids[name] = enlist(t, db, name)
			names = append(names, name)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("wide", names...)}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		// One more instruction to the first ten: their counters are ahead.
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "wide", Targets: names[:10]}, admin); err != nil {
			t.Fatal(err)
		}
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "wide"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Runs) != n {
			t.Fatalf("got %d runs, want %d", len(res.Runs), n)
		}
		checked := 0
		for i, r := range res.Runs {
			want := int64(2) // the INSERT, then this START
			if i < 10 {
				want = 3
			}
			if r.Seq != want {
				t.Errorf("%s: seq %d, want %d", r.Target, r.Seq, want)
			}
			ins, err := db.PendingInstructions(ctx, ids[r.Target].ID, r.Seq-1)
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != 1 || ins[0].Seq != r.Seq || ins[0].Operation != muster.OpStart || !strings.Contains(string(ins[0].Payload), r.RunID) {
				t.Fatalf("%s: pending after %d: %+v, want the START of run %s at %d", r.Target, r.Seq-1, ins, r.RunID, r.Seq)
			}
			checked++
		}
		if checked != n {
			t.Errorf("checked %d targets, want %d", checked, n)
		}
		// Each START holds its expiry as a time the catalog compares.
		if active, err := db.Store().ActiveStarts(ctx, "wide", clk.Now()); err != nil || active != n+10 {
			t.Errorf("STARTs under way: %d (%v), want %d", active, err, n+10)
		}
		if active, err := db.Store().ActiveStarts(ctx, "wide", clk.Now().Add(11*time.Minute)); err != nil || active != 0 {
			t.Errorf("STARTs under way once expired: %d (%v), want 0", active, err)
		}
		// The audit entry names every target.
		for _, name := range []string{names[0], names[n-1]} {
			entries, err := db.FindAudit(ctx, catalog.AuditFilter{Target: name, Job: "wide"})
			if err != nil {
				t.Fatal(err)
			}
			starts := 0
			for _, e := range entries {
				if e.Action == muster.AuditJobStart {
					starts++
				}
			}
			if want := map[bool]int{true: 2, false: 1}[name == names[0]]; starts != want {
				t.Errorf("audit entries of starts on %s: %d, want %d", name, starts, want)
			}
		}
	})
}

// mustStart starts a job as the admin, failing the test if it cannot.
func mustStart(t *testing.T, db *catalog.Catalog, req catalog.StartRequest) muster.StartResult {
	t.Helper()
	res, err := db.StartJob(context.Background(), req, admin)
	if err != nil {
		t.Fatalf("start %+v: %v", req, err)
	}
	return res
}

// enlistWithDeploy enlists target a and applies a job deploy on it.
func enlistWithDeploy(t *testing.T, db *catalog.Catalog) catalog.TargetIdentity {
	t.Helper()
	a := enlist(t, db, "a")
	if _, err := db.ApplyJobs(context.Background(), []muster.Job{job("deploy", "a")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	return a
}

// A NUL byte in what a target reports (a step printing binary, a driver's
// error message) is stored: PostgreSQL's text cannot hold one, and a run
// refused for it would be uploaded again and again, holding up the runs
// behind it. Output is kept byte for byte; the texts get U+FFFD in its
// place.
func TestUpsertRunsWithNULBytes(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		exit := 3
		up := catalog.RunUpload{Revision: 1, Output: []catalog.OutputChunk{{Data: "bin\x00ary"}}, Run: muster.Run{Job: "a",
			RunID: "r-nul", Status: muster.RunFailed, Trigger: "operator\x00", StartedAt: clk.Now(), Message: "failed: \x00 in the message",
			Steps: []muster.StepAttempt{{Name: "one\x00", Attempt: 1, Status: muster.AttemptFailed, ExitCode: &exit, StartedAt: clk.Now(),
				Message: "ERROR: \x00 from the server"}}}}
		res, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{up})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || !res[0].OK {
			t.Fatalf("upload: %+v, want the run stored", res)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 {
			t.Fatalf("%d runs, want 1", len(runs))
		}
		r := runs[0]
		if r.Message != "failed: \uFFFD in the message" || r.Steps[0].Message != "ERROR: \uFFFD from the server" {
			t.Errorf("messages %q and %q, want the NUL as U+FFFD", r.Message, r.Steps[0].Message)
		}
		if r.Steps[0].Output != "bin\x00ary" {
			t.Errorf("output %q, want it byte for byte", r.Steps[0].Output)
		}

		// A run id or job name with a NUL is refused, that run alone; so is
		// a negative duration, which would take from the metrics' sums.
		bad := []catalog.RunUpload{up, up, up, up}
		bad[0].Run.RunID, bad[1].Run.Job, bad[2].Run.RunID = "r\x00", "a\x00", "r-ok"
		bad[3].Run.RunID, bad[3].Run.DurationMS = "r-neg", -5
		res, err = db.UpsertRuns(ctx, web1, bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 || res[0].OK || !strings.Contains(res[0].Error, "run_id: ") || res[1].OK || !strings.Contains(res[1].Error, "job: ") || !res[2].OK ||
			res[3].OK || !strings.Contains(res[3].Error, "duration_ms: must not be negative") {
			t.Errorf("upload of runs with a NUL in the run id and in the job, and a negative duration: %+v, want all but r-ok refused", res)
		}

		// So with events, and an instruction's error.
		evs, err := db.RecordTargetEvents(ctx, web1, []catalog.TargetEvent{
			{ID: 1, Name: muster.EventSpoolFull, Severity: 3, Message: "full\x00", At: clk.Now()},
			{ID: 2, Name: muster.EventSpoolFull, Severity: 3, Job: "a\x00", At: clk.Now()},
			{ID: 3, Name: muster.EventSpoolFull, Severity: 3, RunID: "r\x00", At: clk.Now()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 || !evs[0].OK || evs[1].OK || !strings.Contains(evs[1].Error, "job: ") || evs[2].OK || !strings.Contains(evs[2].Error, "run_id: ") {
			t.Errorf("events with a NUL: %+v, want the first stored, the others refused", evs)
		}
		if _, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: 1, Status: muster.InstructionFailed, Error: "no such \x00 file"}}); err != nil {
			t.Fatal(err)
		}
		failed, err := db.FindInstructions(ctx, catalog.InstructionFilter{Target: "web1", Errors: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(failed) != 1 || failed[0].Error != "no such \uFFFD file" {
			t.Errorf("failed instructions %+v, want one whose error has U+FFFD for the NUL", failed)
		}
	})
}

// An enlistment whose reply was lost is sent again with the same token and
// the same key: the master answers it as the enlistment it already made,
// with a new certificate for the same target, rather than refusing the
// token as used. The same token with another key is still refused.
func TestEnlistRepeatedAfterALostReply(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		n := 0
		sign := func(uid string) (catalog.IssuedCert, error) {
			n++
			return catalog.IssuedCert{Serial: fmt.Sprintf("serial-%d", n), NotAfter: clk.Now().Add(time.Hour), KeyHash: "key-1"}, nil
		}
		if _, err := db.CreateEnlistToken(ctx, "h1", "web1", 15*time.Minute, admin); err != nil {
			t.Fatal(err)
		}
		e := catalog.Enlistment{TokenHash: "h1", Name: "web1", UID: "u1", KeyHash: "key-1"}
		first, err := db.Enlist(ctx, e, sign)
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
		e.UID = "u2" // each request comes with a new uid
		again, err := db.Enlist(ctx, e, sign)
		if err != nil {
			t.Fatalf("the same enlistment again: %v, want it answered", err)
		}
		if again.ID != first.ID || again.UID != "u1" || n != 2 {
			t.Errorf("the repeated enlistment: %+v after %+v with %d certificates signed; want the same target, uid u1, and a second certificate", again, first, n)
		}
		for _, serial := range []string{"serial-1", "serial-2"} {
			if id, err := db.AuthenticateTarget(ctx, serial); err != nil || id.ID != first.ID {
				t.Errorf("certificate %s: %+v, %v; want it to name web1", serial, id, err)
			}
		}
		targets, err := db.FindTargets(ctx, catalog.TargetFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(targets) != 1 {
			t.Errorf("%d targets, want 1", len(targets))
		}

		other := e
		other.KeyHash = "key-2"
		_, err = db.Enlist(ctx, other, sign)
		if muster.ErrorCode(err) != muster.EUNAUTHORIZED || !strings.Contains(err.Error(), "already used") {
			t.Errorf("the token with another key: %v, want unauthorized, already used", err)
		}
		clk.Add(15 * time.Minute)
		_, err = db.Enlist(ctx, e, sign)
		if muster.ErrorCode(err) != muster.EUNAUTHORIZED || n != 2 {
			t.Errorf("the same enlistment once the token expired: %v (%d certificates), want unauthorized and none signed", err, n)
		}
	})
}

// A start remembered by a master before requests kept their sender, and
// retried (its reply lost) once the master was upgraded, gets its first
// result back: it does not start the job again, nor is it refused as
// another key's.
func TestStartRememberedBeforeAnUpgradeIsReplayed(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store := e.Open(t)
		clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
		db := openOn(t, store, clk)
		enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		first := muster.StartResult{Job: "a", Runs: []muster.StartedRun{{Target: "web1", Seq: 7, RunID: "run-before-the-upgrade"}}}
		body, err := json.Marshal(first)
		if err != nil {
			t.Fatal(err)
		}
		err = store.Update(ctx, func(tx catalog.Tx) error {
			claim := catalog.StartClaim{Key: "k-old", Job: "a", At: clk.Now(), Forgotten: clk.Now().Add(-catalog.IdempotencyWindow),
				Request: `{"Job":"a","Targets":[],"ExpiresIn":0,"Env":null,"Step":""}`}
			if _, err := tx.ClaimStart(ctx, claim); err != nil {
				return err
			}
			return tx.SetStartResponse(ctx, "k-old", string(body))
		})
		if err != nil {
			t.Fatal(err)
		}
		replays := 0
		for _, by := range []muster.Actor{admin, {Kind: muster.ActorKey, Name: "ci", Role: catalog.RoleOperator}} {
			res, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", IdempotencyKey: "k-old"}, by)
			if err != nil || !res.Replayed || len(res.Runs) != 1 || res.Runs[0].RunID != "run-before-the-upgrade" {
				t.Fatalf("the retry by %s: %+v, %v; want the first result replayed", by.Name, res, err)
			}
			replays++
		}
		if replays != 2 {
			t.Fatalf("%d retries replayed, want 2", replays)
		}
	})
}
