package e2e_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// fastAlerts makes the master's detectors, dispatcher and retries quick.
func fastAlerts(c *master.Config) {
	c.Alerts.Retry = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}
	c.Alerts.DetectInterval = 20 * time.Millisecond
	c.Alerts.MaxIdle = 50 * time.Millisecond
	c.Alerts.NoSuccessGrace = time.Nanosecond
}

// clockedEnv starts targets and a master that runs on a clock the test
// moves, with quick alerts; more, if set, adjusts the master further.
func clockedEnv(t *testing.T, more func(*master.Config), targets ...string) (*testenv.Env, *testenv.Clock) {
	clock := &testenv.Clock{}
	env := testenv.New(t, testenv.Options{Targets: targets, Master: func(c *master.Config) {
		fastAlerts(c)
		c.Now = clock.Now
		if more != nil {
			more(c)
		}
	}})
	return env, clock
}

// webhookOperator creates an operator whose webhook is a new receiver, and
// returns the receiver and the secret the master made.
func webhookOperator(t *testing.T, env *testenv.Env, name string) (*testenv.WebhookReceiver, string) {
	t.Helper()
	hook := testenv.NewWebhookReceiver(t)
	op, err := env.Client.CreateOperator(context.Background(), httpapi.OperatorRequest{Name: name, Webhook: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op.WebhookSecret, "mws_") {
		t.Fatalf("operator %s: secret %q, want one made by the master", name, op.WebhookSecret)
	}
	return hook, op.WebhookSecret
}

func createAlert(t *testing.T, env *testenv.Env, req httpapi.AlertRequest) {
	t.Helper()
	if _, err := env.Client.CreateAlert(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// history returns an alert's notifications, newest first.
func history(t *testing.T, env *testenv.Env, alert string) []muster.Delivery {
	t.Helper()
	h, err := env.Client.AlertHistory(context.Background(), httpapi.AlertHistoryFilter{Alert: alert})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// eventsOf returns the events of one kind the master holds.
func eventsOf(t *testing.T, env *testenv.Env, name muster.EventName, target string) []muster.Event {
	t.Helper()
	evs, err := env.Client.Events(context.Background(), httpapi.EventFilter{Event: string(name), Target: target})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A failing job raises run_failed and step_failed on the master; an alert
// on run_failed POSTs a signed notification to its operator's webhook, and
// alerts whose filters do not match stay silent.
func TestRunFailureNotifiesASignedWebhook(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}, Master: fastAlerts})
	ctx := context.Background()
	hook, secret := webhookOperator(t, env, "oncall")
	apply(t, env, shellJob("backup", "echo dumping; exit 2", "web1", "web2"), shellJob("other", "true", "web1"))
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "backup-failed", Event: muster.EventRunFailed, Job: "backup", Target: "web1", Notify: []string{"oncall"}})
	createAlert(t, env, httpapi.AlertRequest{Name: "other-failed", Event: muster.EventRunFailed, Job: "other", Notify: []string{"oncall"}})
	createAlert(t, env, httpapi.AlertRequest{Name: "critical", Event: muster.EventAny, MinSeverity: muster.SeverityCritical, Notify: []string{"oncall"}})

	runs := startAndWait(t, env, "backup", "web1", "web2")
	var run muster.Run
	for _, r := range runs {
		if r.Target == "web1" {
			run = r
		}
	}
	if run.Status != muster.RunFailed {
		t.Fatalf("run %+v, want failed", run)
	}
	testenv.Eventually(t, wait, "a notification on the webhook", func() bool { return len(hook.Accepted()) >= 1 })

	req := hook.Accepted()[0]
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(req.Header.Get("Muster-Timestamp") + "."))
	mac.Write(req.Body)
	if got, want := req.Header.Get("Muster-Signature"), "v1="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("Muster-Signature %q, want %q", got, want)
	}
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"event": "run_failed", "severity": 3.0, "job": "backup", "target": "web1",
		"run_id": run.RunID, "alert": "backup-failed", "operator": "oncall"} {
		if body[k] != want {
			t.Errorf("body %s = %v, want %v", k, body[k], want)
		}
	}
	if body["delivery"] != req.Header.Get("Muster-Delivery") {
		t.Errorf("body delivery %v, header Muster-Delivery %q: want the same id", body["delivery"], req.Header.Get("Muster-Delivery"))
	}
	if msg, _ := body["message"].(string); !strings.Contains(msg, "exit code 2") {
		t.Errorf("message %q does not say why", msg)
	}
	// The master records the delivery once the webhook's reply is back,
	// which may be after the hook has the request.
	var h []muster.Delivery
	testenv.Eventually(t, wait, "the delivery's outcome in the history", func() bool {
		h = history(t, env, "backup-failed")
		return len(h) != 1 || h[0].Status != muster.DeliveryPending
	})
	if len(h) != 1 || h[0].Status != muster.DeliveryDelivered || h[0].Attempts != 1 || h[0].ID != req.Header.Get("Muster-Delivery") {
		t.Errorf("history %+v, want one delivery, delivered at the first attempt, with the header's id", h)
	}
	// The same dispatch matched every alert against the event.
	for _, alert := range []string{"other-failed", "critical"} {
		if h := history(t, env, alert); len(h) != 0 {
			t.Errorf("alert %s fired: %+v", alert, h)
		}
	}
	if n := len(hook.Requests()); n != 1 {
		t.Errorf("%d webhook requests, want 1 (web2's failure does not match)", n)
	}
	steps := eventsOf(t, env, muster.EventStepFailed, "")
	if len(steps) != 2 || steps[0].Severity != muster.SeverityWarning {
		t.Errorf("step_failed events %+v, want one per target", steps)
	}
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}
}

// A disabled alert fires for nothing until it is enabled again. A second
// alert on the same event, always enabled, shows when the master has
// matched an event against every alert.
func TestDisabledAlert(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: fastAlerts})
	ctx := context.Background()
	hook, _ := webhookOperator(t, env, "oncall")
	apply(t, env, shellJob("backup", "exit 2", "web1"))
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "backup-failed", Event: muster.EventRunFailed, Job: "backup", Notify: []string{"oncall"}})
	createAlert(t, env, httpapi.AlertRequest{Name: "witness", Event: muster.EventRunFailed, Notify: []string{muster.MSXOperator}})

	a, err := env.Client.SetAlertEnabled(ctx, "backup-failed", false)
	if err != nil || a.Enabled {
		t.Fatalf("disable: %+v, %v", a, err)
	}
	first := startAndWait(t, env, "backup")[0]
	testenv.Eventually(t, wait, "the first failure matched", func() bool { return len(history(t, env, "witness")) == 1 })
	if h := history(t, env, "backup-failed"); len(h) != 0 || len(hook.Requests()) != 0 {
		t.Fatalf("a disabled alert fired: %+v", h)
	}

	if a, err = env.Client.SetAlertEnabled(ctx, "backup-failed", true); err != nil || !a.Enabled {
		t.Fatalf("enable: %+v, %v", a, err)
	}
	second := startAndWait(t, env, "backup")[0]
	testenv.Eventually(t, wait, "a notification for the second failure", func() bool { return len(hook.Accepted()) == 1 })
	h := history(t, env, "backup-failed")
	if len(h) != 1 || h[0].Event.RunID != second.RunID {
		t.Errorf("history %+v, want one notification, for run %s (not %s)", h, second.RunID, first.RunID)
	}
	alerts, err := env.Client.Alerts(ctx)
	if err != nil || len(alerts) != 2 || !alerts[0].Enabled {
		t.Errorf("alerts %+v, %v; want backup-failed listed enabled", alerts, err)
	}
	if _, err := env.Client.SetAlertEnabled(ctx, "nope", false); muster.ErrorCode(err) != muster.ENOTFOUND {
		t.Errorf("disable an unknown alert: %v, want not found", err)
	}
}

// A webhook that fails is retried with the same delivery id until it
// takes the notification; a refusal fails the delivery at once; attempts
// are bounded; an operator without an address, or e-mail without an SMTP
// server, is recorded as failed.
func TestWebhookRetries(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: fastAlerts})
	ctx := context.Background()
	hook, _ := webhookOperator(t, env, "oncall")
	if _, err := env.Client.CreateOperator(ctx, httpapi.OperatorRequest{Name: "mail", Email: "dba@example.com"}); err != nil {
		t.Fatal(err)
	}
	apply(t, env, shellJob("flaky", "exit 1", "web1"))
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "flaky-failed", Event: muster.EventRunFailed, Notify: []string{"oncall", "mail", muster.MSXOperator}})

	fail := func(statuses ...int) muster.Delivery {
		t.Helper()
		hook.FailNext(statuses...)
		before := len(history(t, env, "flaky-failed"))
		startAndWait(t, env, "flaky")
		var d muster.Delivery
		testenv.Eventually(t, wait, "the webhook delivery settled", func() bool {
			h := history(t, env, "flaky-failed")
			for _, x := range h[:max(0, len(h)-before)] {
				if x.Channel == muster.ChannelWebhook && x.Status != muster.DeliveryPending {
					d = x
					return true
				}
			}
			return false
		})
		return d
	}
	t.Run("503 twice, then delivered", func(t *testing.T) {
		d := fail(http.StatusServiceUnavailable, http.StatusServiceUnavailable)
		if d.Status != muster.DeliveryDelivered || d.Attempts != 3 {
			t.Fatalf("delivery %+v, want delivered at the third attempt", d)
		}
		for _, r := range hook.Requests() {
			if r.Header.Get("Muster-Delivery") != d.ID {
				t.Errorf("an attempt carried delivery id %q, want %q", r.Header.Get("Muster-Delivery"), d.ID)
			}
		}
	})
	t.Run("out of attempts", func(t *testing.T) {
		d := fail(500, 500, 500)
		if d.Status != muster.DeliveryFailed || d.Attempts != 3 || !strings.Contains(d.LastError, "HTTP 500") {
			t.Errorf("delivery %+v, want failed after 3 attempts with HTTP 500", d)
		}
	})
	t.Run("refused", func(t *testing.T) {
		d := fail(http.StatusGone)
		if d.Status != muster.DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "HTTP 410") {
			t.Errorf("delivery %+v, want failed at once with HTTP 410", d)
		}
	})
	byChannel := map[string]muster.Delivery{}
	for _, d := range history(t, env, "flaky-failed") {
		byChannel[d.Channel] = d
	}
	if d := byChannel[muster.ChannelEmail]; d.Status != muster.DeliveryFailed || !strings.Contains(d.LastError, "no SMTP server") {
		t.Errorf("e-mail delivery %+v, want failed for want of an SMTP server", d)
	}
	if d := byChannel[muster.ChannelNone]; d.Operator != muster.MSXOperator || d.Status != muster.DeliveryFailed {
		t.Errorf("MSXOperator's delivery %+v, want failed: no address", d)
	}
}

// A delivery pending when the master stops is made after it starts again,
// with the same id.
func TestPendingDeliverySurvivesARestart(t *testing.T) {
	env, clock := clockedEnv(t, func(c *master.Config) { c.Alerts.Retry = []time.Duration{time.Hour} }, "web1")
	hook, _ := webhookOperator(t, env, "oncall")
	apply(t, env, shellJob("broken", "exit 3", "web1"))
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "broken-failed", Event: muster.EventRunFailed, Notify: []string{"oncall"}})
	hook.FailNext(http.StatusBadGateway)
	startAndWait(t, env, "broken")
	testenv.Eventually(t, wait, "a first, failed attempt", func() bool {
		h := history(t, env, "broken-failed")
		return len(h) == 1 && h[0].Attempts == 1
	})
	if h := history(t, env, "broken-failed"); h[0].Status != muster.DeliveryPending || h[0].NextAttemptAt == nil {
		t.Fatalf("delivery %+v, want pending with a next attempt", h[0])
	}
	env.RestartMaster()
	clock.Advance(time.Hour + time.Minute)
	testenv.Eventually(t, wait, "the delivery after the restart", func() bool {
		h := history(t, env, "broken-failed")
		return h[0].Status == muster.DeliveryDelivered
	})
	reqs := hook.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("Muster-Delivery") != reqs[1].Header.Get("Muster-Delivery") {
		t.Errorf("%d requests, want 2 with one delivery id", len(reqs))
	}
}

// E-mail goes through the master's SMTP server, over STARTTLS, with PLAIN
// authentication.
func TestEmailNotification(t *testing.T) {
	serverTLS, roots := testenv.LocalTLS(t)
	smtp := testenv.NewSMTPServer(t, testenv.SMTPOptions{TLS: serverTLS, Users: map[string]string{"muster": "s3cret-pass"}})
	passFile := filepath.Join(t.TempDir(), "smtp.pass")
	os.WriteFile(passFile, []byte("s3cret-pass\n"), 0o600)

	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) {
		fastAlerts(c)
		c.Alerts.SMTP = master.SMTPConfig{Addr: smtp.Addr, From: "muster@example.com", Username: "muster", PasswordFile: passFile, RootCAs: roots}
	}})
	ctx := context.Background()
	if _, err := env.Client.CreateOperator(ctx, httpapi.OperatorRequest{Name: "dba", Email: "dba@example.com"}); err != nil {
		t.Fatal(err)
	}
	apply(t, env, shellJob("vacuum", "echo no space left >&2; exit 28", "web1"))
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "vacuum-failed", Event: muster.EventRunFailed, Job: "vacuum", Notify: []string{"dba"}})
	startAndWait(t, env, "vacuum")
	testenv.Eventually(t, wait, "an e-mail", func() bool { return len(smtp.Mails()) == 1 })
	m := smtp.Mails()[0]
	if !m.TLS || m.User != "muster" || m.From != "muster@example.com" || len(m.To) != 1 || m.To[0] != "dba@example.com" {
		t.Errorf("mail envelope %+v", m)
	}
	for _, want := range []string{"Subject: [muster] run_failed (error) on web1: job vacuum", "exit code 28", "alert:    vacuum-failed"} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("the mail lacks %q:\n%s", want, m.Data)
		}
	}
	testenv.Eventually(t, wait, "the delivery recorded", func() bool {
		h := history(t, env, "vacuum-failed")
		return len(h) == 1 && h[0].Status == muster.DeliveryDelivered && h[0].Channel == muster.ChannelEmail
	})
}

// target_offline is raised when a target stops polling for three poll
// intervals by the master's clock, and target_online when it returns; an
// alert filtered on the target hears of that target only.
func TestTargetOfflineAndOnline(t *testing.T) {
	env, clock := clockedEnv(t, func(c *master.Config) { c.MaxPollHold = 200 * time.Millisecond }, "web1", "web2")
	hook, _ := webhookOperator(t, env, "oncall")
	for _, e := range []muster.EventName{muster.EventTargetOffline, muster.EventTargetOnline} {
		createAlert(t, env, httpapi.AlertRequest{Name: "web1-" + string(e), Event: e, Target: "web1", Notify: []string{"oncall"}})
	}
	env.Target("web1").Stop(t)
	clock.Advance(3*time.Minute + 10*time.Second)
	testenv.Eventually(t, wait, "target_offline for web1", func() bool {
		return len(eventsOf(t, env, muster.EventTargetOffline, "web1")) == 1
	})
	env.StartTarget("web1")
	testenv.Eventually(t, wait, "target_online for web1", func() bool {
		return len(eventsOf(t, env, muster.EventTargetOnline, "web1")) == 1
	})
	testenv.Eventually(t, wait, "both notifications", func() bool { return len(hook.Accepted()) == 2 })
	var got []string
	for _, r := range hook.Accepted() {
		var p map[string]any
		json.Unmarshal(r.Body, &p)
		got = append(got, p["event"].(string)+" "+p["target"].(string))
	}
	if strings.Join(got, ", ") != "target_offline web1, target_online web1" {
		t.Errorf("notifications %v", got)
	}
	if n := len(eventsOf(t, env, muster.EventTargetOffline, "web1")); n != 1 {
		t.Errorf("%d target_offline events for web1, want 1", n)
	}
}

// no_success fires when a scheduled job has gone without a successful run
// on a target for the alert's window, by the master's clock: once per
// stretch, and again after a success starts a new one.
func TestNoSuccess(t *testing.T) {
	env, clock := clockedEnv(t, nil, "web1")
	hook, _ := webhookOperator(t, env, "oncall")
	j := shellJob("nightly", "true", "web1")
	j.Schedules = []muster.Schedule{{Cron: "0 0 1 1 *"}} // not within the test
	apply(t, env, j)
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "nightly-stale", Event: muster.EventNoSuccess, Job: "nightly",
		Window: muster.Duration(2 * time.Hour), Notify: []string{"oncall"}})

	clock.Advance(3 * time.Hour)
	testenv.Eventually(t, wait, "no_success", func() bool { return len(eventsOf(t, env, muster.EventNoSuccess, "web1")) == 1 })
	e := eventsOf(t, env, muster.EventNoSuccess, "web1")[0]
	if e.Job != "nightly" || e.Window.Std() != 2*time.Hour || e.Severity != muster.SeverityCritical {
		t.Errorf("event %+v", e)
	}
	testenv.Eventually(t, wait, "the notification", func() bool { return len(hook.Accepted()) == 1 })

	if runs := startAndWait(t, env, "nightly"); runs[0].Status != muster.RunSucceeded {
		t.Fatalf("run %+v", runs[0])
	}
	if n := len(eventsOf(t, env, muster.EventNoSuccess, "web1")); n != 1 {
		t.Errorf("%d no_success events after many scans, want 1", n)
	}
	clock.Advance(3 * time.Hour)
	testenv.Eventually(t, wait, "a second no_success after the success", func() bool {
		return len(eventsOf(t, env, muster.EventNoSuccess, "web1")) == 2
	})
}
