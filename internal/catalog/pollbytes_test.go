package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A download list whose payloads pass the bound on one poll reply goes
// out over several polls: each reply stops before the instruction that
// would take it past the bound, but always carries one, so a job larger
// than the bound alone still goes; the next poll, after the cursor the
// target acknowledged, carries the rest. Every instruction is delivered
// once, in sequence order, whichever read answers the poll.
func TestPollRepliesStopAtTheByteBound(t *testing.T) {
	const bound = 4096
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		db.SetMaxPollBytes(bound)
		web1 := enlist(t, db, "web1")
		var jobs []muster.Job
		for _, name := range []string{"a", "b", "big", "c", "d", "e"} {
			j := job(name, "web1")
			size := 1500
			if name == "big" {
				size = 2 * bound
			}
			j.Steps[0].Shell = "echo " + strings.Repeat("x", size)
			jobs = append(jobs, j)
		}
		if _, err := db.ApplyJobs(ctx, jobs, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		want := []string{"INSERT a", "INSERT b", "INSERT big", "INSERT c", "INSERT d", "INSERT e"}

		reads := map[string]func(after int64) ([]catalog.InstructionRow, error){
			"PollPending": func(after int64) ([]catalog.InstructionRow, error) {
				_, _, ins, err := db.PollPending(ctx, web1.ID, after)
				return ins, err
			},
			"PendingInstructions": func(after int64) ([]catalog.InstructionRow, error) {
				return db.PendingInstructions(ctx, web1.ID, after)
			},
			"PendingInstructionsOf": func(after int64) ([]catalog.InstructionRow, error) {
				got, err := db.PendingInstructionsOf(ctx, map[int64]int64{web1.ID: after, web1.ID + 100: 0})
				return got[web1.ID], err
			},
		}
		for _, name := range []string{"PollPending", "PendingInstructions", "PendingInstructionsOf"} {
			t.Run(name, func(t *testing.T) {
				var got []string
				var after int64
				polls := 0
				for {
					ins, err := reads[name](after)
					if err != nil {
						t.Fatal(err)
					}
					if len(ins) == 0 {
						break
					}
					if polls++; polls > len(want) {
						t.Fatalf("more than %d replies for %d instructions", len(want), len(want))
					}
					total := 0
					for _, in := range ins {
						total += len(in.Payload)
					}
					if len(ins) > 1 && total > bound {
						t.Errorf("reply %d: %d instructions with %d bytes of payload; want at most %d bytes unless it has one", polls, len(ins), total, bound)
					}
					got = append(got, ops(ins)...)
					after = ins[len(ins)-1].Seq
				}
				if !slices.Equal(got, want) {
					t.Errorf("delivered %v; want %v, each once", got, want)
				}
				if polls != 4 {
					t.Errorf("%d replies; want 4: a and b, big alone, c and d, e", polls)
				}
			})
		}

		// The target acknowledges each reply as it applies it; what is
		// left is what the next poll carries.
		var after int64
		for range 4 {
			_, _, ins, err := db.PollPending(ctx, web1.ID, after)
			if err != nil || len(ins) == 0 {
				t.Fatalf("after %d: %v pending, err %v; want more", after, ops(ins), err)
			}
			acks := make([]catalog.AckRow, len(ins))
			for i, in := range ins {
				acks[i] = catalog.AckRow{Seq: in.Seq, Status: muster.InstructionDownloaded}
			}
			if _, err := db.Ack(ctx, web1.ID, acks); err != nil {
				t.Fatal(err)
			}
			after = ins[len(ins)-1].Seq
		}
		if _, _, ins, err := db.PollPending(ctx, web1.ID, after); err != nil || len(ins) != 0 {
			t.Errorf("after four acknowledged replies: %v pending, err %v; want none", ops(ins), err)
		}
	})
}
