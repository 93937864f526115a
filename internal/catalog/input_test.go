package catalog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A START posted by hand is answered as any posted instruction is: with the
// time it was posted.
func TestPostedStartSaysWhenItWasPosted(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		posted, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpStart, Job: "backup"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(posted) != 1 || !posted[0].PostedAt.Equal(clk.Now()) || posted[0].Seq == 0 {
			t.Errorf("posted %+v; want one START posted at %s", posted, clk.Now())
		}
	})
}

// A target named twice in one request to add to or remove from a group is
// refused as such, naming the field, and the group is left as it was: it
// is not said to be a member already, or not a member.
func TestGroupMembersNamedTwice(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "web", []string{"web2"}, false, admin); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			targets []string
			remove  bool
		}{
			{[]string{"web1", "web1"}, false},
			{[]string{"web1", "WEB1 "}, false},
			{[]string{"web2", "web2"}, true},
		} {
			_, err := db.SetGroupMembers(ctx, "web", tc.targets, tc.remove, admin)
			if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "targets[1]:") {
				t.Errorf("%v (remove %v): %v; want invalid, naming targets[1]", tc.targets, tc.remove, err)
			}
		}
		groups, err := db.FindGroups(ctx)
		if err != nil || len(groups) != 1 || strings.Join(groups[0].Targets, ",") != "web2" {
			t.Errorf("groups after the refusals: %+v, %v; want web with web2", groups, err)
		}
	})
}
