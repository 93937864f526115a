package catalog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// The hot paths of the master's catalog, for `go test -bench`. The figures
// of a whole fleet are `muster bench`'s; see docs/benchmarks.md.

// fleetJob enlists n targets and applies a job that runs on all of them.
func fleetJob(b *testing.B, db *catalog.DB, n int) []catalog.TargetIdentity {
	var names []string
	var ids []catalog.TargetIdentity
	for i := range n {
		name := fmt.Sprintf("t%05d", i+1)
		ids = append(ids, enlist(b, db, name))
		names = append(names, name)
	}
	if _, err := db.ApplyJobs(context.Background(), catalog.ApplyRequest{Jobs: []muster.Job{job("bench", names...)}}); err != nil {
		b.Fatal(err)
	}
	return ids
}

// Posting: a START to one target, and fanned out to many, in one
// transaction with its idempotency key.
func BenchmarkStartJob(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			db, _, _ := MustOpen(b)
			fleetJob(b, db, n)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench", IdempotencyKey: fmt.Sprint(i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/instruction")
		})
	}
}

// Delivering: what a poll reads when a START is pending.
func BenchmarkPendingInstructions(b *testing.B) {
	db, _, _ := MustOpen(b)
	t := fleetJob(b, db, 1)[0]
	ctx := context.Background()
	if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ins, err := db.PendingInstructions(ctx, t.ID, 0)
		if err != nil || len(ins) == 0 {
			b.Fatal(len(ins), err)
		}
	}
}

// Recording history: one upload of a batch of finished runs, as a target
// sends its spool.
func BenchmarkUpsertRuns(b *testing.B) {
	for _, n := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db, clk, _ := MustOpen(b)
			t := fleetJob(b, db, 1)[0]
			ctx := context.Background()
			next := 0
			b.ReportAllocs()
			for b.Loop() {
				batch := make([]catalog.RunUpload, n)
				for i := range batch {
					next++
					at := clk.Now()
					code := 0
					batch[i] = catalog.RunUpload{Revision: 1, Run: muster.Run{Job: "bench", Target: t.Name,
						RunID: fmt.Sprintf("run-%09d", next), Status: muster.RunSucceeded, Trigger: "schedule:nightly",
						StartedAt: at, FinishedAt: &at, Steps: []muster.StepAttempt{{Name: "hello", Attempt: 1,
							Status: muster.AttemptSucceeded, ExitCode: &code, Output: "hello\n", StartedAt: at}}}}
				}
				res, err := db.UpsertRuns(ctx, t, batch)
				if err != nil || !res[n-1].OK {
					b.Fatal(res[n-1], err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// Authenticating: the certificate lookup every agent request makes.
func BenchmarkAuthenticateTarget(b *testing.B) {
	db, _, _ := MustOpen(b)
	fleetJob(b, db, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.AuthenticateTarget(ctx, "serial-t00001"); err != nil {
			b.Fatal(err)
		}
	}
}
