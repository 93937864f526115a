package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
		db.RecordPoll(web2.ID, catalog.Heartbeat{At: clk.Now(), LocalTime: clk.Now(), PollInterval: 60})
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
		if shown.LocalTime != nil {
			t.Errorf("show web2: local time %s, want none: a target that left has no clock to read", shown.LocalTime)
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

// A tombstone goes when its target acknowledges its DEFECT, applied or
// failed, and not before: the acknowledgements of other instructions, and
// those repeated, leave it waiting.
func TestTombstoneGoesWithTheAckOfItsDefect(t *testing.T) {
	for _, status := range []muster.InstructionStatus{muster.InstructionDownloaded, muster.InstructionFailed} {
		t.Run(string(status), func(t *testing.T) {
			catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
				db, clk, _ := MustOpen(t, e)
				ctx := context.Background()
				web1 := enlist(t, db, "web1")
				if _, err := db.ApplyJobs(ctx, []muster.Job{job("nightly", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
					t.Fatal(err)
				}
				insert := pendingOf(t, db, web1.ID)
				if len(insert) != 1 || insert[0].Operation != muster.OpInsert {
					t.Fatalf("pending before the delete: %+v, want the job's INSERT", insert)
				}
				if err := db.DeleteTarget(ctx, "web1", false, admin); err != nil {
					t.Fatal(err)
				}
				defect := pendingOf(t, db, web1.ID)
				if len(defect) != 1 || defect[0].Operation != muster.OpDefect {
					t.Fatalf("pending after the delete: %+v, want the DEFECT alone", defect)
				}
				clk.Add(time.Minute)

				// The INSERT's ack comes late, and once more.
				for i := range 2 {
					acked, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: insert[0].Seq, Status: muster.InstructionDownloaded}})
					if err != nil || len(acked) != 0 {
						t.Fatalf("ack %d of the INSERT cleared by the delete: %+v, %v; want nothing acknowledged", i, acked, err)
					}
					if tg, err := db.FindTarget(ctx, "web1"); err != nil || !slices.Contains(tg.Flags, muster.FlagDeleted) {
						t.Fatalf("after ack %d of the INSERT: %+v, %v; want the tombstone still there", i, tg, err)
					}
				}

				acked, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: defect[0].Seq, Status: status, Error: "gone already"}})
				if err != nil || len(acked) != 1 || acked[0].Operation != muster.OpDefect {
					t.Fatalf("ack of the DEFECT: %+v, %v; want the DEFECT acknowledged", acked, err)
				}
				gone, err := db.FindTarget(ctx, "web1")
				if err != nil || gone.Status != muster.StatusDefected || gone.DefectedAt == nil || !gone.DefectedAt.Equal(clk.Now()) ||
					gone.Departure != "deleted by key admin (admin), then collected its DEFECT" {
					t.Fatalf("after the DEFECT's ack: %s at %v, %q, %v; want defected now, having collected its DEFECT",
						gone.Status, gone.DefectedAt, gone.Departure, err)
				}
				if acked, err := db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: defect[0].Seq, Status: status}}); err != nil || len(acked) != 0 {
					t.Errorf("the DEFECT's ack repeated: %+v, %v; want nothing acknowledged", acked, err)
				}
			})
		})
	}
}

// pendingOf returns the instructions pending for a target.
func pendingOf(t *testing.T, db *catalog.Catalog, target int64) []catalog.InstructionRow {
	t.Helper()
	ins, err := db.PendingInstructions(context.Background(), target, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

// A target that already left does not leave again: a defection sent with
// a certificate whose target was deleted with --force meanwhile (its
// lookup, remembered on another master, not yet forgotten) is refused, and
// the departure recorded stays the one that happened.
func TestDefectOfATargetThatLeftIsRefused(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		if err := db.DeleteTarget(ctx, "web1", true, admin); err != nil {
			t.Fatal(err)
		}
		err := db.DefectTarget(ctx, web1.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web1"})
		if muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("defecting a target deleted with --force: %v, want unauthorized", err)
		}
		gone, err := db.FindTarget(ctx, "web1")
		if err != nil {
			t.Fatal(err)
		}
		if want := "deleted with --force by key admin (admin): no DEFECT was posted"; gone.DefectedBy != "key admin (admin)" || gone.Departure != want {
			t.Errorf("web1 left by %q: %q; want by key admin (admin): %q", gone.DefectedBy, gone.Departure, want)
		}
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{Target: "web1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.Action == muster.AuditTargetDefect {
				t.Errorf("the refused defection is in the audit log: %+v", en)
			}
		}
	})
}

// On PostgreSQL a deletion reads the target, then waits for its row: a
// defection the target committed meanwhile must not be overwritten by
// the deletion, which would make the target that left a tombstone waiting
// for a DEFECT it will never collect, and hold its name.
func TestDeleteOfATargetThatDefectedMeanwhile(t *testing.T) {
	url := catalogtest.PostgresDatabaseURL(t)
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	db, err := catalog.Open(ctx, catalogtest.OpenPostgres(t, url), catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	web1 := enlist(t, db, "web1")
	hold := catalogtest.LockTargetRow(t, url, web1.ID, "FOR UPDATE")
	done := make(chan error, 1)
	go func() { done <- db.DeleteTarget(ctx, "web1", false, admin) }()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	catalogtest.AwaitLock(t, conn, "the deletion waiting for the target's row", func() bool { return len(done) > 0 })
	// The target's own defection commits while the deletion waits.
	if _, err := hold.Exec(ctx, `UPDATE targets SET state = 'defected', defected_at = $1, defected_how = 'defected', defected_by = 'target web1'
		WHERE id = $2`, clk.Now().UnixMilli(), web1.ID); err != nil {
		t.Fatal(err)
	}
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; muster.ErrorCode(err) != muster.ENOTFOUND {
		t.Errorf("deleting a target that defected meanwhile: %v, want not found", err)
	}
	gone, err := db.FindTarget(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if gone.Status != muster.StatusDefected || gone.DefectedBy != "target web1" {
		t.Errorf("web1 is %s, left by %q (%s); want defected by target web1", gone.Status, gone.DefectedBy, gone.Departure)
	}
	if _, err := db.CreateEnlistToken(ctx, "h-again", "web1", 15*time.Minute, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h-again", Name: "web1", UID: "u-again"}, hourCerts(clk)); err != nil {
		t.Errorf("enlisting web1 again after it defected: %v", err)
	}
}

// A tombstone renews its certificate, to collect its DEFECT; a target that
// left does not.
func TestRenewalOfATargetThatLeft(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "tomb")
		gone := enlist(t, db, "gone")
		if err := db.DeleteTarget(ctx, "tomb", false, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DefectTarget(ctx, gone.ID, muster.Actor{Kind: muster.ActorTarget, Name: "gone"}); err != nil {
			t.Fatal(err)
		}
		sign := func(serial string) func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
			return func(catalog.TargetIdentity) (catalog.IssuedCert, error) {
				return catalog.IssuedCert{Serial: serial, NotAfter: clk.Now().Add(time.Hour), KeyHash: "k-" + serial}, nil
			}
		}
		if _, err := db.RenewCert(ctx, "serial-tomb", "k-tomb-2", sign("tomb-2")); err != nil {
			t.Errorf("the tombstone renews: %v", err)
		}
		id, err := db.AuthenticateTarget(ctx, "tomb-2")
		if err != nil || id.State != catalog.TargetDeleted {
			t.Errorf("the tombstone's new certificate is %+v, %v; want the tombstone's", id, err)
		}
		if _, err := db.RenewCert(ctx, "serial-gone", "k-gone-2", sign("gone-2")); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("a defected target renews: %v, want unauthorized", err)
		}
	})
}

// A server enlisting under the name of a target deleted on the master and
// waiting for its DEFECT is refused, and told both ways out: the old
// target defects when it polls, or, gone for good, is forgotten with
// muster target delete --force, after which the name enlists.
func TestEnlistUnderATombstonesName(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		if err := db.DeleteTarget(ctx, "web1", false, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateEnlistToken(ctx, "hash-again", "web1", 15*time.Minute, admin); err != nil {
			t.Fatal(err)
		}
		again := catalog.Enlistment{TokenHash: "hash-again", Name: "web1", UID: "uid-again"}
		sign := func(string) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "serial-again", NotAfter: time.Now().Add(time.Hour)}, nil
		}
		_, err := db.Enlist(ctx, again, sign)
		if muster.ErrorCode(err) != muster.ECONFLICT || !strings.Contains(err.Error(), "`muster target delete web1 --force`") {
			t.Errorf("enlisting under a tombstone's name: %v (code %q), want a conflict naming muster target delete web1 --force", err, muster.ErrorCode(err))
		}
		if err := db.DeleteTarget(ctx, "web1", true, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Enlist(ctx, again, sign); err != nil {
			t.Errorf("enlisting once the tombstone was forgotten: %v", err)
		}
	})
}

// A target that leaves the fleet takes its overrides with it (as SQL
// Server's sp_msx_defect and sp_delete_targetserver take the target's
// rows): a server enlisted later under the same name is a new target, and
// does not inherit what was set for the old one. The departure's audit
// entry says which jobs lost an override; no other target is posted
// anything, since what each receives is unchanged.
func TestTargetThatLeavesTakesItsOverrides(t *testing.T) {
	for _, how := range []string{"defect", "delete", "delete --force"} {
		t.Run(strings.ReplaceAll(how, " ", ""), func(t *testing.T) {
			catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
				db, _, _ := MustOpen(t, e)
				ctx := context.Background()
				web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
				if err := db.CreateGroup(ctx, "eu", admin); err != nil {
					t.Fatal(err)
				}
				if _, err := db.ApplyJobs(ctx, []muster.Job{reportJob()}, catalog.ApplyOptions{}, admin); err != nil {
					t.Fatal(err)
				}
				before := must(db.PendingInstructions(ctx, web1.ID, 0))
				switch how {
				case "defect":
					err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"})
					if err != nil {
						t.Fatal(err)
					}
				default:
					if err := db.DeleteTarget(ctx, "web2", how != "delete", admin); err != nil {
						t.Fatal(err)
					}
				}
				j, err := db.FindJob(ctx, "report")
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range j.Overrides {
					if o.Target == "web2" {
						t.Errorf("job report keeps an override of web2, which left: %+v", o)
					}
				}
				if len(j.Overrides) != 1 || j.Overrides[0].Group != "eu" {
					t.Errorf("overrides %+v, want only eu's", j.Overrides)
				}
				if after := must(db.PendingInstructions(ctx, web1.ID, 0)); len(after) != len(before) {
					t.Errorf("web1 was posted %v, want nothing new (was %v)", ops(after), ops(before))
				}
				entries, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: 1})
				if err != nil || len(entries) != 1 || !slices.ContainsFunc(entries[0].Changes, func(l string) bool {
					return strings.HasPrefix(l, "job report: its override of target web2 dropped (version ")
				}) {
					t.Errorf("the departure's audit entry: %+v %v, want it to say report's override of web2 was dropped", entries, err)
				}
				if how == "delete" {
					return // the name is the tombstone's until it collects its DEFECT
				}
				if _, err := db.CreateEnlistToken(ctx, "hash-again", "web2", 15*time.Minute, admin); err != nil {
					t.Fatal(err)
				}
				again, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-again", Name: "web2", UID: "uid-again"},
					func(string) (catalog.IssuedCert, error) {
						return catalog.IssuedCert{Serial: "serial-again", NotAfter: time.Now().Add(time.Hour)}, nil
					})
				if err != nil {
					t.Fatal(err)
				}
				j.Targets = append(j.Targets, "web2")
				if _, err := db.ApplyJobs(ctx, []muster.Job{j.Job}, catalog.ApplyOptions{}, admin); err != nil {
					t.Fatal(err)
				}
				if got := scheduleNames(received(t, db, again, "report")); !slices.Equal(got, []string{"nightly"}) {
					t.Errorf("the new web2 received schedules %v, want the job's own [nightly], not the old web2's override", got)
				}
			})
		})
	}
}
