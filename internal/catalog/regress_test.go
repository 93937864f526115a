package catalog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// Pruning the download list does not make the master forget which jobs a
// target was sent: its runs are still accepted.
func TestPrunedDownloadListKeepsRunsAccepted(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime}, admin); err != nil {
				t.Fatal(err)
			}
		}
		var acks []catalog.AckRow
		for seq := int64(1); seq <= 6; seq++ {
			acks = append(acks, catalog.AckRow{Seq: seq, Status: muster.InstructionDownloaded})
		}
		db.Ack(ctx, web1.ID, acks)
		if n, err := db.PruneDownloaded(ctx, 2); err != nil || n != 4 {
			t.Fatalf("pruned %d, %v; want 4", n, err)
		}
		res, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
			Job: "backup", RunID: "r1", Status: muster.RunSucceeded, StartedAt: clk.Now()}}})
		if err != nil || !res[0].OK {
			t.Errorf("a run of a job sent before the pruning: %+v %v", res, err)
		}
	})
}

// A renewal retried with the same new key after a lost reply is served;
// another key from the replaced certificate is not.
func TestRenewalRetryAfterALostReply(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		enlist(t, db, "web1") // its certificate is serial-web1
		n := 0
		sign := func(key string) func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
			return func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
				n++
				return catalog.IssuedCert{Serial: "s" + string(rune('0'+n)), NotAfter: clk.Now().Add(time.Hour), KeyHash: key}, nil
			}
		}
		if _, err := db.RenewCert(ctx, "serial-web1", "k1", sign("k1")); err != nil {
			t.Fatal(err)
		}
		// The reply was lost: the target retries from its old certificate with
		// the same new key.
		if _, err := db.RenewCert(ctx, "serial-web1", "k1", sign("k1")); err != nil {
			t.Errorf("the retry with the same key: %v", err)
		}
		if _, err := db.RenewCert(ctx, "serial-web1", "k9", sign("k9")); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("another key from a replaced certificate: %v, want refused", err)
		}
	})
}

// A START held back by max_parallel_targets is dropped when its target
// leaves the job, instead of reaching a target without the job.
func TestQueuedStartDroppedWhenTheTargetLeaves(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "a")
		b := enlist(t, db, "b")
		j := job("deploy", "a", "b")
		j.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy"}, admin)
		if err != nil || !res.Runs[1].Queued {
			t.Fatalf("start: %+v %v, want b queued", res, err)
		}
		j.Targets = []string{"a"}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseQueuedStarts(ctx); err != nil {
			t.Fatal(err)
		}
		for _, in := range must(db.PendingInstructions(ctx, b.ID, 0)) {
			if in.Operation == muster.OpStart {
				t.Errorf("b was posted START of a job it no longer runs")
			}
		}
	})
}

// A retried START keeps its env and first step.
func TestRetriedStartKeepsItsOverrides(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		j := job("deploy", "web1")
		j.Steps = append(j.Steps, muster.Step{Name: "verify", Shell: "true"})
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Step: "verify", Env: map[string]string{"MODE": "dry"}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: res.Runs[0].Seq, Status: muster.InstructionFailed, Error: "boom"}}); err != nil {
			t.Fatal(err)
		}
		in, err := db.RetryInstruction(ctx, "web1", res.Runs[0].Seq, admin)
		if err != nil {
			t.Fatal(err)
		}
		pending := must(db.PendingInstructions(ctx, web1.ID, in.Seq-1))
		if len(pending) != 1 {
			t.Fatalf("%d instructions pending after the retry, want the retried START", len(pending))
		}
		var sp agentproto.StartPayload
		if err := json.Unmarshal(pending[0].Payload, &sp); err != nil {
			t.Fatal(err)
		}
		if sp.Step != "verify" || sp.Env["MODE"] != "dry" || sp.RunID == res.Runs[0].RunID {
			t.Errorf("retried START %+v: want step verify, env MODE=dry and a new run id", sp)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A run reported later than the target's clock allows (the master's clock
// plus the target's measured skew and FutureTolerance) is refused, naming
// the field; within that, the job's last outcome on the target is the run
// the master recorded last, whatever times the target reported.
func TestFutureRunTimesAreBounded(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		upload := func(id catalog.TargetIdentity, runID string, status muster.RunStatus, started time.Time) catalog.RunResult {
			t.Helper()
			finished := started.Add(time.Second)
			res, err := db.UpsertRuns(ctx, id, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
				Job: "backup", RunID: runID, Status: status, StartedAt: started, FinishedAt: &finished}}})
			if err != nil {
				t.Fatal(err)
			}
			return res[0]
		}
		if res := upload(web1, "in-2030", muster.RunFailed, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); res.OK ||
			!strings.Contains(res.Error, "started_at") || !strings.Contains(res.Error, "later than the master's clock allows") {
			t.Fatalf("a run started in 2030: %+v, want refused naming started_at", res)
		}
		// A target whose clock is an hour ahead, as measured, may report
		// times an hour ahead.
		ahead := web1
		ahead.ClockSkewMS = time.Hour.Milliseconds()
		if res := upload(ahead, "ahead", muster.RunFailed, clk.Now().Add(time.Hour)); !res.OK {
			t.Fatalf("a run of a target an hour ahead, as measured: %+v", res)
		}
		// Within the tolerance, a forged future start does not pin the last
		// outcome: the run recorded after it is the last.
		if res := upload(web1, "forged", muster.RunFailed, clk.Now().Add(catalog.FutureTolerance-time.Minute)); !res.OK {
			t.Fatalf("a run within the tolerance: %+v", res)
		}
		if res := upload(web1, "real", muster.RunSucceeded, clk.Now()); !res.OK {
			t.Fatalf("a run now: %+v", res)
		}
		j, err := db.FindJob(ctx, "backup")
		if err != nil {
			t.Fatal(err)
		}
		if len(j.Outcomes) != 1 || j.Outcomes[0].LastRunID != "real" || j.Outcomes[0].LastStatus != muster.RunSucceeded {
			t.Fatalf("last outcome %+v, want the run recorded last", j.Outcomes)
		}
	})
}

// A transaction whose function panics (a bug, which net/http recovers
// from) is rolled back: the store's write connection is free for the next
// write, and what the panicking one wrote is gone.
func TestPanicInATransactionRollsBack(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		db, clk, _ := MustOpen(t, eng)
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the panic did not reach the caller")
				}
			}()
			db.Store().Update(context.Background(), func(tx catalog.Tx) error {
				if err := tx.InsertGroup(context.Background(), "half-made", clk.Now()); err != nil {
					t.Error(err)
				}
				panic("a bug in a transaction")
			})
		}()
		// A write after it: a connection still in the panicking
		// transaction would hold it up until the timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.CreateGroup(ctx, "after", admin); err != nil {
			t.Fatalf("a write after the panic: %v", err)
		}
		groups, err := db.FindGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range groups {
			names = append(names, g.Name)
		}
		if !slices.Equal(names, []string{"after"}) {
			t.Errorf("groups %v, want [after]: the panicking transaction's group rolled back", names)
		}
	})
}

// A START held back by max_parallel_targets for a target as it left (a
// start queued it on one master while the target's departure, on another,
// cleared what it had held back) is dropped when a slot frees, its run
// recorded skipped, instead of being posted to a target that will never
// collect it. The run that freed the slot is recorded.
func TestQueuedStartOfATargetThatLeftIsDropped(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		gone := enlist(t, db, "gone")
		here := enlist(t, db, "here")
		j := job("deploy", "gone", "here")
		j.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		running := mustStart(t, db, catalog.StartRequest{Job: "deploy", Targets: []string{"here"}})
		held := mustStart(t, db, catalog.StartRequest{Job: "deploy", Targets: []string{"gone"}})
		if running.Runs[0].Queued || !held.Runs[0].Queued {
			t.Fatalf("starts: %+v, %+v; want here's posted, gone's held back", running.Runs, held.Runs)
		}
		// gone leaves; the START held back for it is queued after.
		var queued []catalog.QueuedStartRow
		err := db.Store().Update(ctx, func(tx catalog.Tx) error {
			var err error
			queued, err = tx.DeleteQueuedStarts(ctx, 0, []int64{gone.ID})
			return err
		})
		if err != nil || len(queued) != 1 {
			t.Fatalf("gone's START held back: %v, %v", queued, err)
		}
		if err := db.DeleteTarget(ctx, "gone", true, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.Store().Update(ctx, func(tx catalog.Tx) error { return tx.InsertQueuedStart(ctx, queued[0]) }); err != nil {
			t.Fatal(err)
		}

		at := clk.Now()
		res, err := db.UpsertRuns(ctx, here, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy", RunID: running.Runs[0].RunID,
			Status: muster.RunSucceeded, Trigger: muster.TriggerOperator, StartedAt: at, FinishedAt: &at}}})
		if err != nil || !res[0].OK {
			t.Fatalf("here's run: %+v, %v", res, err)
		}
		if n := len(must(db.Store().StartsWithoutRun(ctx, catalog.StartQuery{TargetIDs: []int64{gone.ID},
			Statuses: []muster.InstructionStatus{muster.InstructionPending}}))); n != 0 {
			t.Errorf("%d START(s) posted to gone, which left; want none", n)
		}
		if r := findRun(t, db, "gone", held.Runs[0].RunID); r.Status != muster.RunSkipped {
			t.Errorf("gone's START held back: run %s %q, want %s", r.Status, r.Message, muster.RunSkipped)
		}
		if jobs := must(db.Store().JobsWithQueuedStarts(ctx)); len(jobs) != 0 {
			t.Errorf("jobs with STARTs held back: %v, want none", jobs)
		}
	})
}

// A start's variables are bounded together, and one too large is refused
// naming its env, with nothing posted: the request's body bound would
// otherwise be the first to refuse it, naming neither.
func TestStartEnvIsBoundedTogether(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		before := len(must(db.PendingInstructions(ctx, web1.ID, 0)))
		env := map[string]string{}
		for i := range 3 {
			env[fmt.Sprintf("PART%d", i)] = strings.Repeat("x", muster.MaxStartEnvSize/3)
		}
		_, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Env: env}, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "env: the variables come to") {
			t.Fatalf("a start of %d variables over %d bytes: %v, want %s naming env", len(env), muster.MaxStartEnvSize, err, muster.EINVALID)
		}
		if after := len(must(db.PendingInstructions(ctx, web1.ID, 0))); after != before {
			t.Errorf("%d instructions pending after the refusal, want %d", after, before)
		}
		delete(env, "PART2")
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Env: env}, admin); err != nil {
			t.Errorf("a start within the bound: %v", err)
		}
		// Counted as a request carries it: each '<' is six bytes of JSON.
		escaped := map[string]string{"HTML": strings.Repeat("<", muster.MaxStartEnvSize/3)}
		_, err = db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Env: escaped}, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "env: the variables come to") {
			t.Fatalf("a start of %d '<' (%d bytes as sent): %v, want %s naming env", muster.MaxStartEnvSize/3, 2*muster.MaxStartEnvSize, err, muster.EINVALID)
		}
	})
}
