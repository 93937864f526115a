package catalog_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A STOP posted by hand naming one target twice, in two spellings, is
// posted to it once, as every other posted operation is.
func TestPostStopNamingATargetTwicePostsOnce(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		a := enlist(t, db, "a")
		enlist(t, db, "b")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "a", "b")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		for _, op := range []muster.Operation{muster.OpUpdate, muster.OpStop} {
			posted, err := db.Post(ctx, catalog.PostRequest{Operation: op, Job: "deploy", Targets: []string{"a", "A"}}, admin)
			if err != nil || len(posted) != 1 || posted[0].Target != "a" {
				t.Errorf("%s posted %+v, %v; want one instruction, to a", op, posted, err)
			}
		}
		var stops int
		for _, in := range must(db.PendingInstructions(ctx, a.ID, 0)) {
			if in.Operation == muster.OpStop {
				stops++
			}
		}
		if stops != 1 {
			t.Errorf("a has %d STOPs pending, want 1", stops)
		}
	})
}
