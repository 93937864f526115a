package e2e_test

import (
	"context"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// A token made ahead for a replacement server, then revoked, is listed
// (never with its secret) until it is revoked, and enlists nothing after:
// the target is refused as for an expired token, told it was revoked and
// by whom.
func TestRevokedTokenIsRefusedAtEnlistment(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	tok := env.Token("web1")

	listed, err := env.Client.EnlistTokens(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Target != "web1" || listed[0].State != muster.TokenActive || listed[0].CreatedBy != "admin" {
		t.Fatalf("listed %+v, want web1's token, active, created by admin", listed)
	}
	revoked, err := env.Client.RevokeEnlistToken(ctx, listed[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.State != muster.TokenRevoked || revoked.RevokedBy != "admin" {
		t.Fatalf("revoked %+v, want revoked by admin", revoked)
	}

	_, err = agent.Enlist(ctx, agent.EnlistOptions{MasterURL: env.Master.URL, Token: tok, Name: "web1", DataDir: t.TempDir()})
	if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED || !strings.Contains(muster.ErrorMessage(err), "revoked at") ||
		!strings.Contains(muster.ErrorMessage(err), "by admin") {
		t.Fatalf("enlisting with the revoked token: %s (%v), want unauthorized, saying it was revoked by admin", got, err)
	}
	if ts, err := env.Client.Targets(ctx, ""); err != nil || len(ts) != 0 {
		t.Fatalf("targets after the refusal: %+v %v, want none", ts, err)
	}

	if got, err := env.Client.EnlistTokens(ctx, false); err != nil || len(got) != 0 {
		t.Errorf("tokens that can enlist after the revocation: %+v %v, want none", got, err)
	}
	if got, err := env.Client.EnlistTokens(ctx, true); err != nil || len(got) != 1 || got[0].State != muster.TokenRevoked {
		t.Errorf("every token kept after the revocation: %+v %v, want the one, revoked", got, err)
	}
	_, err = env.Client.RevokeEnlistToken(ctx, listed[0].ID)
	if got := muster.ErrorCode(err); got != muster.EPRECONDITION || !strings.Contains(muster.ErrorMessage(err), "already revoked") {
		t.Errorf("revoking it again: %s (%v), want precondition, already revoked", got, err)
	}
	_, err = env.Client.RevokeEnlistToken(ctx, listed[0].ID+1000)
	if got := muster.ErrorCode(err); got != muster.ENOTFOUND {
		t.Errorf("revoking an unknown token: %s (%v), want not found", got, err)
	}
	_, err = env.Client.RevokeTargetEnlistTokens(ctx, "web1")
	if got := muster.ErrorCode(err); got != muster.ENOTFOUND || !strings.Contains(muster.ErrorMessage(err), "web1") {
		t.Errorf("revoking web1's tokens when none can enlist: %s (%v), want not found naming web1", got, err)
	}

	entries, err := env.Client.Audit(ctx, httpapi.AuditFilter{Target: "web1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Action == muster.AuditTokenRevoke {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d token.revoke entries in the audit log, want 1", n)
	}
}

// A token revoked through one master is refused by another sharing its
// PostgreSQL catalog, at once.
func TestRevokedTokenIsRefusedByEveryMaster(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	shared := func(c *master.Config) { c.Store, c.SecretFile = url, secret }
	one := testenv.New(t, testenv.Options{Master: shared})
	two := testenv.Join(t, one, shared)
	ctx := context.Background()

	tok := one.Token("web1")
	got, err := two.Client.RevokeTargetEnlistTokens(ctx, "web1")
	if err != nil || len(got) != 1 {
		t.Fatalf("revoking web1's tokens through master 2: %+v %v, want one revoked", got, err)
	}
	_, err = agent.Enlist(ctx, agent.EnlistOptions{MasterURL: one.Master.URL, Token: tok, Name: "web1", DataDir: t.TempDir()})
	if code := muster.ErrorCode(err); code != muster.EUNAUTHORIZED || !strings.Contains(muster.ErrorMessage(err), "revoked") {
		t.Fatalf("enlisting through master 1 with the token revoked through master 2: %s (%v), want unauthorized, revoked", code, err)
	}
}
