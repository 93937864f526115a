package catalog_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// keyState returns the state of the named key as FindAPIKeys lists it, or
// "" when it is not listed.
func keyState(t *testing.T, db *catalog.Catalog, name string) string {
	t.Helper()
	keys, err := db.FindAPIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == name {
			return k.State
		}
	}
	return ""
}

func TestAPIKeys(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		scope, err := muster.ParseScopes("scopes", []string{"group:web", "job:web-*"})
		if err != nil {
			t.Fatal(err)
		}
		k, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "web-team", Role: catalog.RoleOperator, Scope: scope, TTL: 24 * time.Hour}, "hash-web", admin)
		if err != nil {
			t.Fatal(err)
		}
		if k.State != muster.KeyActive || k.CreatedBy != "admin" || k.ExpiresAt == nil || !k.ExpiresAt.Equal(clk.Now().Add(24*time.Hour)) {
			t.Errorf("created key = %+v", k)
		}
		id, err := db.AuthenticateAPIKey(ctx, "hash-web")
		if err != nil {
			t.Fatal(err)
		}
		if id.Name != "web-team" || id.Role != catalog.RoleOperator || !id.Scope.HasJob("web-backup") || id.Scope.HasJob("db-backup") || !id.Scope.HasGroup("web") {
			t.Errorf("identity = %+v", id)
		}

		t.Run("an unknown key is refused", func(t *testing.T) {
			if _, err := db.AuthenticateAPIKey(ctx, "nope"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("got %v, want EUNAUTHORIZED", err)
			}
		})
		t.Run("an active name is taken", func(t *testing.T) {
			_, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "web-team", Role: catalog.RoleReader}, "hash-other", admin)
			if muster.ErrorCode(err) != muster.ECONFLICT {
				t.Errorf("got %v, want ECONFLICT", err)
			}
		})
		t.Run("bad keys are refused and leave nothing", func(t *testing.T) {
			for _, tc := range []struct {
				name string
				key  catalog.NewAPIKey
				rule string
			}{
				{"role", catalog.NewAPIKey{Name: "x", Role: "root"}, "role:"},
				{"name", catalog.NewAPIKey{Name: "a b", Role: catalog.RoleReader}, "name:"},
				{"scoped admin", catalog.NewAPIKey{Name: "x", Role: catalog.RoleAdmin, Scope: scope}, "scope:"},
				{"short ttl", catalog.NewAPIKey{Name: "x", Role: catalog.RoleReader, TTL: time.Second}, "ttl:"},
				{"negative ttl", catalog.NewAPIKey{Name: "x", Role: catalog.RoleReader, TTL: -time.Hour}, "ttl:"},
			} {
				_, err := db.CreateAPIKey(ctx, tc.key, "hash-"+tc.name, admin)
				if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), tc.rule) {
					t.Errorf("%s: got %v, want EINVALID naming %s", tc.name, err, tc.rule)
				}
				if _, err := db.AuthenticateAPIKey(ctx, "hash-"+tc.name); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
					t.Errorf("%s: the refused key authenticates: %v", tc.name, err)
				}
			}
		})
		t.Run("an expired key is refused, saying so", func(t *testing.T) {
			if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "brief", Role: catalog.RoleReader, TTL: time.Hour}, "hash-brief", admin); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Hour)
			_, err := db.AuthenticateAPIKey(ctx, "hash-brief")
			if muster.ErrorCode(err) != muster.EUNAUTHORIZED || !strings.Contains(muster.ErrorMessage(err), `API key "brief" expired at`) {
				t.Errorf("got %v, want EUNAUTHORIZED saying it expired", err)
			}
			if got := keyState(t, db, "brief"); got != muster.KeyExpired {
				t.Errorf("state = %q, want expired", got)
			}
			// Its name is free for a new key.
			if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "brief", Role: catalog.RoleReader}, "hash-brief2", admin); err != nil {
				t.Fatal(err)
			}
			if _, err := db.AuthenticateAPIKey(ctx, "hash-brief2"); err != nil {
				t.Errorf("the new key: %v", err)
			}
		})
		t.Run("a revoked key is refused, saying so", func(t *testing.T) {
			k, err := db.RevokeAPIKey(ctx, "web-team", admin)
			if err != nil {
				t.Fatal(err)
			}
			if k.State != muster.KeyRevoked || k.RevokedBy != "admin" {
				t.Errorf("revoked key = %+v", k)
			}
			_, err = db.AuthenticateAPIKey(ctx, "hash-web")
			if muster.ErrorCode(err) != muster.EUNAUTHORIZED || !strings.Contains(muster.ErrorMessage(err), `API key "web-team" was revoked at`) {
				t.Errorf("got %v, want EUNAUTHORIZED saying it was revoked", err)
			}
			if _, err := db.RevokeAPIKey(ctx, "web-team", admin); muster.ErrorCode(err) != muster.EPRECONDITION {
				t.Errorf("revoking twice: got %v, want EPRECONDITION", err)
			}
			if _, err := db.RevokeAPIKey(ctx, "nobody", admin); muster.ErrorCode(err) != muster.ENOTFOUND {
				t.Errorf("revoking no key: got %v, want ENOTFOUND", err)
			}
		})
	})
}

// The last admin key that has not expired cannot be revoked: the master
// would have nobody to manage it.
func TestLastAdminKeyStays(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		for _, k := range []catalog.NewAPIKey{
			{Name: "admin", Role: catalog.RoleAdmin},
			{Name: "temp-admin", Role: catalog.RoleAdmin, TTL: time.Hour},
			{Name: "ops", Role: catalog.RoleOperator},
		} {
			if _, err := db.CreateAPIKey(ctx, k, "hash-"+k.Name, admin); err != nil {
				t.Fatal(err)
			}
		}
		// temp-admin is another admin while it lasts.
		if _, err := db.RevokeAPIKey(ctx, "ops", admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Hour)
		_, err := db.RevokeAPIKey(ctx, "admin", admin)
		if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(muster.ErrorMessage(err), "last admin key that has not expired") {
			t.Fatalf("revoking the last unexpired admin key: got %v, want EPRECONDITION saying why", err)
		}
		if got := keyState(t, db, "admin"); got != muster.KeyActive {
			t.Errorf("after the refusal, admin is %q", got)
		}
		// An expired admin key may go.
		if _, err := db.RevokeAPIKey(ctx, "temp-admin", admin); err != nil {
			t.Errorf("revoking an expired admin key: %v", err)
		}
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "admin2", Role: catalog.RoleAdmin}, "hash-admin2", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RevokeAPIKey(ctx, "admin", admin); err != nil {
			t.Errorf("revoking admin with admin2 left: %v", err)
		}
		// The admin key is reset as the master's --reset-admin-token does.
		if err := db.ResetAdminKey(ctx, "hash-reset", muster.Actor{Kind: muster.ActorMaster, Name: "m1"}); err != nil {
			t.Fatal(err)
		}
		if id, err := db.AuthenticateAPIKey(ctx, "hash-reset"); err != nil || id.Name != "admin" || id.Role != catalog.RoleAdmin {
			t.Errorf("reset admin key: %+v, %v", id, err)
		}
		if _, err := db.AuthenticateAPIKey(ctx, "hash-admin"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Errorf("the old admin secret: got %v, want EUNAUTHORIZED", err)
		}
	})
}

// Two masters revoking the last two admin keys at once: one wins, and the
// other sees its revocation and refuses.
func TestSharedLastAdminKey(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	for _, name := range []string{"admin1", "admin2"} {
		if _, err := a.CreateAPIKey(ctx, catalog.NewAPIKey{Name: name, Role: catalog.RoleAdmin}, "hash-"+name, admin); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 10
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, db := range []*catalog.Catalog{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.RevokeAPIKey(ctx, []string{"admin1", "admin2"}[i], admin)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case muster.ErrorCode(err) != muster.EPRECONDITION:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d revocations succeeded (%v), want exactly 1", round, ok, errs)
		}
		// Give both back for the next round.
		for _, name := range []string{"admin1", "admin2"} {
			if keyState(t, a, name) == muster.KeyRevoked {
				if _, err := a.CreateAPIKey(ctx, catalog.NewAPIKey{Name: name, Role: catalog.RoleAdmin}, "hash-"+name+"-"+string(rune('a'+round)), admin); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A key's last use is written at most once per KeyUseGranularity, not on
// every request, and only moves forward.
func TestKeyLastUseIsCoalesced(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ci", Role: catalog.RoleOperator}, "hash-ci", admin); err != nil {
			t.Fatal(err)
		}
		lastUsed := func() *time.Time {
			t.Helper()
			keys, err := db.FindAPIKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.Name == "ci" {
					return k.LastUsedAt
				}
			}
			t.Fatal("key ci is not listed")
			return nil
		}
		use := func(n int) {
			t.Helper()
			for range n {
				if _, err := db.AuthenticateAPIKey(ctx, "hash-ci"); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.FlushKeyUses(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := lastUsed(); got != nil {
			t.Fatalf("a new key was last used at %v", got)
		}
		first := clk.Now()
		use(1)
		if got := lastUsed(); got == nil || !got.Equal(first) {
			t.Fatalf("after one use, last used %v, want %v", got, first)
		}
		// Within the minute, uses write nothing: the stored time stays.
		clk.Add(keyUseWithin)
		use(50)
		if got := lastUsed(); got == nil || !got.Equal(first) {
			t.Errorf("50 uses within the minute: last used %v, want it left at %v", got, first)
		}
		// A minute on, the next use is written.
		clk.Add(catalog.KeyUseGranularity - keyUseWithin)
		later := clk.Now()
		use(3)
		if got := lastUsed(); got == nil || !got.Equal(later) {
			t.Errorf("a minute on: last used %v, want %v", got, later)
		}
	})
}

// keyUseWithin is a time within KeyUseGranularity.
const keyUseWithin = 30 * time.Second

// Two masters note uses of one key: each writes what it saw, and the
// stored last use only moves forward, whichever writes last.
func TestSharedKeyLastUse(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	if _, err := a.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ci", Role: catalog.RoleOperator}, "hash-ci", admin); err != nil {
		t.Fatal(err)
	}
	early := clk.Now()
	if _, err := a.AuthenticateAPIKey(ctx, "hash-ci"); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Second)
	late := clk.Now()
	if _, err := b.AuthenticateAPIKey(ctx, "hash-ci"); err != nil {
		t.Fatal(err)
	}
	// The later use is written first; the earlier one must not undo it.
	for _, db := range []*catalog.Catalog{b, a} {
		if err := db.FlushKeyUses(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := b.FindAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(late) {
		t.Errorf("last used %v, want %v (not the earlier %v)", keys[0].LastUsedAt, late, early)
	}
}
