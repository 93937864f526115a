package e2e_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// An instruction a target cannot apply is forwarded as instruction_failed,
// naming the job, and an alert on it notifies.
func TestTargetForwardsInstructionFailed(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Master:  fastAlerts,
		Target: func(c *targetConfig) {
			c.FailInstruction = func(in agentproto.Instruction) error {
				if in.Job == "needs-proxy" {
					return errors.New("proxy backup_user is not defined on this target")
				}
				return nil
			}
		},
	})
	hook, _ := webhookOperator(t, env, "oncall")
	createAlert(t, env, httpapi.AlertRequest{Name: "blocked", Event: muster.EventInstructionFailed, Notify: []string{"oncall"}})
	apply(t, env, shellJob("needs-proxy", "true", "web1"))
	settled(t, env)
	testenv.Eventually(t, wait, "instruction_failed from web1", func() bool {
		return len(eventsOf(t, env, muster.EventInstructionFailed, "web1")) == 1
	})
	e := eventsOf(t, env, muster.EventInstructionFailed, "web1")[0]
	if e.Source != muster.SourceTarget || e.Job != "needs-proxy" || e.Severity != muster.SeverityError ||
		!strings.Contains(e.Message, "proxy backup_user is not defined") || !strings.Contains(e.Message, "(INSERT)") {
		t.Errorf("event %+v", e)
	}
	testenv.Eventually(t, wait, "the notification", func() bool { return len(hook.Accepted()) == 1 })
}

// A target whose clock is off the master's by more than max_clock_skew
// raises clock_skew once.
func TestClockSkewIsForwarded(t *testing.T) {
	clock := &testenv.Clock{}
	clock.Advance(time.Hour)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"},
		Master: func(c *master.Config) { fastAlerts(c); c.MaxPollHold = 200 * time.Millisecond }, // polls answer quickly
		Target: func(c *targetConfig) { c.Now = clock.Now }})
	testenv.Eventually(t, wait, "clock_skew from web1", func() bool {
		return len(eventsOf(t, env, muster.EventClockSkew, "web1")) == 1
	})
	e := eventsOf(t, env, muster.EventClockSkew, "web1")[0]
	if !strings.Contains(e.Message, "ahead of the master's") || e.Severity != muster.SeverityWarning {
		t.Errorf("event %+v", e)
	}
	seen := map[time.Time]bool{}
	testenv.Eventually(t, wait, "more polls", func() bool {
		if tg, err := env.Client.Target(context.Background(), "web1"); err == nil && tg.LastPoll != nil {
			seen[*tg.LastPoll] = true
		}
		return len(seen) >= 4
	})
	if n := len(eventsOf(t, env, muster.EventClockSkew, "web1")); n != 1 {
		t.Errorf("%d clock_skew events, want 1 while the skew lasts", n)
	}
}

// An error the target daemon logs is forwarded as agent_error: here the
// master refuses a run whose output is over its limit.
func TestAgentErrorIsForwarded(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: fastAlerts,
		Target: func(c *targetConfig) { c.Settings.OutputLimit = 8 << 20 }})
	apply(t, env, shellJob("loud", "head -c 5000000 /dev/zero | tr '\\0' x", "web1"))
	settled(t, env)
	res, err := env.Client.StartJob(context.Background(), "loud", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "agent_error from web1", func() bool {
		return len(eventsOf(t, env, muster.EventAgentError, "web1")) > 0
	})
	e := eventsOf(t, env, muster.EventAgentError, "web1")[0]
	if e.RunID != res.Runs[0].RunID || !strings.Contains(e.Message, "the master refused a run") || !strings.Contains(e.Message, "an attempt's output is at most") {
		t.Errorf("event %+v", e)
	}
}

// A renewal that fails while the master is down is retried by the target:
// it is handled, so only a target forwarding all events sends it, once the
// master can be reached.
func TestCertRenewalFailureIsForwardedWhenTheMasterReturns(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1", "web2"},
		Master:  shortCerts(3 * time.Second),
		Target: func(c *targetConfig) {
			if filepath.Base(c.DataDir) == "target-web1" {
				c.Settings.Events.Forward = agent.ForwardAll
			}
		},
	})
	ctx := context.Background()
	env.StopMaster()
	testenv.Eventually(t, wait, "a failed renewal kept on web1", func() bool {
		n, err := env.Target("web1").Main.PendingEvents(ctx)
		return err == nil && n > 0
	})
	env.RestartMaster()
	testenv.Eventually(t, 30*time.Second, "cert_renewal_failed from web1", func() bool {
		return len(eventsOf(t, env, muster.EventCertRenewalFailed, "web1")) > 0
	})
	if e := eventsOf(t, env, muster.EventCertRenewalFailed, "web1")[0]; !strings.Contains(e.Message, "certificate renewal failed") {
		t.Errorf("event %+v", e)
	}
	testenv.Eventually(t, wait, "web2's handled event dropped", func() bool {
		n, err := env.Target("web2").Main.PendingEvents(ctx)
		return err == nil && n == 0
	})
	if evs := eventsOf(t, env, muster.EventCertRenewalFailed, "web2"); len(evs) != 0 {
		t.Errorf("web2 forwards unhandled events only, but sent %+v", evs)
	}
}
