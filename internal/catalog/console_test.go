package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// Console sign-in: a login link opens once, before it expires, into a
// session of its key in the link's role; sessions end when they expire,
// when they are signed out, and when their key is revoked.
func TestConsoleSessions(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		for name, role := range map[string]string{"boss": catalog.RoleAdmin, "viewer": catalog.RoleReader} {
			if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: name, Role: role}, "key-"+name, admin); err != nil {
				t.Fatal(err)
			}
		}
		boss, err := db.AuthenticateAPIKey(ctx, "key-boss")
		if err != nil {
			t.Fatal(err)
		}
		viewer, err := db.AuthenticateAPIKey(ctx, "key-viewer")
		if err != nil {
			t.Fatal(err)
		}

		t.Run("a link is never above its key", func(t *testing.T) {
			for _, tc := range []struct {
				name string
				by   catalog.KeyIdentity
				role string
				ttl  time.Duration
				code string
			}{
				{"reader asks for admin", viewer, catalog.RoleAdmin, time.Minute, muster.EFORBIDDEN},
				{"not a role", boss, "root", time.Minute, muster.EINVALID},
				{"too short", boss, catalog.RoleReader, time.Second, muster.EINVALID},
				{"too long", boss, catalog.RoleReader, 25 * time.Hour, muster.EINVALID},
			} {
				if _, err := db.CreateLoginLink(ctx, "link-"+tc.name, tc.by, tc.role, tc.ttl, admin); muster.ErrorCode(err) != tc.code {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
				}
				if _, _, err := db.OpenLoginLink(ctx, "link-"+tc.name, "s-"+tc.name, ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
					t.Errorf("%s: the refused link opens: %v", tc.name, err)
				}
			}
		})

		t.Run("a link opens once into a session in its role", func(t *testing.T) {
			expires, err := db.CreateLoginLink(ctx, "link-1", boss, catalog.RoleReader, 5*time.Minute, admin)
			if err != nil {
				t.Fatal(err)
			}
			if !expires.Equal(clk.Now().Add(5 * time.Minute)) {
				t.Errorf("link expires %s, want in 5m", expires)
			}
			// Looked at, twice, the link says whom it signs in as and
			// stays unspent.
			for i := range 2 {
				peek, until, err := db.LoginLink(ctx, "link-1")
				if err != nil || peek.Name != "boss" || peek.Role != catalog.RoleReader || !until.Equal(expires) {
					t.Fatalf("looking at the link, time %d: %+v until %s, %v; want boss as reader until %s", i+1, peek, until, err, expires)
				}
			}
			id, ends, err := db.OpenLoginLink(ctx, "link-1", "session-1", "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.LoginLink(ctx, "link-1"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("looking at the spent link: %v, want unauthorized", err)
			}
			if id.Name != "boss" || id.Role != catalog.RoleReader || !ends.Equal(clk.Now().Add(catalog.SessionTTL)) {
				t.Errorf("session %+v until %s, want boss as reader for %s", id, ends, catalog.SessionTTL)
			}
			if _, _, err := db.OpenLoginLink(ctx, "link-1", "session-2", ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("the link opened twice: %v", err)
			}
			got, err := db.AuthenticateSession(ctx, "session-1")
			if err != nil || got.ID != id.ID || got.Name != id.Name || got.Role != id.Role {
				t.Errorf("session-1 is %+v, %v; want %+v", got, err, id)
			}
			entries, err := db.FindAudit(ctx, catalog.AuditFilter{Actor: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			if entries[0].Action != muster.AuditLoginLinkCreate || entries[0].Object != "apikey boss" {
				t.Errorf("newest audit entry %+v, want the link's creation", entries[0])
			}
		})

		t.Run("an expired link does not open", func(t *testing.T) {
			if _, err := db.CreateLoginLink(ctx, "link-late", boss, "", time.Minute, admin); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			if _, _, err := db.OpenLoginLink(ctx, "link-late", "session-late", ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("an expired link opened: %v", err)
			}
		})

		t.Run("a session expires", func(t *testing.T) {
			if _, _, err := db.StartSession(ctx, "key-viewer", "session-v", ""); err != nil {
				t.Fatal(err)
			}
			clk.Add(catalog.SessionTTL - time.Second)
			if _, err := db.AuthenticateSession(ctx, "session-v"); err != nil {
				t.Fatalf("a second before it ends: %v", err)
			}
			clk.Add(time.Second)
			if _, err := db.AuthenticateSession(ctx, "session-v"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("an expired session: %v, want unauthorized", err)
			}
		})

		t.Run("signing out ends a session", func(t *testing.T) {
			if _, _, err := db.StartSession(ctx, "key-viewer", "session-out", ""); err != nil {
				t.Fatal(err)
			}
			if err := db.EndSession(ctx, "session-out"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.AuthenticateSession(ctx, "session-out"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a signed-out session: %v, want unauthorized", err)
			}
		})

		t.Run("revoking the key ends its sessions", func(t *testing.T) {
			if _, _, err := db.StartSession(ctx, "key-viewer", "session-r", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := db.RevokeAPIKey(ctx, "viewer", admin); err != nil {
				t.Fatal(err)
			}
			if _, err := db.AuthenticateSession(ctx, "session-r"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a revoked key's session: %v, want unauthorized", err)
			}
			if _, _, err := db.StartSession(ctx, "key-viewer", "session-r2", ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a revoked key signs in: %v", err)
			}
		})
	})
}

func TestFindTargetJobs(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		for _, name := range []string{"web1", "web2"} {
			enlist(t, db, name)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("both", "web1", "web2"), job("one", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		for target, want := range map[string][]string{"web1": {"both"}, "web2": {"both", "one"}} {
			jobs, err := db.FindTargetJobs(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, j.Name)
			}
			if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
				t.Errorf("%s runs %v, want %v", target, got, want)
			}
		}
		if _, err := db.FindTargetJobs(ctx, "nope"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("jobs of an unknown target: %v, want not found", err)
		}
		// The matrix reads definitions and outcomes apart.
		list, err := db.FindJobList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "both" || len(list[0].Outcomes) != 0 || len(list[0].Steps) != 1 {
			t.Errorf("job list %+v, want both and one, with their steps and without outcomes", list)
		}
		outcomes, err := db.FindOutcomes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pairs := map[string]bool{}
		for _, o := range outcomes {
			pairs[o.Job+"@"+o.Target] = o.LastRunID == ""
		}
		if len(outcomes) != 3 || !pairs["both@web1"] || !pairs["both@web2"] || !pairs["one@web2"] {
			t.Errorf("outcomes %+v, want both on web1 and web2 and one on web2, none run yet", outcomes)
		}
	})
}

// A session or login link belongs to the key it was made for, and to no
// key that comes after it: neither a new key given the name of a revoked
// one, nor the admin key given a new secret (--reset-admin-token), which
// is how an admin whose key leaked takes it back.
func TestConsoleSessionsDoNotOutliveTheirKey(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()

		t.Run("a new key of a revoked key's name", func(t *testing.T) {
			if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ci", Role: catalog.RoleOperator}, "key-ci-1", admin); err != nil {
				t.Fatal(err)
			}
			old, err := db.AuthenticateAPIKey(ctx, "key-ci-1")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.StartSession(ctx, "key-ci-1", "session-ci-1", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := db.CreateLoginLink(ctx, "link-ci-1", old, "", time.Hour, admin); err != nil {
				t.Fatal(err)
			}
			if _, err := db.RevokeAPIKey(ctx, "ci", admin); err != nil {
				t.Fatal(err)
			}
			if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ci", Role: catalog.RoleOperator}, "key-ci-2", admin); err != nil {
				t.Fatal(err)
			}
			if id, err := db.AuthenticateSession(ctx, "session-ci-1"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("the revoked key's session acts as the new key: %+v, %v; want unauthorized", id, err)
			}
			if id, _, err := db.OpenLoginLink(ctx, "link-ci-1", "session-ci-link", ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("the revoked key's login link opens as the new key: %+v, %v; want unauthorized", id, err)
			}
		})

		t.Run("the admin key given a new secret", func(t *testing.T) {
			if err := db.ResetAdminKey(ctx, "key-admin-1", admin); err != nil {
				t.Fatal(err)
			}
			boss, err := db.AuthenticateAPIKey(ctx, "key-admin-1")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.StartSession(ctx, "key-admin-1", "session-admin-1", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := db.CreateLoginLink(ctx, "link-admin-1", boss, "", time.Hour, admin); err != nil {
				t.Fatal(err)
			}
			if err := db.ResetAdminKey(ctx, "key-admin-2", admin); err != nil {
				t.Fatal(err)
			}
			if id, err := db.AuthenticateSession(ctx, "session-admin-1"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a session of the admin key's old secret: %+v, %v; want unauthorized", id, err)
			}
			if id, _, err := db.OpenLoginLink(ctx, "link-admin-1", "session-admin-link", ""); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
				t.Errorf("a login link of the admin key's old secret opens: %+v, %v; want unauthorized", id, err)
			}
			if _, _, err := db.StartSession(ctx, "key-admin-2", "session-admin-2", ""); err != nil {
				t.Errorf("the new secret signs in: %v", err)
			}
		})
	})
}
