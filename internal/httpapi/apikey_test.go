package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// keyClient creates a key through the admin's client and returns a client
// that uses it, and its secret.
func keyClient(t *testing.T, env *testenv.Env, req httpapi.KeyRequest) (*httpapi.Client, string) {
	t.Helper()
	res, err := env.Client.CreateAPIKey(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Key, "mat_") || res.Name != req.Name || res.Role != req.Role {
		t.Fatalf("created key %+v", res)
	}
	c, err := httpapi.NewClient(env.Master.URL, res.Key, env.Master.CA.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return c, res.Key
}

// wantRefusal checks an error's code and that its message says what it
// must.
func wantRefusal(t *testing.T, what string, err error, code string, says ...string) {
	t.Helper()
	if muster.ErrorCode(err) != code {
		t.Errorf("%s: got %v, want %s", what, err, code)
		return
	}
	for _, s := range says {
		if !strings.Contains(muster.ErrorMessage(err), s) {
			t.Errorf("%s: %q does not say %q", what, muster.ErrorMessage(err), s)
		}
	}
}

func TestKeyRefusals(t *testing.T) {
	clk := &testenv.Clock{}
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) { c.Now = clk.Now }})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}

	reader, secret := keyClient(t, env, httpapi.KeyRequest{Name: "viewer", Role: catalog.RoleReader})
	if ts, err := reader.Targets(ctx, ""); err != nil || len(ts) != 1 {
		t.Errorf("the reader lists targets: %v, %v", ts, err)
	}
	_, err := reader.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}})
	wantRefusal(t, "a reader's apply", err, muster.EFORBIDDEN, "needs the operator role", `API key "viewer" has the reader role`,
		"`muster apikey create NAME --role operator`")
	if _, err := env.Client.Job(ctx, "report"); muster.ErrorCode(err) != muster.ENOTFOUND {
		t.Errorf("the refused apply made the job: %v", err)
	}
	_, err = reader.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "x", Role: catalog.RoleAdmin})
	wantRefusal(t, "a reader making a key", err, muster.EFORBIDDEN, "needs the admin role")

	brief, _ := keyClient(t, env, httpapi.KeyRequest{Name: "brief", Role: catalog.RoleOperator, TTLSeconds: 3600})
	if _, err := brief.Jobs(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	_, err = brief.Jobs(ctx)
	wantRefusal(t, "an expired key", err, muster.EUNAUTHORIZED, `API key "brief" expired at`)

	if _, err := env.Client.RevokeAPIKey(ctx, "viewer"); err != nil {
		t.Fatal(err)
	}
	_, err = reader.Targets(ctx, "")
	wantRefusal(t, "a revoked key", err, muster.EUNAUTHORIZED, `API key "viewer" was revoked at`, "by admin")

	_, err = env.Client.RevokeAPIKey(ctx, "admin")
	wantRefusal(t, "revoking the last admin key", err, muster.EPRECONDITION, "last admin key that has not expired")

	_, err = env.Client.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "team", Role: catalog.RoleAdmin, Scopes: []string{"group:web"}})
	wantRefusal(t, "a scoped admin key", err, muster.EINVALID, "scope:")
	_, err = env.Client.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "team", Role: catalog.RoleOperator, Scopes: []string{"target:web1"}})
	wantRefusal(t, "an unknown kind of scope", err, muster.EINVALID, `scopes: "target:web1" is not a scope`)

	keys, err := env.Client.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, k := range keys {
		states[k.Name] = k.State
		if k.Name == "admin" && (k.LastUsedAt == nil || k.CreatedBy != env.Master.Self().Name) {
			t.Errorf("the admin key: %+v, want it used, and made by the master", k)
		}
	}
	want := map[string]string{"admin": muster.KeyActive, "viewer": muster.KeyRevoked, "brief": muster.KeyExpired}
	for name, state := range want {
		if states[name] != state {
			t.Errorf("key %s is %q, want %q", name, states[name], state)
		}
	}
	if len(states) != len(want) {
		t.Errorf("keys %v, want %v", states, want)
	}
	// Secrets are kept hashed: neither the catalog's file nor its
	// write-ahead log holds one, nor does the audit log.
	files, err := filepath.Glob(filepath.Join(env.Dir, "master", master.CatalogFile+"*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("catalog files: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{secret, env.Master.AdminToken} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a key's secret", filepath.Base(f))
			}
		}
	}
	if !slices.ContainsFunc(files, func(f string) bool {
		return bytes.Contains(mustRead(t, f), []byte(pki.HashSecret(secret)))
	}) {
		t.Errorf("no catalog file holds the key's hash: the check above would pass vacuously")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A scoped operator key acts on its team's jobs and targets only.
func TestScopedKey(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	for group, target := range map[string]string{"web": "web1", "db": "web2"} {
		if err := env.Client.CreateGroup(ctx, group); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.GroupMembers(ctx, group, []string{target}, false); err != nil {
			t.Fatal(err)
		}
	}
	var jobs []muster.Job
	for name, group := range map[string]string{"web-report": "web", "db-report": "db"} {
		j := muster.NewJob()
		j.Name, j.Groups, j.Steps = name, []string{group}, []muster.Step{{Name: "s", Shell: "true"}}
		jobs = append(jobs, j)
	}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	web, _ := keyClient(t, env, httpapi.KeyRequest{Name: "web-team", Role: catalog.RoleOperator, Scopes: []string{"group:web", "job:web-*"}})

	if _, err := web.StartJob(ctx, "web-report", httpapi.StartBody{}); err != nil {
		t.Errorf("starting its own job: %v", err)
	}
	_, err := web.StartJob(ctx, "db-report", httpapi.StartBody{})
	wantRefusal(t, "starting another team's job", err, muster.EFORBIDDEN, `job "db-report" is outside the scope of API key "web-team" (group:web, job:web-*)`)
	_, err = web.Job(ctx, "db-report")
	wantRefusal(t, "reading another team's job", err, muster.EFORBIDDEN, `job "db-report" is outside the scope`)
	_, err = web.Target(ctx, "web2")
	wantRefusal(t, "reading a target outside its groups", err, muster.EFORBIDDEN, `target "web2" is outside the scope`)
	_, err = web.Target(ctx, "nosuch")
	wantRefusal(t, "reading a target that does not exist", err, muster.EFORBIDDEN, `target "nosuch" is outside the scope`)
	_, err = web.Operators(ctx)
	wantRefusal(t, "reading operators", err, muster.EFORBIDDEN, "open only to keys without scopes")

	jl, err := web.Jobs(ctx)
	if err != nil || len(jl) != 1 || jl[0].Name != "web-report" {
		t.Errorf("its jobs: %v, %v; want web-report only", jl, err)
	}
	tl, err := web.Targets(ctx, "")
	if err != nil || len(tl) != 1 || tl[0].Name != "web1" {
		t.Errorf("its targets: %v, %v; want web1 only", tl, err)
	}
	entries, err := env.Client.Audit(ctx, httpapi.AuditFilter{Actor: "web-team"})
	if err != nil || len(entries) != 1 || entries[0].Action != muster.AuditJobStart || entries[0].Actor.Source != "127.0.0.1" {
		t.Errorf("web-team in the audit log: %+v, %v; want its one start, from 127.0.0.1", entries, err)
	}
}

// A ttl_seconds out of range is refused naming ttl_seconds, the field the
// request gave, however large: a count of seconds too large for a
// duration is not taken for what it wraps to.
func TestTTLSecondsOutOfRange(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	// 36028797018967568 seconds wrap, as nanoseconds in an int64, to one
	// hour.
	const wraps = 36028797018967568
	checked := 0
	for _, ttl := range []int64{-1, 1, 59, wraps} {
		_, err := env.Client.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "short", Role: catalog.RoleReader, TTLSeconds: ttl})
		wantRefusal(t, fmt.Sprintf("a key with ttl_seconds %d", ttl), err, muster.EINVALID, "ttl_seconds")
		_, err = env.Client.CreateLoginLink(ctx, httpapi.LoginLinkRequest{TTLSeconds: int(ttl)})
		wantRefusal(t, fmt.Sprintf("a login link with ttl_seconds %d", ttl), err, muster.EINVALID, "ttl_seconds")
		checked++
	}
	if checked != 4 {
		t.Fatalf("checked %d values, want 4", checked)
	}
	if keys, err := env.Client.APIKeys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("keys after the refusals: %v, %v; want only the admin key", keys, err)
	}
}
