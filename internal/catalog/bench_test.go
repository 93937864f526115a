package catalog_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// The hot paths of the master's catalog, for `go test -bench`, on each
// engine. The figures of a whole fleet are `muster bench`'s; see
// docs/benchmarks.md.

// eachEngine runs a benchmark on SQLite and on PostgreSQL.
func eachEngine(b *testing.B, fn func(b *testing.B, e catalogtest.Engine)) {
	for _, e := range []catalogtest.Engine{catalogtest.SQLite, catalogtest.Postgres} {
		b.Run(e.Name, func(b *testing.B) { fn(b, e) })
	}
}

// fleetJob enlists n targets and applies a job that runs on all of them.
func fleetJob(b *testing.B, db *catalog.Catalog, n int) []catalog.TargetIdentity {
	var names []string
	var ids []catalog.TargetIdentity
	for i := range n {
		name := fmt.Sprintf("t%05d", i+1)
		ids = append(ids, enlist(b, db, name))
		names = append(names, name)
	}
	if _, err := db.ApplyJobs(context.Background(), []muster.Job{job("bench", names...)}, catalog.ApplyOptions{}, admin); err != nil {
		b.Fatal(err)
	}
	return ids
}

// oneTargetJob opens a catalog with one target and a job on it.
func oneTargetJob(b *testing.B, e catalogtest.Engine) (*catalog.Catalog, catalog.TargetIdentity) {
	db, _, _ := MustOpen(b, e)
	return db, fleetJob(b, db, 1)[0]
}

// Posting: a START to one target, and fanned out to many, in one
// transaction with its idempotency key.
func BenchmarkStartJob(b *testing.B) {
	eachEngine(b, func(b *testing.B, e catalogtest.Engine) { benchStartJob(b, e) })
}

func benchStartJob(b *testing.B, e catalogtest.Engine) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			db, _, _ := MustOpen(b, e)
			fleetJob(b, db, n)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench", IdempotencyKey: fmt.Sprint(i)}, admin); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/instruction")
		})
	}
}

// Posting on a catalog with history: a START fanned out to targets that
// each already hold downloaded instructions, as a fleet that has run for a
// while does (the master keeps up to 1,000 a target: --downloaded-max-rows).
// A fresh catalog, as BenchmarkStartJob has, hides what a START costs in
// the indexes of the download lists once they are large.
func BenchmarkStartJobWithHistory(b *testing.B) {
	eachEngine(b, func(b *testing.B, e catalogtest.Engine) {
		const targets, history = 1000, 100
		b.Run(fmt.Sprintf("targets=%d/history=%d", targets, history), func(b *testing.B) {
			db, _, _ := MustOpen(b, e)
			ids := fleetJob(b, db, targets)
			ctx := context.Background()
			start := func(key string) {
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench", IdempotencyKey: key}, admin); err != nil {
					b.Fatal(err)
				}
				for _, t := range ids {
					ins, err := db.PendingInstructions(ctx, t.ID, 0)
					if err != nil || len(ins) == 0 {
						b.Fatal(t.Name, len(ins), err)
					}
					acks := make([]catalog.AckRow, len(ins))
					for i, in := range ins {
						acks[i] = catalog.AckRow{Seq: in.Seq, Status: muster.InstructionDownloaded}
					}
					if _, err := db.Ack(ctx, t.ID, acks); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range history {
				start(fmt.Sprint("history-", i))
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				b.StopTimer()
				// Out of the timing: the previous START acknowledged, with one
				// more posted and acknowledged.
				start(fmt.Sprint("acked-", i))
				b.StartTimer()
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench", IdempotencyKey: fmt.Sprint(i)}, admin); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*targets), "ns/instruction")
		})
	})
}

// Delivering: what a poll reads when a START is pending.
func BenchmarkPendingInstructions(b *testing.B) {
	eachEngine(b, benchPendingInstructions)
}

func benchPendingInstructions(b *testing.B, e catalogtest.Engine) {
	db, t := oneTargetJob(b, e)
	ctx := context.Background()
	if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench"}, admin); err != nil {
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

// Polling again after a fan-out: polls of many targets at once, each
// finding its START pending, read each alone (Store.PollPending) and
// through the catalog, which reads the polls that come while one is read
// together.
func BenchmarkPolls(b *testing.B) {
	eachEngine(b, benchPolls)
}

func benchPolls(b *testing.B, e catalogtest.Engine) {
	db, _, _ := MustOpen(b, e)
	targets := fleetJob(b, db, 1000)
	ctx := context.Background()
	if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench"}, admin); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		poll func(id int64) (int, error)
	}{
		{"alone", func(id int64) (int, error) {
			_, _, ins, err := db.Store().PollPending(ctx, id, 1, catalog.MaxPollBatch)
			return len(ins), err
		}},
		{"together", func(id int64) (int, error) {
			_, _, ins, err := db.PollPending(ctx, id, 1)
			return len(ins), err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t := targets[next.Add(1)%int64(len(targets))]
					if n, err := c.poll(t.ID); err != nil || n != 1 {
						b.Fatal(n, err)
					}
				}
			})
		})
	}
}

// Recording history: one upload of a batch of finished runs, as a target
// sends its spool.
func BenchmarkUpsertRuns(b *testing.B) {
	eachEngine(b, benchUpsertRuns)
}

func benchUpsertRuns(b *testing.B, e catalogtest.Engine) {
	for _, n := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db, clk, _ := MustOpen(b, e)
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
	eachEngine(b, benchAuthenticateTarget)
}

func benchAuthenticateTarget(b *testing.B, e catalogtest.Engine) {
	db, _ := oneTargetJob(b, e)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.AuthenticateTarget(ctx, "serial-t00001"); err != nil {
			b.Fatal(err)
		}
	}
}

// Acknowledging: the ack a target sends for the instructions it applied:
// one START's, as in a fan-out, and 50 at once, as a job file's INSERTs
// are (each here a START, posted outside the timed part).
func BenchmarkAck(b *testing.B) {
	eachEngine(b, benchAck)
}

func benchAck(b *testing.B, e catalogtest.Engine) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db, t := oneTargetJob(b, e)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				acks := make([]catalog.AckRow, n)
				for k := range acks {
					i++
					res, err := db.StartJob(ctx, catalog.StartRequest{Job: "bench", IdempotencyKey: fmt.Sprint(i)}, admin)
					if err != nil {
						b.Fatal(err)
					}
					acks[k] = catalog.AckRow{Seq: res.Runs[0].Seq, Status: muster.InstructionDownloaded}
				}
				b.StartTimer()
				acked, err := db.Ack(ctx, t.ID, acks)
				if err != nil || len(acked) != n {
					b.Fatal(len(acked), err)
				}
			}
		})
	}
}
