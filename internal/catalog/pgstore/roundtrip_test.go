package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// roundTrips counts what the pool's connections send and wait for: each
// statement sent alone, each batch, each COPY.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (r *roundTrips) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// count returns the round trips fn makes.
func (r *roundTrips) count(fn func()) int64 {
	before := r.n.Load()
	fn()
	return r.n.Load() - before
}

// The writes on the paths the budgets measure take a bounded number of
// round trips to PostgreSQL, whatever their size: a START (its BEGIN and the writes whose results it does not wait for go with the
// statements it does wait for, and with the COMMIT), the acknowledgement
// a target sends once it applied it, and an upload of finished runs with
// their output, however many.
func TestWritesRoundTrips(t *testing.T) {
	rt := &roundTrips{}
	s, err := pgstore.Open(context.Background(), catalogtest.PostgresURL(t), pgstore.Options{Tracer: rt})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	db, err := catalog.Open(ctx, s, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	var web1 catalog.TargetIdentity
	for _, name := range []string{"web1", "web2"} {
		if _, err := db.CreateEnlistToken(ctx, "hash-"+name, name, 15*time.Minute, admin); err != nil {
			t.Fatal(err)
		}
		id, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
			func(string) (catalog.IssuedCert, error) {
				return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if name == "web1" {
			web1 = id
		}
	}
	job, both := muster.NewJob(), muster.NewJob()
	job.Name, job.Targets, job.Steps = "backup", []string{"web1"}, []muster.Step{{Name: "main", Shell: "true"}}
	both.Name, both.Targets, both.Steps = "both", []string{"web1", "web2"}, job.Steps
	if _, err := db.ApplyJobs(ctx, []muster.Job{job, both}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}

	// A START to one target (named, or the job's only one) with an
	// idempotency key: BEGIN with one statement that claims its key, reads
	// the job with its targets and takes the target's sequence number;
	// then the instruction, the answer kept for the key, the audit entry
	// and the notification with the COMMIT. A START to several targets
	// takes their sequence numbers in one more.
	for _, c := range []struct {
		job     string
		targets []string
		trips   int64
	}{
		{"backup", []string{"web1"}, 2},
		{"backup", nil, 2},
		{"both", []string{"web2"}, 2},
		{"both", nil, 3},
	} {
		for i := range 3 { // the first prepares its statements
			n := rt.count(func() {
				req := catalog.StartRequest{Job: c.job, Targets: c.targets, IdempotencyKey: fmt.Sprint("key-", c.job, c.targets, i)}
				if _, err := db.StartJob(ctx, req, admin); err != nil {
					t.Fatal(err)
				}
			})
			if i > 0 && n != c.trips {
				t.Errorf("START %d of %s to targets %q: %d round trips, want %d", i, c.job, c.targets, n, c.trips)
			}
		}
	}

	// An acknowledgement of one instruction other than a DEFECT: BEGIN
	// with its update, and the COMMIT.
	pending, err := db.PendingInstructions(ctx, web1.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) < 3 {
		t.Fatalf("web1 has %d instructions pending, want 3 or more to acknowledge", len(pending))
	}
	for i, in := range pending[:3] { // the first prepares its statement
		var acked []catalog.Acked
		n := rt.count(func() {
			if acked, err = db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: in.Seq, Status: muster.InstructionDownloaded}}); err != nil {
				t.Fatal(err)
			}
		})
		if len(acked) != 1 {
			t.Errorf("ack of %s %d: %d instructions acknowledged, want 1", in.Operation, in.Seq, len(acked))
		}
		if i > 0 && n != 2 {
			t.Errorf("ack of %s %d: %d round trips, want 2", in.Operation, in.Seq, n)
		}
	}

	// An upload: BEGIN with whether the job was sent; the runs; the
	// output and the last success with the read of queued STARTs; the
	// last outcome and the notification with the COMMIT.
	const uploadTrips = 4
	next := 0
	for i, size := range []int{1, 1, 500} {
		batch := make([]catalog.RunUpload, size)
		at := time.Now().Add(-time.Minute)
		for k := range batch {
			next++
			done := at.Add(time.Second)
			batch[k] = catalog.RunUpload{Revision: 1, Run: muster.Run{Job: "backup", Target: "web1", RunID: fmt.Sprintf("run-%d", next),
				Status: muster.RunSucceeded, Trigger: "schedule:nightly", StartedAt: at, FinishedAt: &done,
				Steps: []muster.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: at}}},
				Output: []catalog.OutputChunk{{Data: "done\n"}}}
		}
		var res []catalog.RunResult
		n := rt.count(func() {
			if res, err = db.UpsertRuns(ctx, web1, batch); err != nil {
				t.Fatal(err)
			}
		})
		stored := 0
		for _, r := range res {
			if r.OK && r.Ended {
				stored++
			}
		}
		if stored != size {
			t.Errorf("upload %d: %d of %d runs stored", i, stored, size)
		}
		if i > 0 && n != uploadTrips {
			t.Errorf("upload %d of %d runs: %d round trips, want %d", i, size, n, uploadTrips)
		}
	}
}

// A held write that fails fails its transaction, whether the statement
// that sends it is a read or the COMMIT: the error is PostgreSQL's, what
// the transaction wrote before is rolled back, and the connection goes
// back to the pool fit for the next transaction.
func TestHeldWriteFailureFailsTheTransaction(t *testing.T) {
	s := catalogtest.OpenPostgres(t, catalogtest.PostgresURL(t))
	ctx := context.Background()
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	row := catalog.InstructionRow{TargetID: 424242, Seq: 1, Operation: muster.OpStart, Job: "j", Payload: []byte(`{}`), PostedAt: at}
	for _, c := range []struct {
		name string
		then func(tx catalog.Tx) error // after the failing held write
	}{
		{"sent with a read", func(tx catalog.Tx) error {
			_, err := tx.FindGroups(ctx)
			return err
		}},
		{"sent with the commit", func(catalog.Tx) error { return nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.Update(ctx, func(tx catalog.Tx) error {
				if err := tx.InsertGroup(ctx, "half-made", at); err != nil {
					return err
				}
				// The same sequence number twice: the primary key refuses
				// the instructions.
				if err := tx.InsertInstructions(ctx, []catalog.InstructionRow{row, row}); err != nil {
					return err
				}
				return c.then(tx)
			})
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
				t.Fatalf("error %v, want PostgreSQL's unique violation (23505)", err)
			}
			if err := s.Update(ctx, func(tx catalog.Tx) error { return tx.InsertGroup(ctx, "after-"+c.name, at) }); err != nil {
				t.Fatalf("the next transaction: %v", err)
			}
			groups, err := s.FindGroups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range groups {
				if g.Name == "half-made" {
					t.Errorf("the failed transaction's group was kept")
				}
			}
			if len(groups) == 0 || groups[len(groups)-1].Name != "after-"+c.name {
				t.Errorf("groups %v, want the next transaction's", groups)
			}
		})
	}
}
