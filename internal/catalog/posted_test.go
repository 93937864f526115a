package catalog_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A change returns each instruction it posted with its sequence number, as
// the download list holds it; a dry run returns none, having posted none.
func TestJobChangeNamesWhatItPosted(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		db, _, _ := MustOpen(t, eng)
		ctx := context.Background()
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		dry, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2")}, catalog.ApplyOptions{DryRun: true}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(dry.Changes[0].Posted); n != 0 {
			t.Errorf("a dry run returned %d posted instructions, want none", n)
		}
		res, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2")}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		del, err := db.DeleteJob(ctx, "a", admin)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, c := range []muster.JobChange{res.Changes[0], del} {
			if len(c.Posted) != 2 || len(c.Instructions) != 2 {
				t.Fatalf("change %+v: want two instructions posted", c)
			}
			for _, p := range c.Posted {
				list, err := db.FindInstructions(ctx, catalog.InstructionFilter{Target: p.Target, Seq: p.Seq})
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 || list[0].Operation != p.Operation || list[0].Job != "a" {
					t.Errorf("posted %+v; the download list holds %+v", p, list)
				}
				checked++
			}
		}
		if checked != 4 {
			t.Errorf("checked %d instructions, want 4", checked)
		}
	})
}
