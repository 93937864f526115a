package catalog_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// threeWithJobs enlists web1, web2 and web3 and applies three jobs: a on
// web1 and web2, b and c on web1, so that web1 has three INSERTs pending,
// web2 one and web3 none.
func threeWithJobs(t *testing.T, db *catalog.Catalog) (web1, web2, web3 catalog.TargetIdentity) {
	t.Helper()
	web1, web2, web3 = enlist(t, db, "web1"), enlist(t, db, "web2"), enlist(t, db, "web3")
	jobs := []muster.Job{job("a", "web1", "web2"), job("b", "web1"), job("c", "web1")}
	if _, err := db.ApplyJobs(context.Background(), jobs, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	return web1, web2, web3
}

// The pending instructions of several targets, read in one statement, are
// what each target's own read finds after its own cursor, at most the
// limit a target; a target with none has no entry.
func TestPendingInstructionsOf(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1, web2, web3 := threeWithJobs(t, db)
		after := map[int64]int64{web1.ID: 1, web2.ID: 0, web3.ID: 0}
		got, err := db.PendingInstructionsOf(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, id := range []int64{web1.ID, web2.ID, web3.ID} {
			want, err := db.PendingInstructions(ctx, id, after[id])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ops(got[id]), ops(want)) {
				t.Errorf("target %d: read together %v, alone %v", id, ops(got[id]), ops(want))
			}
			for i := range min(len(want), len(got[id])) {
				if g, w := got[id][i], want[i]; g.Seq != w.Seq || g.TargetID != id || string(g.Payload) != string(w.Payload) {
					t.Errorf("target %d, instruction %d: read together seq %d of target %d, alone seq %d of %d", id, i, g.Seq, g.TargetID, w.Seq, id)
				}
			}
			checked++
		}
		if checked != 3 {
			t.Fatalf("checked %d targets, want 3", checked)
		}
		if want := []string{"INSERT b", "INSERT c"}; !slices.Equal(ops(got[web1.ID]), want) {
			t.Errorf("web1 after 1: %v, want %v", ops(got[web1.ID]), want)
		}
		if _, ok := got[web3.ID]; ok {
			t.Errorf("web3, with nothing pending, has an entry: %v", ops(got[web3.ID]))
		}

		t.Run("at most the limit a target", func(t *testing.T) {
			got, err := db.Store().PendingInstructionsOf(ctx, map[int64]int64{web1.ID: 0, web2.ID: 0}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if g1, g2 := ops(got[web1.ID]), ops(got[web2.ID]); !slices.Equal(g1, []string{"INSERT a"}) || !slices.Equal(g2, []string{"INSERT a"}) {
				t.Errorf("with a limit of 1: web1 %v, web2 %v; want the first of each", g1, g2)
			}
		})
		t.Run("one target", func(t *testing.T) {
			got, err := db.PendingInstructionsOf(ctx, map[int64]int64{web1.ID: 1})
			if err != nil || len(got) != 1 || !slices.Equal(ops(got[web1.ID]), []string{"INSERT b", "INSERT c"}) {
				t.Errorf("web1 alone after 1: %v, %v; want only web1's INSERT b, INSERT c", got, err)
			}
			got, err = db.PendingInstructionsOf(ctx, map[int64]int64{web3.ID: 0})
			if _, ok := got[web3.ID]; err != nil || ok {
				t.Errorf("web3 alone, with nothing pending: %v, %v; want no entry", got, err)
			}
		})
		t.Run("no targets", func(t *testing.T) {
			got, err := db.PendingInstructionsOf(ctx, nil)
			if err != nil || len(got) != 0 {
				t.Errorf("no targets: %v, %v; want nothing", got, err)
			}
		})
	})
}

// Each commit tells what it posted to each target: what the target's read
// after its cursor before the commit finds, and nothing more.
func TestCommitCarriesWhatItPosted(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, commits := MustOpen(t, eng)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		changed := job("a", "web1", "web2")
		changed.Steps[0].Shell = "echo changed"
		cursors := map[int64]int64{web1.ID: 0, web2.ID: 0}
		for _, c := range []struct {
			name   string
			change func() error
		}{
			{"apply", func() error {
				_, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2")}, catalog.ApplyOptions{}, admin)
				return err
			}},
			{"apply superseding the first", func() error {
				_, err := db.ApplyJobs(ctx, []muster.Job{changed}, catalog.ApplyOptions{}, admin)
				return err
			}},
			{"start", func() error {
				_, err := db.StartJob(ctx, catalog.StartRequest{Job: "a", IdempotencyKey: "k1"}, admin)
				return err
			}},
		} {
			before := len(*commits)
			if err := c.change(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if n := len(*commits) - before; n != 1 {
				t.Fatalf("%s: %d commits, want 1", c.name, n)
			}
			posted := (*commits)[before].Posted
			if len(posted) != 2 {
				t.Fatalf("%s: posted to %d targets, want 2", c.name, len(posted))
			}
			for _, id := range []int64{web1.ID, web2.ID} {
				want, err := db.PendingInstructions(ctx, id, cursors[id])
				if err != nil {
					t.Fatal(err)
				}
				got := posted[id]
				if !slices.Equal(ops(got), ops(want)) || len(got) != 1 {
					t.Fatalf("%s, target %d: posted %v, pending %v; want the one instruction", c.name, id, ops(got), ops(want))
				}
				if g, w := got[0], want[0]; g.Seq != w.Seq || g.TargetID != id || g.Status != w.Status || string(g.Payload) != string(w.Payload) {
					t.Errorf("%s, target %d: posted seq %d of target %d (%s) %s, pending seq %d (%s) %s",
						c.name, id, g.Seq, g.TargetID, g.Status, g.Payload, w.Seq, w.Status, w.Payload)
				}
				cursors[id] = got[0].Seq
			}
		}
	})
}

// A poll's one read finds what the target's state and its own read of
// pending instructions find: the last sequence number, whether it is
// paused, and what is pending after its cursor, at most the limit; a
// target with nothing pending still has its state, and a target that does
// not exist is not found.
func TestPollPending(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1, web2, web3 := threeWithJobs(t, db)
		if _, err := db.SetPaused(ctx, []string{"web2"}, "", true, admin); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name       string
			id, after  int64
			wantPaused bool
			wantOps    []string
		}{
			{"web1 after 1", web1.ID, 1, false, []string{"INSERT b", "INSERT c"}},
			{"web1 after all", web1.ID, 3, false, []string{}},
			{"web2, paused", web2.ID, 0, true, []string{"INSERT a"}},
			{"web3, nothing pending", web3.ID, 0, false, []string{}},
		} {
			t.Run(c.name, func(t *testing.T) {
				last, paused, ins, err := db.PollPending(ctx, c.id, c.after)
				if err != nil {
					t.Fatal(err)
				}
				wantLast, _, err := db.PollState(ctx, c.id)
				if err != nil {
					t.Fatal(err)
				}
				want, err := db.PendingInstructions(ctx, c.id, c.after)
				if err != nil {
					t.Fatal(err)
				}
				if last != wantLast || paused != c.wantPaused {
					t.Errorf("last %d, paused %v; want %d, %v", last, paused, wantLast, c.wantPaused)
				}
				if !slices.Equal(ops(ins), c.wantOps) || !slices.Equal(ops(ins), ops(want)) {
					t.Errorf("pending %v; want %v, as read alone (%v)", ops(ins), c.wantOps, ops(want))
				}
				for i := range min(len(want), len(ins)) {
					if g, w := ins[i], want[i]; g.Seq != w.Seq || g.TargetID != c.id || g.Job != w.Job || string(g.Payload) != string(w.Payload) {
						t.Errorf("instruction %d: seq %d of target %d, job %q; alone seq %d, job %q", i, g.Seq, g.TargetID, g.Job, w.Seq, w.Job)
					}
				}
			})
		}
		t.Run("at most the limit", func(t *testing.T) {
			_, _, ins, err := db.Store().PollPending(ctx, web1.ID, 0, 2)
			if want := []string{"INSERT a", "INSERT b"}; err != nil || !slices.Equal(ops(ins), want) {
				t.Errorf("web1 with a limit of 2: %v, %v; want %v", ops(ins), err, want)
			}
		})
		t.Run("no such target", func(t *testing.T) {
			if _, _, _, err := db.PollPending(ctx, web3.ID+100, 0); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("a target that does not exist: %v; want sql.ErrNoRows", err)
			}
		})
	})
}
