package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// report makes a run report of job on a target at a revision.
func report(runID, job string, status muster.RunStatus, rev int64, at time.Time, steps ...muster.StepAttempt) catalog.RunUpload {
	r := muster.Run{Job: job, RunID: runID, Status: status, Trigger: muster.TriggerOperator, StartedAt: at, Steps: steps}
	if status.Finished() {
		end := at.Add(time.Second)
		r.FinishedAt = &end
	}
	return catalog.RunUpload{Revision: rev, Run: r}
}

func eventNames(evs []muster.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Name)+" "+e.Target+" "+e.Job)
	}
	return out
}

// newID numbers deliveries d1, d2, ...
var newID = func() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("d%d", n.Add(1)) }
}()

func mustEvents(t *testing.T, db *catalog.Catalog, f catalog.EventFilter) []muster.Event {
	t.Helper()
	evs, err := db.FindEvents(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestRunEventsAreRaisedOnce(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		code := 2
		failed := muster.StepAttempt{Name: "dump", Attempt: 1, Status: muster.AttemptFailed, ExitCode: &code, Message: "exit code 2", StartedAt: clk.Now()}
		for rev := int64(1); rev <= 2; rev++ {
			res, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r1", "backup", muster.RunFailed, rev, clk.Now(), failed)})
			if err != nil || !res[0].OK {
				t.Fatalf("upload: %+v %v", res, err)
			}
		}
		got := eventNames(mustEvents(t, db, catalog.EventFilter{}))
		want := []string{"run_failed web1 backup", "step_failed web1 backup"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("events %v, want %v (each once)", got, want)
		}
		e := mustEvents(t, db, catalog.EventFilter{Event: muster.EventStepFailed})[0]
		if e.Severity != muster.SeverityWarning || e.RunID != "r1" || e.Source != muster.SourceMaster || !strings.Contains(e.Message, "exit code 2") {
			t.Errorf("step_failed event %+v", e)
		}
		if evs := mustEvents(t, db, catalog.EventFilter{MinSeverity: muster.SeverityError}); len(evs) != 1 || evs[0].Name != muster.EventRunFailed {
			t.Errorf("min severity 3: %v, want run_failed only", eventNames(evs))
		}

		t.Run("a running or succeeded run raises nothing", func(t *testing.T) {
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r2", "backup", muster.RunRunning, 1, clk.Now())})
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r2", "backup", muster.RunSucceeded, 2, clk.Now())})
			if n := len(mustEvents(t, db, catalog.EventFilter{})); n != 2 {
				t.Errorf("%d events, want still 2", n)
			}
		})
		t.Run("abandoned and timed out runs are failures", func(t *testing.T) {
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{
				report("r3", "backup", muster.RunAbandoned, 1, clk.Now()),
				report("r4", "backup", muster.RunTimedOut, 1, clk.Now()),
			})
			if n := len(mustEvents(t, db, catalog.EventFilter{Event: muster.EventRunFailed})); n != 3 {
				t.Errorf("%d run_failed events, want 3", n)
			}
		})
	})
}

func TestTargetEventsAreKeptOncePerID(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		evs := []catalog.TargetEvent{
			{ID: 1, Name: muster.EventSpoolFull, Severity: 3, Message: "dropped 2 runs", At: clk.Now()},
			{ID: 2, Name: muster.EventRunFailed, Severity: 3, Message: "not a target's", At: clk.Now()},
			{ID: 3, Name: muster.EventInstructionFailed, Severity: 9, Message: "bad severity", At: clk.Now()},
		}
		for range 2 {
			res, err := db.RecordTargetEvents(ctx, web1, evs)
			if err != nil {
				t.Fatal(err)
			}
			if !res[0].OK || res[1].OK || res[2].OK || !strings.Contains(res[1].Error, "not an event a target raises") {
				t.Fatalf("results %+v", res)
			}
		}
		got := mustEvents(t, db, catalog.EventFilter{})
		if len(got) != 1 || got[0].Name != muster.EventSpoolFull || got[0].Source != muster.SourceTarget || got[0].Target != "web1" {
			t.Fatalf("events %+v, want one spool_full from web1", got)
		}
	})
}

func TestOperators(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		secret := func() string { return "generated-secret-0123456789" }

		ops, err := db.FindOperators(ctx)
		if err != nil || len(ops) != 1 || ops[0].Name != muster.MSXOperator || ops[0].Webhook != "" || ops[0].Email != "" {
			t.Fatalf("operators at start: %+v %v, want MSXOperator with no address", ops, err)
		}
		for _, tc := range []struct {
			name string
			op   muster.Operator
			want string
		}{
			{"no address", muster.Operator{Name: "ops"}, "give a webhook, an e-mail address, or both"},
			{"bad webhook", muster.Operator{Name: "ops", Webhook: "ftp://x"}, "webhook: \"ftp://x\" is not an http or https URL"},
			{"bad email", muster.Operator{Name: "ops", Email: "Ops <ops@example.com>"}, "is not an e-mail address"},
			{"bad name", muster.Operator{Name: "o p", Email: "ops@example.com"}, "name: a name may hold only"},
			{"taken", muster.Operator{Name: muster.MSXOperator, Email: "ops@example.com"}, "already exists"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.CreateOperator(ctx, tc.op, "", admin)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want %q", err, tc.want)
				}
			})
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "ops", Email: "ops@example.com"}, "", admin); err != nil {
			t.Fatal(err)
		}

		t.Run("a first webhook makes a secret, shown once", func(t *testing.T) {
			hook := "https://hooks.example.com/muster"
			op, made, err := db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{Webhook: &hook}, secret, admin)
			if err != nil || op.Webhook != hook || made != secret() {
				t.Fatalf("got %+v %q %v", op, made, err)
			}
			email := "dba@example.com"
			_, made, err = db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{Email: &email}, secret, admin)
			if err != nil || made != "" {
				t.Errorf("second update made secret %q (%v), want none", made, err)
			}
			_, made, _ = db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{NewSecret: true}, secret, admin)
			if made == "" {
				t.Error("new_secret made no secret")
			}
			short := "short"
			if _, _, err := db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{WebhookSecret: &short}, secret, admin); muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("a short secret: %v, want invalid", err)
			}
		})
		t.Run("no webhook, no secret", func(t *testing.T) {
			none, hook := "", "https://hooks.example.com/again"
			if _, made, err := db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{Webhook: &none}, secret, admin); err != nil || made != "" {
				t.Fatalf("removing the webhook: %q %v", made, err)
			}
			if _, _, err := db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{NewSecret: true}, secret, admin); muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("a secret without a webhook: %v, want invalid", err)
			}
			if _, made, _ := db.UpdateOperator(ctx, muster.MSXOperator, catalog.OperatorUpdate{Webhook: &hook}, secret, admin); made == "" {
				t.Error("a webhook again, and no new secret")
			}
			if _, err := db.CreateOperator(ctx, muster.Operator{Name: "x", Email: "x@example.com"}, "secret-of-at-least-16", admin); muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("created with a secret and no webhook: %v, want invalid", err)
			}
		})
		t.Run("MSXOperator cannot be deleted", func(t *testing.T) {
			if err := db.DeleteOperator(ctx, muster.MSXOperator, admin); muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("got %v, want invalid", err)
			}
		})
		t.Run("an operator an alert notifies cannot be deleted", func(t *testing.T) {
			if _, err := db.CreateAlert(ctx, muster.Alert{Name: "a1", Event: muster.EventRunFailed, Notify: []string{"ops"}}, admin); err != nil {
				t.Fatal(err)
			}
			err := db.DeleteOperator(ctx, "ops", admin)
			if muster.ErrorCode(err) != muster.ECONFLICT || !strings.Contains(err.Error(), `"a1"`) {
				t.Errorf("got %v, want a conflict naming a1", err)
			}
			if err := db.DeleteAlert(ctx, "a1", admin); err != nil {
				t.Fatal(err)
			}
			if err := db.DeleteOperator(ctx, "ops", admin); err != nil {
				t.Errorf("after the alert is gone: %v", err)
			}
			if err := db.DeleteOperator(ctx, "ops", admin); muster.ErrorCode(err) != muster.ENOTFOUND {
				t.Errorf("twice: %v, want not found", err)
			}
		})
	})
}

func TestCreateAlert(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			alert muster.Alert
			want  string
		}{
			{"unknown event", muster.Alert{Name: "a", Event: "run_exploded", Notify: []string{muster.MSXOperator}}, `event: "run_exploded" is not an event`},
			{"unknown job", muster.Alert{Name: "a", Event: "run_failed", Job: "nope", Notify: []string{muster.MSXOperator}}, `job: no job named "nope"`},
			{"unknown target", muster.Alert{Name: "a", Event: "run_failed", Target: "db9", Notify: []string{muster.MSXOperator}}, `no enlisted target named "db9"`},
			{"unknown operator", muster.Alert{Name: "a", Event: "run_failed", Notify: []string{"nobody"}}, `notify: no operator named "nobody"`},
			{"no operator", muster.Alert{Name: "a", Event: "run_failed"}, "notify: name at least one operator"},
			{"window on another event", muster.Alert{Name: "a", Event: "run_failed", Window: muster.Duration(time.Hour), Notify: []string{muster.MSXOperator}}, "only a no_success alert has a window"},
			{"window too short", muster.Alert{Name: "a", Event: "no_success", Window: muster.Duration(time.Second), Notify: []string{muster.MSXOperator}}, "window: from 1m0s"},
			{"severity off the scale", muster.Alert{Name: "a", Event: "any", MinSeverity: 5, Notify: []string{muster.MSXOperator}}, "min_severity: 1 (info) to 4 (critical)"},
			// Alerts that could never fire.
			{"severity above the event's", muster.Alert{Name: "a", Event: "target_online", MinSeverity: muster.SeverityError, Notify: []string{muster.MSXOperator}},
				`alert "a": min_severity: target_online is raised at 1 (info), below 3 (error): the alert would never fire`},
			{"job of an event without one", muster.Alert{Name: "a", Event: "target_offline", Job: "backup", Notify: []string{muster.MSXOperator}},
				`alert "a": job: target_offline names no job: the alert would never fire`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.CreateAlert(ctx, tc.alert, admin)
				if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want invalid with %q", err, tc.want)
				}
				if all, err := db.FindAlerts(ctx); err != nil || len(all) != 0 {
					t.Errorf("alerts %+v (%v), want none created", all, err)
				}
			})
		}
		a, err := db.CreateAlert(ctx, muster.Alert{Name: "stale", Event: muster.EventNoSuccess, Job: "backup", Target: "WEB1", Notify: []string{muster.MSXOperator}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if a.Window.Std() != 26*time.Hour || a.Target != "web1" {
			t.Errorf("got %+v, want the 26h default window and a normalized target", a)
		}
		if _, err := db.CreateAlert(ctx, a, admin); muster.ErrorCode(err) != muster.ECONFLICT {
			t.Errorf("same name again: %v, want conflict", err)
		}
		list, err := db.FindAlerts(ctx)
		if err != nil || len(list) != 1 || list[0].Notify[0] != muster.MSXOperator || list[0].Window != a.Window {
			t.Errorf("alerts %+v %v", list, err)
		}
	})
}

func TestDispatchAndDeliveries(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		enlist(t, db, "web2")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1", "web2"), job("report", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "both", Webhook: "https://hooks.example.com/a", Email: "a@example.com"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "mail", Email: "b@example.com"}, "", admin); err != nil {
			t.Fatal(err)
		}
		for _, a := range []muster.Alert{
			{Name: "any-failure", Event: muster.EventRunFailed, Notify: []string{"both", muster.MSXOperator}},
			{Name: "backup-on-web2", Event: muster.EventRunFailed, Job: "backup", Target: "web2", Notify: []string{"mail"}},
			{Name: "critical", Event: muster.EventAny, MinSeverity: muster.SeverityCritical, Notify: []string{"mail"}},
			{Name: "report-steps", Event: muster.EventStepFailed, Job: "report", Notify: []string{"mail"}},
		} {
			if _, err := db.CreateAlert(ctx, a, admin); err != nil {
				t.Fatal(err)
			}
		}
		step := muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptFailed, StartedAt: clk.Now()}
		db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r1", "backup", muster.RunFailed, 1, clk.Now(), step)})
		events, deliveries, err := db.DispatchEvents(ctx, newID)
		if err != nil || events != 2 {
			t.Fatalf("dispatched %d events (%v), want 2", events, err)
		}
		// run_failed of backup on web1: any-failure only (webhook and e-mail of
		// "both", none for MSXOperator); step_failed of backup: no alert.
		if deliveries != 3 {
			t.Errorf("%d deliveries, want 3", deliveries)
		}
		if again, _, _ := db.DispatchEvents(ctx, newID); again != 0 {
			t.Errorf("dispatched %d events again", again)
		}
		hist, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var none muster.Delivery
		for _, d := range hist {
			if d.Alert != "any-failure" || d.Event.Name != muster.EventRunFailed {
				t.Errorf("delivery %+v: want any-failure of run_failed", d)
			}
			if d.Channel == muster.ChannelNone {
				none = d
			}
		}
		if none.Operator != muster.MSXOperator || none.Status != muster.DeliveryFailed || !strings.Contains(none.LastError, "has no webhook or e-mail address") {
			t.Errorf("MSXOperator's delivery %+v, want failed for lack of an address", none)
		}

		t.Run("due deliveries carry the secret; attempts are recorded", func(t *testing.T) {
			due, err := db.DueDeliveries(ctx, 10, 100)
			if err != nil || len(due) != 2 {
				t.Fatalf("due %+v %v, want the webhook and the e-mail", due, err)
			}
			if due[0].Secret != "secret-of-at-least-16" {
				t.Errorf("secret %q", due[0].Secret)
			}
			retry := clk.Now().Add(time.Minute)
			db.RecordDeliveryAttempt(ctx, due[0].ID, catalog.DeliveryAttempt{Err: errors.New("HTTP 503"), RetryAt: retry})
			db.RecordDeliveryAttempt(ctx, due[1].ID, catalog.DeliveryAttempt{})
			if left, _ := db.DueDeliveries(ctx, 10, 100); len(left) != 0 {
				t.Errorf("%d due right after, want 0", len(left))
			}
			if next, ok, _ := db.NextDeliveryAt(ctx, clk.Now()); !ok || !next.Equal(retry) {
				t.Errorf("next at %s %v, want %s", next, ok, retry)
			}
			clk.Add(time.Minute)
			left, _ := db.DueDeliveries(ctx, 10, 100)
			if len(left) != 1 || left[0].Attempts != 1 || left[0].LastError != "HTTP 503" {
				t.Fatalf("due after a minute %+v", left)
			}
			db.RecordDeliveryAttempt(ctx, left[0].ID, catalog.DeliveryAttempt{Err: errors.New("HTTP 404")})
			failed, _ := db.FindDeliveries(ctx, catalog.DeliveryFilter{Status: muster.DeliveryFailed})
			if len(failed) != 2 {
				t.Errorf("%d failed, want 2 (no address, and the 404)", len(failed))
			}
			if _, ok, _ := db.NextDeliveryAt(ctx, clk.Now()); ok {
				t.Error("something is still pending")
			}
		})
		t.Run("filters: job, target, severity", func(t *testing.T) {
			web2, _ := db.AuthenticateTarget(ctx, "serial-web2")
			db.UpsertRuns(ctx, web2, []catalog.RunUpload{report("r2", "backup", muster.RunFailed, 1, clk.Now())})
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r3", "report", muster.RunSucceeded, 1, clk.Now(), step)})
			if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
				t.Fatal(err)
			}
			for alert, want := range map[string]int{"backup-on-web2": 1, "report-steps": 1, "critical": 0} {
				got, _ := db.FindDeliveries(ctx, catalog.DeliveryFilter{Alert: alert})
				if len(got) != want {
					t.Errorf("alert %s: %d deliveries, want %d", alert, len(got), want)
				}
			}
		})
	})
}

// Enabling or disabling an alert applies to the events raised from then
// on, even when the events raised before are matched only later.
func TestAlertEnabledByRaisedEvent(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "failed", Event: muster.EventRunFailed, Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		fail := func(run string) {
			t.Helper()
			if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{report(run, "backup", muster.RunFailed, 1, clk.Now())}); err != nil {
				t.Fatal(err)
			}
		}
		setEnabled := func(enabled bool) {
			t.Helper()
			if a, err := db.SetAlertEnabled(ctx, "failed", enabled, admin); err != nil || a.Enabled != enabled {
				t.Fatalf("set enabled %v: %+v, %v", enabled, a, err)
			}
		}
		fail("r1") // raised while enabled
		setEnabled(false)
		setEnabled(false) // no change: r1 still counts as raised while enabled
		fail("r2")        // while disabled
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		fail("r3") // while disabled
		setEnabled(true)
		fail("r4") // enabled again
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		fail("r5")
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		hist, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Alert: "failed"})
		if err != nil {
			t.Fatal(err)
		}
		var fired []string
		for _, d := range hist {
			fired = append(fired, d.Event.RunID)
		}
		slices.Sort(fired)
		if want := []string{"r1", "r4", "r5"}; !slices.Equal(fired, want) {
			t.Errorf("the alert fired for runs %v, want %v", fired, want)
		}
		if _, err := db.SetAlertEnabled(ctx, "nope", false, admin); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("an unknown alert: %v, want not found", err)
		}
	})
}

func TestDetectPresence(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		start := clk.Now()
		if n, err := db.DetectPresence(ctx, start); n != 0 || err != nil {
			t.Fatalf("a fresh target: %d events, %v", n, err)
		}
		clk.Add(3*time.Minute + time.Second)
		if n, _ := db.DetectPresence(ctx, start); n != 1 {
			t.Fatalf("after 3 intervals: %d events, want 1", n)
		}
		if n, _ := db.DetectPresence(ctx, start); n != 0 {
			t.Errorf("a second scan: %d events, want 0", n)
		}
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60})
		if n, _ := db.DetectPresence(ctx, start); n != 1 {
			t.Errorf("after a poll: %d events, want 1", n)
		}
		if got := eventNames(mustEvents(t, db, catalog.EventFilter{})); strings.Join(got, "|") != "target_online web1 |target_offline web1 " {
			t.Errorf("events %q", got)
		}
		t.Run("the master's own downtime does not count", func(t *testing.T) {
			clk.Add(time.Hour)
			if n, _ := db.DetectPresence(ctx, clk.Now().Add(-time.Minute)); n != 0 {
				t.Errorf("a master up for a minute: %d events, want 0", n)
			}
		})
	})
}

// On PostgreSQL, the presence scan takes the rows of the targets whose
// presence changed in id order, as posts and heartbeat flushes do: a rack
// of targets going silent while a START to them posts must not leave each
// transaction holding rows the other waits for (PostgreSQL fails one of
// them after deadlock_timeout, 1 s, and it is run again). Here the targets'
// names sort in the reverse of their ids, a transaction holds one target's
// row, and the scan, marking every target offline, stops there: taken in id
// order it holds the rows before it, and only those after it are free.
func TestDetectPresenceTakesRowsInIDOrder(t *testing.T) {
	url := catalogtest.PostgresDatabaseURL(t)
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	db, err := catalog.Open(ctx, catalogtest.OpenPostgres(t, url), catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer lead(t, db)()
	const n, held = 20, 10
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = enlist(t, db, fmt.Sprintf("web-%02d", n-i)).ID
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("target ids %v are not in the order of enlistment", ids)
	}
	start := clk.Now()
	clk.Add(3*time.Minute + time.Second)
	hold := catalogtest.LockTargetRow(t, url, ids[held], "FOR UPDATE")

	type result struct {
		raised int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		raised, err := db.DetectPresence(ctx, start)
		done <- result{raised, err}
	}()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	got := catalogtest.FreeTargetsOnceBlocked(t, conn, "presence scan")
	if want := ids[held+1:]; !slices.Equal(got, want) {
		t.Errorf("rows free while the scan waits for row %d: %v, want those after it, %v", ids[held], got, want)
	}
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.raised != n {
		t.Errorf("the scan raised %d events, %v; want %d", r.raised, r.err, n)
	}
}

// The presence scan reads only what it judges by (FindPresence), not each
// target's whole row: at 20,000 targets FindTargets took 630 ms a scan. A
// poll written to the row counts as one held in memory, and targets that
// are not active are not judged.
func TestDetectPresenceReadsWhatItJudges(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
		r := &reads{n: map[string]int{}}
		db, err := catalog.Open(ctx, catalog.TimeStore(eng.Open(t), r.observe), catalog.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		defer lead(t, db)()
		start := clk.Now()
		web1 := enlist(t, db, "web1")
		enlist(t, db, "web2")
		enlist(t, db, "gone")
		if err := db.DeleteTarget(ctx, "gone", true, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Minute)
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60})
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Minute) // web1 polled 2 minutes ago, web2 never
		if n, err := db.DetectPresence(ctx, start); n != 1 || err != nil {
			t.Fatalf("web2 silent for 4 minutes: %d events, %v; want 1", n, err)
		}
		if got := eventNames(mustEvents(t, db, catalog.EventFilter{})); strings.Join(got, "|") != "target_offline web2 " {
			t.Errorf("events %q, want web2 offline only", got)
		}
		clk.Add(2 * time.Minute)
		if n, err := db.DetectPresence(ctx, start); n != 1 || err != nil {
			t.Fatalf("web1's written poll 4 minutes old: %d events, %v; want 1", n, err)
		}
		if evs := mustEvents(t, db, catalog.EventFilter{Target: "web1"}); len(evs) != 1 || !strings.Contains(evs[0].Message, "last poll 2026-11-25T12:02:00Z") {
			t.Errorf("web1's events %+v, want one naming its last poll", evs)
		}
		// Target names are compared without regard to case, in a filter
		// too, wherever it comes from (the API, a link of the console).
		if evs := mustEvents(t, db, catalog.EventFilter{Target: " WEB1"}); len(evs) != 1 || evs[0].Target != "web1" {
			t.Errorf("WEB1's events %+v, want web1's one", evs)
		}
		if got, want := r.of("FindTargets"), 0; got != want {
			t.Errorf("FindTargets read %d times, want %d", got, want)
		}
		if got := r.of("FindPresence"); got != 2 {
			t.Errorf("FindPresence read %d times, want 2", got)
		}
	})
}

func TestDetectNoSuccessOncePerStretch(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		nightly := job("nightly", "web1")
		nightly.Schedules = []muster.Schedule{{Cron: "0 2 * * *"}}
		manual := job("manual", "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{nightly, manual}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "stale", Event: muster.EventNoSuccess, Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(25 * time.Hour)
		if n, err := db.DetectNoSuccess(ctx); n != 0 || err != nil {
			t.Fatalf("within the window: %d events (%v)", n, err)
		}
		clk.Add(2 * time.Hour)
		// A disabled alert watches nothing; enabled again, it finds the
		// stretch.
		if _, err := db.SetAlertEnabled(ctx, "stale", false, admin); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DetectNoSuccess(ctx); n != 0 || err != nil {
			t.Fatalf("past the window, the alert disabled: %d events (%v)", n, err)
		}
		if a, err := db.SetAlertEnabled(ctx, "stale", true, admin); err != nil || !a.Enabled {
			t.Fatalf("enable: %+v, %v", a, err)
		}
		if n, err := db.DetectNoSuccess(ctx); n != 1 || err != nil {
			t.Fatalf("past the window: %d events (%v), want 1 (the scheduled job only)", n, err)
		}
		clk.Add(30 * time.Hour)
		if n, _ := db.DetectNoSuccess(ctx); n != 0 {
			t.Errorf("later scans of the same stretch: %d events, want 0", n)
		}
		db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("ok", "nightly", muster.RunSucceeded, 1, clk.Now())})
		if n, _ := db.DetectNoSuccess(ctx); n != 0 {
			t.Errorf("right after a success: %d events", n)
		}
		clk.Add(27 * time.Hour)
		if n, _ := db.DetectNoSuccess(ctx); n != 1 {
			t.Errorf("a new stretch: %d events, want 1", n)
		}
		evs := mustEvents(t, db, catalog.EventFilter{Event: muster.EventNoSuccess})
		if len(evs) != 2 || evs[0].Job != "nightly" || evs[0].Window.Std() != 26*time.Hour || evs[0].Severity != muster.SeverityCritical {
			t.Errorf("events %+v", evs)
		}
	})
}

func TestPruneEvents(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "ops", Webhook: "https://hooks.example.com/a"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "spool", Event: muster.EventSpoolFull, Notify: []string{"ops"}}, admin); err != nil {
			t.Fatal(err)
		}
		forward := func(id int64) {
			db.RecordTargetEvents(ctx, web1, []catalog.TargetEvent{{ID: id, Name: muster.EventSpoolFull, Severity: 3, Message: "full", At: clk.Now()}})
			db.DispatchEvents(ctx, newID)
		}
		forward(1)
		forward(2)
		due, _ := db.DueDeliveries(ctx, 10, 100)
		db.RecordDeliveryAttempt(ctx, due[0].ID, catalog.DeliveryAttempt{}) // the first delivered, the second pending
		clk.Add(48 * time.Hour)
		forward(3)
		n, err := db.PruneEvents(ctx, clk.Now().Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want 1: the old event whose notification is done", n, err)
		}
		if evs := mustEvents(t, db, catalog.EventFilter{}); len(evs) != 2 {
			t.Errorf("%d events left, want 2 (one pending, one recent)", len(evs))
		}
		if h, _ := db.FindDeliveries(ctx, catalog.DeliveryFilter{}); len(h) != 2 {
			t.Errorf("%d notifications left, want 2", len(h))
		}
	})
}

// What a receiver answers ends up in an attempt's error: bytes that are
// not UTF-8, or a NUL, are recorded (as U+FFFD) like any other answer, so
// the attempt counts and the notification is not sent again and again.
func TestDeliveryAttemptErrorWithAnyBytes(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		backupAlertsHook(t, db)
		db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r1", "backup", muster.RunFailed, 1, clk.Now())})
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueDeliveries(ctx, 10, 100)
		if err != nil || len(due) != 1 {
			t.Fatalf("due %+v %v, want one", due, err)
		}
		if err := db.RecordDeliveryAttempt(ctx, due[0].ID, catalog.DeliveryAttempt{
			Err: errors.New("webhook: HTTP 500: caf\xc3 \xff\x00end"), RetryAt: clk.Now().Add(time.Minute),
		}); err != nil {
			t.Fatalf("record an attempt whose error is not UTF-8: %v", err)
		}
		h, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
		if err != nil || len(h) != 1 {
			t.Fatalf("history %+v %v", h, err)
		}
		if want := "webhook: HTTP 500: caf\uFFFD \uFFFD\uFFFDend"; h[0].Attempts != 1 || h[0].LastError != want {
			t.Errorf("%d attempts, error %q; want 1, %q", h[0].Attempts, h[0].LastError, want)
		}
	})
}

// Due deliveries are read at most so many per address, so that a flood to
// one address does not hide the deliveries to others.
func TestDueDeliveriesPerAddress(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "flooded", Webhook: "https://a.example.com/hook"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "other", Webhook: "https://b.example.com/hook"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "flood", Event: muster.EventRunFailed, Notify: []string{"flooded"}}, admin); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{report(fmt.Sprintf("r%d", i), "backup", muster.RunFailed, 1, clk.Now())})
		}
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "last", Event: muster.EventRunFailed, Notify: []string{"other"}}, admin); err != nil {
			t.Fatal(err)
		}
		db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r-last", "backup", muster.RunFailed, 1, clk.Now())})
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueDeliveries(ctx, 2, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range due {
			got = append(got, d.Operator+" "+d.Event.RunID)
		}
		if want := []string{"flooded r0", "flooded r1", "other r-last"}; !slices.Equal(got, want) {
			t.Errorf("due %q, want %q", got, want)
		}
	})
}

// Notifications still pending when an operator's address changes go to the
// new address (an operator fixing a wrong webhook expects its retries
// there); when the address is removed, they fail, saying so.
func TestPendingDeliveriesFollowTheOperatorsAddress(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "ops", Webhook: "https://hooks.example.com/typo", Email: "old@example.com"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "failed", Event: muster.EventRunFailed, Notify: []string{"ops"}}, admin); err != nil {
			t.Fatal(err)
		}
		db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("r1", "backup", muster.RunFailed, 1, clk.Now())})
		if _, n, err := db.DispatchEvents(ctx, newID); err != nil || n != 2 {
			t.Fatalf("%d deliveries (%v), want the webhook and the e-mail", n, err)
		}
		if _, _, err := db.UpdateOperator(ctx, "ops", catalog.OperatorUpdate{}, func() string { return "unused" }, admin); muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "nothing to change") {
			t.Errorf("an update that changes nothing: %v, want invalid, nothing to change", err)
		}
		fixed := "https://hooks.example.com/right"
		if _, _, err := db.UpdateOperator(ctx, "ops", catalog.OperatorUpdate{Webhook: &fixed}, func() string { return "unused" }, admin); err != nil {
			t.Fatal(err)
		}
		none := ""
		if _, _, err := db.UpdateOperator(ctx, "ops", catalog.OperatorUpdate{Email: &none}, func() string { return "unused" }, admin); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueDeliveries(ctx, 10, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 || due[0].Channel != muster.ChannelWebhook || due[0].Address != fixed {
			t.Errorf("due %+v, want only the webhook, to %s", due, fixed)
		}
		failed, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Status: muster.DeliveryFailed})
		if err != nil {
			t.Fatal(err)
		}
		if len(failed) != 1 || failed[0].Channel != muster.ChannelEmail || !strings.Contains(failed[0].LastError, "e-mail address was removed") {
			t.Errorf("failed %+v, want the e-mail, its address removed", failed)
		}
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, e := range entries {
			if e.Action == muster.AuditOperatorUpdate {
				lines = append(lines, e.Changes...)
			}
		}
		if !slices.Contains(lines, "1 pending notification now goes to the new webhook") || !slices.Contains(lines, "1 pending notification failed: the e-mail address was removed") {
			t.Errorf("audit lines %q, want what became of the pending notifications", lines)
		}
	})
}

// Events and notifications are read a page at a time, each page naming
// the cursor of the next: every one there was when the walk began comes
// once, newest first, while more are raised between reads. A cursor of
// one list is refused by another.
func TestEventAndDeliveryPages(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: "ops", Webhook: "https://hooks.example.com/a"}, "secret-of-at-least-16", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "spool", Event: muster.EventSpoolFull, Notify: []string{"ops"}}, admin); err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		raise := func() {
			n++
			// All at one instant: the order is the order they were recorded.
			if _, err := db.RecordTargetEvents(ctx, web1, []catalog.TargetEvent{{ID: n, Name: muster.EventSpoolFull, Severity: 3, Message: "full", At: clk.Now()}}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
				t.Fatal(err)
			}
		}
		for range 11 {
			raise()
		}

		want := mustEvents(t, db, catalog.EventFilter{Event: muster.EventSpoolFull, Limit: 1000})
		var got []muster.Event
		f, pages := catalog.EventFilter{Event: muster.EventSpoolFull, Limit: 4}, 0
		for {
			page, next, err := db.FindEventsPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got, pages = append(got, page...), pages+1
			if next == "" || pages > 10 {
				break
			}
			f.Cursor = next
			raise()
		}
		if len(got) != 11 || pages != 3 {
			t.Fatalf("read %d events in %d pages, want 11 in 3", len(got), pages)
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("event %d = %d, want %d", i, got[i].ID, want[i].ID)
			}
		}
		if _, _, err := db.FindDeliveriesPage(ctx, catalog.DeliveryFilter{Cursor: f.Cursor}); muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "cursor: ") {
			t.Errorf("an events cursor read the alert history: %v, want invalid naming the cursor", err)
		}

		wantD, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Alert: "spool", Limit: 1000})
		if err != nil || len(wantD) != 13 {
			t.Fatalf("%d notifications (%v), want 13", len(wantD), err)
		}
		var gotD []muster.Delivery
		df, pages := catalog.DeliveryFilter{Alert: "spool", Limit: 5}, 0
		for {
			page, next, err := db.FindDeliveriesPage(ctx, df)
			if err != nil {
				t.Fatal(err)
			}
			gotD, pages = append(gotD, page...), pages+1
			if next == "" || pages > 10 {
				break
			}
			df.Cursor = next
			raise()
		}
		if len(gotD) != len(wantD) || pages != 3 {
			t.Fatalf("read %d notifications in %d pages, want %d in 3", len(gotD), pages, len(wantD))
		}
		for i := range wantD {
			if gotD[i].ID != wantD[i].ID {
				t.Fatalf("notification %d = %s, want %s", i, gotD[i].ID, wantD[i].ID)
			}
		}
	})
}

// PendingDeliveries reads deliveries again as they are now: at the
// operator's new address and with its new secret, and without those no
// longer pending.
func TestPendingDeliveriesAsTheyAreNow(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		backupAlertsHook(t, db)
		for _, id := range []string{"r1", "r2", "r3"} {
			db.UpsertRuns(ctx, web1, []catalog.RunUpload{report(id, "backup", muster.RunFailed, 1, clk.Now())})
		}
		if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueDeliveries(ctx, 10, 100)
		if err != nil || len(due) != 3 {
			t.Fatalf("due %+v %v, want three", due, err)
		}
		if err := db.RecordDeliveryAttempt(ctx, due[0].ID, catalog.DeliveryAttempt{}); err != nil {
			t.Fatal(err)
		}
		hook, secret := "https://hooks.example.com/b", "another-secret-of-16"
		if _, _, err := db.UpdateOperator(ctx, "hook", catalog.OperatorUpdate{Webhook: &hook, WebhookSecret: &secret}, nil, admin); err != nil {
			t.Fatal(err)
		}
		now, err := db.PendingDeliveries(ctx, []string{due[0].ID, due[1].ID, due[2].ID, "no-such-delivery"})
		if err != nil || len(now) != 2 {
			t.Fatalf("%+v %v, want the two still pending", now, err)
		}
		for _, d := range now {
			if (d.ID != due[1].ID && d.ID != due[2].ID) || d.Address != hook || d.Secret != secret || d.Channel != muster.ChannelWebhook {
				t.Errorf("%s to %s %s with secret %q; want %s or %s to %s with the new secret", d.ID, d.Channel, d.Address, d.Secret,
					due[1].ID, due[2].ID, hook)
			}
		}
		if none, err := db.PendingDeliveries(ctx, nil); err != nil || len(none) != 0 {
			t.Errorf("of none: %+v %v", none, err)
		}
	})
}

// backupAlertsHook applies a job backup on web1 and an alert that tells
// the operator hook, by webhook, of each of its failed runs.
func backupAlertsHook(t *testing.T, db *catalog.Catalog) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateOperator(ctx, muster.Operator{Name: "hook", Webhook: "https://hooks.example.com/a"}, "secret-of-at-least-16", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlert(ctx, muster.Alert{Name: "failed", Event: muster.EventRunFailed, Notify: []string{"hook"}}, admin); err != nil {
		t.Fatal(err)
	}
}
