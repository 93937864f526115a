package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A job file naming targets that left the fleet still applies: each is left
// out with a warning that says when and how it left. A name no target ever
// held stays an error, and leaves the catalog as it was.
func TestApplyLeavesOutTargetsThatLeft(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		enlist(t, db, "web3")
		enlist(t, db, "web4")
		j := job("nightly", "web1", "web2", "web3", "web4")
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		left := clk.Now()
		if err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web3", true, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web4", false, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)

		res, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatalf("re-applying a job naming targets that left: %v", err)
		}
		c := res.Changes[0]
		if want := []string{"web2", "web3", "web4"}; !slices.Equal(c.LeftOut, want) {
			t.Errorf("left out %v, want %v", c.LeftOut, want)
		}
		if c.Action != muster.ActionUnchanged || res.Posted != 0 {
			t.Errorf("re-apply: %s, %d posted; want unchanged, nothing posted (the job already ran only on web1)", c.Action, res.Posted)
		}
		wantWarnings := []string{
			`job "nightly": targets: "web2" is left out: no target of that name is enlisted now (it left at ` + left.Format(time.RFC3339) + `: defected itself (muster defect on the target))`,
			`job "nightly": targets: "web3" is left out: no target of that name is enlisted now (it left at ` + left.Format(time.RFC3339) + `: deleted with --force by key admin (admin): no DEFECT was posted)`,
			`job "nightly": targets: "web4" is left out: no target of that name is enlisted now (it was deleted by key admin (admin), waiting to collect its DEFECT)`,
		}
		if !slices.Equal(c.Warnings, wantWarnings) {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(c.Warnings, "\n"), strings.Join(wantWarnings, "\n"))
		}
		got, err := db.FindJob(ctx, "nightly")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Targets, []string{"web1"}) {
			t.Errorf("nightly's targets = %v, want [web1]", got.Targets)
		}

		// A name that never existed is an error naming it, and nothing
		// of the apply stays.
		j2 := job("nightly", "web1", "web2", "nosuch")
		j2.Description = "changed"
		_, err = db.ApplyJobs(ctx, []muster.Job{job("other", "web1"), j2}, catalog.ApplyOptions{}, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), `job "nightly": targets: no enlisted target named "nosuch"`) {
			t.Fatalf("a target that never existed: got %v, want EINVALID naming it", err)
		}
		if _, err := db.FindJob(ctx, "other"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("job other after the refused apply: %v, want ENOTFOUND", err)
		}

		// Naming a target that left where a live one is required says
		// that it left.
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		_, err = db.SetGroupMembers(ctx, "eu", []string{"web2"}, false, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), `"web2" (it left at`) {
			t.Errorf("adding a defected target to a group: got %v, want EINVALID saying it left", err)
		}
	})
}

// Targets that left are listed apart, with when, how and by whom, and a
// name that a target that left held still shows that target.
func TestDefectedTargetsAreListed(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		enlist(t, db, "web3")
		enlist(t, db, "web4")
		clk.Add(time.Hour)
		left := clk.Now()
		if err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web3", true, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web4", false, admin); err != nil {
			t.Fatal(err)
		}

		live, err := db.FindTargets(ctx, catalog.TargetFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tg := range live {
			names = append(names, tg.Name)
		}
		if want := []string{"web1", "web4"}; !slices.Equal(names, want) {
			t.Errorf("targets listed by default: %v, want %v (web4 waits to collect its DEFECT)", names, want)
		}

		gone, err := db.FindTargets(ctx, catalog.TargetFilter{Status: muster.StatusDefected})
		if err != nil {
			t.Fatal(err)
		}
		if len(gone) != 2 {
			t.Fatalf("defected targets: %d, want 2: %+v", len(gone), gone)
		}
		for i, want := range []struct{ name, by, departure string }{
			{"web2", "target web2", "defected itself (muster defect on the target)"},
			{"web3", "key admin (admin)", "deleted with --force by key admin (admin): no DEFECT was posted"},
		} {
			g := gone[i]
			if g.Name != want.name || g.Status != muster.StatusDefected || g.DefectedBy != want.by || g.Departure != want.departure ||
				g.DefectedAt == nil || !g.DefectedAt.Equal(left) {
				t.Errorf("defected[%d] = %s %s by %q: %q at %v; want %s defected by %q: %q at %v", i, g.Name, g.Status,
					g.DefectedBy, g.Departure, g.DefectedAt, want.name, want.by, want.departure, left)
			}
		}

		shown, err := db.FindTarget(ctx, "WEB2")
		if err != nil {
			t.Fatalf("show a defected target: %v", err)
		}
		if shown.Status != muster.StatusDefected || shown.DefectedBy != "target web2" {
			t.Errorf("show web2 = %s by %q, want defected by target web2", shown.Status, shown.DefectedBy)
		}
		tomb, err := db.FindTarget(ctx, "web4")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(tomb.Flags, muster.FlagDeleted) || tomb.DefectedAt != nil ||
			tomb.Departure != "deleted by key admin (admin), waiting to collect its DEFECT" {
			t.Errorf("show web4 = flags %v, defected at %v, %q; want a tombstone deleted by admin", tomb.Flags, tomb.DefectedAt, tomb.Departure)
		}
		if _, err := db.FindTarget(ctx, "nosuch"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("show a target that never was: %v, want ENOTFOUND", err)
		}
	})
}
