package e2e_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// auditActions lists what the audit log holds, oldest first, each as
// "action by actor-kind actor".
func auditActions(t *testing.T, env *testenv.Env, f httpapi.AuditFilter) []string {
	t.Helper()
	entries, err := env.Client.Audit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(entries) {
		out = append(out, e.Action+" by "+e.Actor.Kind+" "+e.Actor.Name)
	}
	return out
}

// A target is the actor of its own enlistment and defection, recorded
// with the address it came from; the master's retention deletes entries
// older than --audit-max-age and keeps the rest.
func TestAuditOfTargetsAndRetention(t *testing.T) {
	clk := &testenv.Clock{}
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) {
		c.Now, c.AuditMaxAge, c.HistoryInterval = clk.Now, 30*24*time.Hour, 50*time.Millisecond
	}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hi", "web1"))
	settled(t, env) // the daemon runs, and can be told to defect
	if _, err := agent.Defect(ctx, targetCfg(env, "web1"), false); err != nil {
		t.Fatal(err)
	}
	waitExit(t, env.Target("web1"))

	want := []string{muster.AuditTokenCreate + " by key admin", muster.AuditTargetEnlist + " by target web1",
		muster.AuditJobCreate + " by key admin", muster.AuditTargetDefect + " by target web1"}
	if got := auditActions(t, env, httpapi.AuditFilter{Target: "web1"}); !slices.Equal(got, want) {
		t.Fatalf("the audit log of web1: %q, want %q", got, want)
	}
	entries, err := env.Client.Audit(ctx, httpapi.AuditFilter{Actor: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Actor.Source != "127.0.0.1" || e.Actor.Role != "" {
			t.Errorf("%s by %+v, want from 127.0.0.1 and no role", e.Action, e.Actor)
		}
	}

	// A month on, only what was done since is kept.
	clk.Advance(31 * 24 * time.Hour)
	if err := env.Client.CreateGroup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "retention to delete the month-old entries", func() bool {
		return slices.Equal(auditActions(t, env, httpapi.AuditFilter{}), []string{muster.AuditGroupCreate + " by key admin"})
	})
}
