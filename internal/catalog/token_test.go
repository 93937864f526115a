package catalog_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// alice is the admin who revokes tokens in these tests.
var alice = muster.Actor{Kind: muster.ActorKey, Name: "alice", Role: catalog.RoleAdmin, Source: "127.0.0.1"}

// tokenIDs returns the ids of the listed tokens of a target, oldest first.
func tokenIDs(t *testing.T, db *catalog.Catalog, target string, all bool) []int64 {
	t.Helper()
	toks, err := db.FindEnlistTokens(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, tok := range toks {
		if tok.Target == target {
			ids = append(ids, tok.ID)
		}
	}
	return ids
}

// tokenStates returns "target state" for each listed token.
func tokenStates(t *testing.T, db *catalog.Catalog, all bool) []string {
	t.Helper()
	toks, err := db.FindEnlistTokens(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tok := range toks {
		out = append(out, tok.Target+" "+tok.State)
	}
	return out
}

// A revoked token is refused at enlistment with the code an expired one
// gets, saying it was revoked and by whom; revoking a token that cannot
// enlist anyway is an error naming it.
func TestRevokeEnlistToken(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		sign := hourCerts(clk)
		for _, tok := range []struct{ hash, name string }{{"h1", "web1"}, {"h2", "web1"}, {"h3", "web2"}} {
			if _, err := db.CreateEnlistToken(ctx, tok.hash, tok.name, time.Hour, admin); err != nil {
				t.Fatal(err)
			}
		}
		web1 := tokenIDs(t, db, "web1", false)
		if len(web1) != 2 {
			t.Fatalf("web1 has tokens %v listed, want 2", web1)
		}
		toks, err := db.FindEnlistTokens(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := toks[0]; got.CreatedBy != "admin" || got.State != muster.TokenActive || !got.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("listed %+v, want an active token created by admin expiring in an hour", got)
		}

		revoked, err := db.RevokeEnlistToken(ctx, web1[0], alice)
		if err != nil {
			t.Fatal(err)
		}
		if revoked.State != muster.TokenRevoked || revoked.RevokedBy != "alice" || revoked.Target != "web1" {
			t.Fatalf("revoke returned %+v, want web1's token revoked by alice", revoked)
		}
		_, err = db.Enlist(ctx, catalog.Enlistment{TokenHash: "h1", Name: "web1", UID: "u1"}, sign)
		if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), "alice") {
			t.Fatalf("enlisting with a revoked token: %q (%v), want unauthorized, saying revoked by alice", got, err)
		}

		t.Run("again", func(t *testing.T) {
			_, err := db.RevokeEnlistToken(ctx, web1[0], alice)
			if got := muster.ErrorCode(err); got != muster.EPRECONDITION || !strings.Contains(err.Error(), fmt.Sprint(web1[0])) || !strings.Contains(err.Error(), "already revoked") {
				t.Fatalf("got %q (%v), want precondition naming the token, already revoked", got, err)
			}
		})
		t.Run("unknown", func(t *testing.T) {
			_, err := db.RevokeEnlistToken(ctx, 99999, alice)
			if got := muster.ErrorCode(err); got != muster.ENOTFOUND || !strings.Contains(err.Error(), "99999") {
				t.Fatalf("got %q (%v), want not found naming 99999", got, err)
			}
		})
		t.Run("used", func(t *testing.T) {
			if _, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h3", Name: "web2", UID: "u3"}, sign); err != nil {
				t.Fatal(err)
			}
			id := tokenIDs(t, db, "web2", true)[0]
			_, err := db.RevokeEnlistToken(ctx, id, alice)
			if got := muster.ErrorCode(err); got != muster.EPRECONDITION || !strings.Contains(err.Error(), "used") {
				t.Fatalf("got %q (%v), want precondition saying it was used", got, err)
			}
		})
		t.Run("by target", func(t *testing.T) {
			got, err := db.RevokeTargetEnlistTokens(ctx, "web1", alice)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != web1[1] || got[0].State != muster.TokenRevoked {
				t.Fatalf("revoked %+v, want web1's other token, id %d", got, web1[1])
			}
			_, err = db.Enlist(ctx, catalog.Enlistment{TokenHash: "h2", Name: "web1", UID: "u2"}, sign)
			if code := muster.ErrorCode(err); code != muster.EUNAUTHORIZED {
				t.Fatalf("enlisting with it: %q (%v), want unauthorized", code, err)
			}
			_, err = db.RevokeTargetEnlistTokens(ctx, "web1", alice)
			if code := muster.ErrorCode(err); code != muster.ENOTFOUND || !strings.Contains(err.Error(), "web1") {
				t.Fatalf("revoking again: %q (%v), want not found naming web1", code, err)
			}
		})
		t.Run("expired", func(t *testing.T) {
			if _, err := db.CreateEnlistToken(ctx, "h4", "web4", time.Minute, admin); err != nil {
				t.Fatal(err)
			}
			id := tokenIDs(t, db, "web4", false)[0]
			clk.Add(2 * time.Minute)
			_, err := db.RevokeEnlistToken(ctx, id, alice)
			if got := muster.ErrorCode(err); got != muster.EPRECONDITION || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("got %q (%v), want precondition saying it expired", got, err)
			}
		})
		t.Run("list", func(t *testing.T) {
			if got := tokenStates(t, db, false); len(got) != 0 {
				t.Fatalf("listed %q, want no token that can still enlist", got)
			}
			got := tokenStates(t, db, true)
			want := []string{"web1 revoked", "web1 revoked", "web2 used", "web4 expired"}
			if !slices.Equal(got, want) {
				t.Fatalf("listed with all %q, want %q", got, want)
			}
		})
		t.Run("audit", func(t *testing.T) {
			var revokes []muster.AuditEntry
			for _, e := range audit(t, db, catalog.AuditFilter{Target: "web1", Limit: 100}) {
				if e.Action == muster.AuditTokenRevoke {
					revokes = append(revokes, e)
				}
			}
			if len(revokes) != 2 || revokes[0].Name != "alice" {
				t.Fatalf("audit has %+v, want two token revocations by alice", revokes)
			}
		})
	})
}

// A token revoked on one master is refused by another sharing its
// catalog; a revocation racing an enlistment either wins, or finds the
// token used: never both.
func TestSharedEnlistTokenRevoked(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	sign := func(uid string) (catalog.IssuedCert, error) {
		return catalog.IssuedCert{Serial: "serial-" + uid, NotAfter: clk.Now().Add(time.Hour)}, nil
	}
	for round := range 10 {
		name := fmt.Sprintf("web%d", round)
		if _, err := a.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, admin); err != nil {
			t.Fatal(err)
		}
		id := tokenIDs(t, b, name, false)[0]
		var enlistErr, revokeErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, enlistErr = a.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name}, sign)
		}()
		go func() {
			defer wg.Done()
			_, revokeErr = b.RevokeEnlistToken(ctx, id, alice)
		}()
		wg.Wait()
		switch {
		case enlistErr == nil && muster.ErrorCode(revokeErr) == muster.EPRECONDITION:
		case revokeErr == nil && muster.ErrorCode(enlistErr) == muster.EUNAUTHORIZED:
			_, err := a.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid2-" + name}, sign)
			if got := muster.ErrorCode(err); got != muster.EUNAUTHORIZED || !strings.Contains(err.Error(), "revoked") {
				t.Fatalf("round %d: enlisting after the revocation: %q (%v), want unauthorized, revoked", round, got, err)
			}
		default:
			t.Fatalf("round %d: enlist %v, revoke %v; want exactly one to succeed", round, enlistErr, revokeErr)
		}
	}
}
