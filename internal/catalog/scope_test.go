package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// scopedFleet is a catalog with two teams: web (group web: web1, web2;
// jobs web-*) and db (group db: db1; job db-backup). web-legacy is a web
// job an admin placed on db1. It returns the web team's scoped operator.
func scopedFleet(t *testing.T, e catalogtest.Engine) (*catalog.Catalog, muster.Actor, map[string]catalog.TargetIdentity) {
	t.Helper()
	db, _, _ := MustOpen(t, e)
	ctx := context.Background()
	ids := map[string]catalog.TargetIdentity{}
	for _, n := range []string{"web1", "web2", "db1"} {
		ids[n] = enlist(t, db, n)
	}
	for g, members := range map[string][]string{"web": {"web1", "web2"}, "db": {"db1"}} {
		if err := db.CreateGroup(ctx, g, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, g, members, false, admin); err != nil {
			t.Fatal(err)
		}
	}
	webBackup, dbBackup := job("web-backup"), job("db-backup")
	webBackup.Groups, dbBackup.Groups = []string{"web"}, []string{"db"}
	if _, err := db.ApplyJobs(ctx, []muster.Job{webBackup, dbBackup, job("web-legacy", "db1")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	scope, err := muster.ParseScopes("scopes", []string{"group:web", "job:web-*"})
	if err != nil {
		t.Fatal(err)
	}
	web := muster.Actor{Kind: muster.ActorKey, Name: "web-team", Role: catalog.RoleOperator, Source: "10.0.0.5", Scope: scope}
	return db, web, ids
}

func jobNames(t *testing.T, db *catalog.Catalog) []string {
	t.Helper()
	jobs, err := db.FindJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range jobs {
		out = append(out, j.Name)
	}
	return out
}

func TestScopedApply(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, web, _ := scopedFleet(t, e)
		ctx := context.Background()
		before := jobNames(t, db)
		onGroup := func(name string, groups ...string) muster.Job {
			j := job(name)
			j.Groups = groups
			return j
		}
		for _, tc := range []struct {
			name string
			jobs []muster.Job
		}{
			{"another team's job", []muster.Job{onGroup("web-new", "web"), onGroup("db-new", "db")}},
			{"a target outside its groups", []muster.Job{job("web-new", "db1")}},
			{"a group outside its scope", []muster.Job{onGroup("web-new", "web", "db")}},
		} {
			_, err := db.ApplyJobs(ctx, tc.jobs, catalog.ApplyOptions{}, web)
			if muster.ErrorCode(err) != muster.EFORBIDDEN {
				t.Errorf("%s: got %v, want EFORBIDDEN", tc.name, err)
			}
			if got := jobNames(t, db); !slices.Equal(got, before) {
				t.Errorf("%s: jobs %v after the refusal, want %v", tc.name, got, before)
			}
		}

		// In its scope it applies; what an admin placed may stay.
		legacy := job("web-legacy", "db1")
		legacy.Steps[0].Shell = "echo changed"
		res, err := db.ApplyJobs(ctx, []muster.Job{onGroup("web-new", "web"), legacy}, catalog.ApplyOptions{}, web)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changes[0].Action != muster.ActionCreate || res.Changes[1].Action != muster.ActionUpdate {
			t.Errorf("changes %+v, want web-new created and web-legacy updated", res.Changes)
		}
		j, err := db.FindJob(ctx, "web-new")
		if err != nil || j.CreatedBy != "web-team" || j.UpdatedBy != "web-team" {
			t.Errorf("web-new made by %q, changed by %q (%v); want web-team", j.CreatedBy, j.UpdatedBy, err)
		}

		// Prune deletes only what is in its scope: web-backup, not
		// db-backup.
		res, err = db.ApplyJobs(ctx, []muster.Job{onGroup("web-new", "web"), legacy}, catalog.ApplyOptions{Prune: true}, web)
		if err != nil {
			t.Fatal(err)
		}
		var deleted []string
		for _, c := range res.Changes {
			if c.Action == muster.ActionDelete {
				deleted = append(deleted, c.Job)
			}
		}
		if !slices.Equal(deleted, []string{"web-backup"}) {
			t.Errorf("pruned %v, want [web-backup]", deleted)
		}
		if got := jobNames(t, db); !slices.Equal(got, []string{"db-backup", "web-legacy", "web-new"}) {
			t.Errorf("jobs after the prune: %v", got)
		}
	})
}

func TestScopedChanges(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, web, _ := scopedFleet(t, e)
		ctx := context.Background()
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime}, admin); err != nil {
			t.Fatal(err)
		}
		before := audit(t, db, catalog.AuditFilter{Limit: 1})
		refused := map[string]error{}
		_, refused["start"] = db.StartJob(ctx, catalog.StartRequest{Job: "db-backup"}, web)
		_, refused["stop"] = db.StopJob(ctx, "db-backup", nil, web)
		_, refused["delete"] = db.DeleteJob(ctx, "db-backup", web)
		_, refused["disable"] = db.SetJobEnabled(ctx, "db-backup", false, web)
		_, refused["post to a job"] = db.Post(ctx, catalog.PostRequest{Operation: muster.OpInsert, Job: "db-backup"}, web)
		_, refused["post to every target"] = db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime}, web)
		_, refused["post to db1"] = db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime, Targets: []string{"web1", "db1"}}, web)
		_, refused["pause group db"] = db.SetPaused(ctx, nil, "db", true, web)
		_, refused["pause db1"] = db.SetPaused(ctx, []string{"db1"}, "", true, web)
		_, refused["retry on db1"] = db.RetryInstruction(ctx, "db1", 3, web)
		refused["delete on db1"] = db.DeleteInstruction(ctx, "db1", 3, web)
		_, refused["purge"] = db.PurgeRuns(ctx, catalog.PurgeRequest{Job: "db-backup", KeepPerJob: 1}, web)
		for what, err := range refused {
			if muster.ErrorCode(err) != muster.EFORBIDDEN {
				t.Errorf("%s: got %v, want EFORBIDDEN", what, err)
			}
		}
		if after := audit(t, db, catalog.AuditFilter{Limit: 1}); after[0].ID != before[0].ID {
			t.Errorf("a refused change was recorded: %+v", after[0])
		}

		// In its scope, it may.
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "web-backup"}, web); err != nil {
			t.Errorf("start web-backup: %v", err)
		}
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime, Targets: []string{"web1"}}, web); err != nil {
			t.Errorf("post SYNC-TIME to web1: %v", err)
		}
		if _, err := db.SetPaused(ctx, nil, "web", true, web); err != nil {
			t.Errorf("pause group web: %v", err)
		}
		if got := audit(t, db, catalog.AuditFilter{Actor: "web-team"}); !slices.Equal(actions(got), []string{muster.AuditJobStart, muster.AuditInstructionPost, muster.AuditTargetPause}) {
			t.Errorf("web-team's changes: %v", actions(got))
		}
	})
}

// Runs, instructions and events outside a scope are left out of what it
// reads.
func TestScopedReads(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, web, ids := scopedFleet(t, e)
		ctx := context.Background()
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime}, admin); err != nil {
			t.Fatal(err)
		}
		for target, jobName := range map[string]string{"web1": "web-backup", "db1": "db-backup"} {
			res, err := db.UpsertRuns(ctx, ids[target], []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: jobName, RunID: "r-" + target,
				Status: muster.RunFailed, Trigger: "operator", StartedAt: db.Now()}}})
			if err != nil || !res[0].OK {
				t.Fatalf("upload %s: %+v, %v", target, res, err)
			}
			if _, err := db.RecordTargetEvents(ctx, ids[target], []catalog.TargetEvent{{ID: 1, Name: muster.EventClockSkew,
				Severity: muster.SeverityWarning, Message: "skewed", At: db.Now()}}); err != nil {
				t.Fatal(err)
			}
		}

		runs, err := db.FindRuns(ctx, catalog.RunFilter{Scope: web.Scope, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs[0].Job != "web-backup" {
			t.Errorf("runs in scope: %+v, want web-backup's only", runs)
		}
		if runs, _ := db.FindRuns(ctx, catalog.RunFilter{Runs: []muster.RunRef{{Target: "db1", RunID: "r-db1"}}, Scope: web.Scope}); len(runs) != 0 {
			t.Errorf("db1's run by its id, in scope: %+v", runs)
		}

		ins, err := db.FindInstructions(ctx, catalog.InstructionFilter{Scope: web.Scope})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, in := range ins {
			seen = append(seen, string(in.Operation)+" "+in.Job+"@"+in.Target)
		}
		want := []string{"INSERT web-backup@web1", "SYNC-TIME @web1", "INSERT web-backup@web2", "SYNC-TIME @web2", "INSERT web-legacy@db1"}
		slices.Sort(seen)
		slices.Sort(want)
		if !slices.Equal(seen, want) {
			t.Errorf("instructions in scope: %v, want %v", seen, want)
		}

		events, err := db.FindEvents(ctx, catalog.EventFilter{Scope: web.Scope, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Target == "db1" && ev.Job != "web-legacy" || ev.Job == "db-backup" {
				t.Errorf("event outside the scope: %+v", ev)
			}
		}
		if !slices.ContainsFunc(events, func(ev muster.Event) bool { return ev.Target == "web1" && ev.Name == muster.EventClockSkew }) ||
			!slices.ContainsFunc(events, func(ev muster.Event) bool { return ev.Job == "web-backup" }) {
			t.Errorf("events in scope: %+v, want web1's clock skew and web-backup's failure", events)
		}
	})
}

// A key scoped to a group keeps covering the group when the group is
// renamed: its scope follows the new name. Left naming the old one, it
// would cover nothing, and then, once a new group took the old name, the
// members of a group its holders were never given.
func TestKeyScopeFollowsARenamedGroup(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := scopedFleet(t, e)
		ctx := context.Background()
		scope, err := muster.ParseScopes("scopes", []string{"group:web", "job:web-*"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "web-team", Role: catalog.RoleOperator, Scope: scope}, "hash-web-team", admin); err != nil {
			t.Fatal(err)
		}
		if err := db.RenameGroup(ctx, "web", "frontend", admin); err != nil {
			t.Fatal(err)
		}
		k, err := db.AuthenticateAPIKey(ctx, "hash-web-team")
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Scope.Strings(); !slices.Equal(got, []string{"group:frontend", "job:web-*"}) {
			t.Errorf("the key's scopes after the rename: %v, want [group:frontend job:web-*]", got)
		}
		// A new group under the old name is not the key's.
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		if k, _ := db.AuthenticateAPIKey(ctx, "hash-web-team"); slices.Contains(k.Scope.Strings(), "group:web") {
			t.Errorf("the key covers the new group web: %v", k.Scope.Strings())
		}
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, e := range entries {
			if e.Action == muster.AuditGroupRename {
				lines = append(lines, e.Changes...)
			}
		}
		if !slices.Contains(lines, "API key web-team: its scope group:web now names group:frontend") {
			t.Errorf("the rename's audit lines %q, want the key's scope named", lines)
		}
	})
}

// A group an active key's scope names is not deleted: a group made later
// under its name would be the key's, its holders given targets they never
// were. Once the key is revoked the group goes.
func TestGroupInAKeysScopeStays(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := scopedFleet(t, e)
		ctx := context.Background()
		if err := db.CreateGroup(ctx, "stage", admin); err != nil {
			t.Fatal(err)
		}
		scope, err := muster.ParseScopes("scopes", []string{"group:stage"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "stage-team", Role: catalog.RoleOperator, Scope: scope}, "hash-stage", admin); err != nil {
			t.Fatal(err)
		}
		err = db.DeleteGroup(ctx, "stage", admin)
		if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(muster.ErrorMessage(err), "stage-team") {
			t.Fatalf("deleting a group a key's scope names: %v, want %s naming the key", err, muster.EPRECONDITION)
		}
		if groups, err := db.FindGroups(ctx); err != nil || !slices.ContainsFunc(groups, func(g muster.Group) bool { return g.Name == "stage" }) {
			t.Fatalf("groups after the refusal: %v, %v; want stage kept", groups, err)
		}
		if entries := audit(t, db, catalog.AuditFilter{}); slices.Contains(actions(entries), muster.AuditGroupDelete) {
			t.Errorf("the refused deletion is in the audit log: %v", actions(entries))
		}
		if _, err := db.RevokeAPIKey(ctx, "stage-team", admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteGroup(ctx, "stage", admin); err != nil {
			t.Errorf("deleting the group once its key is revoked: %v", err)
		}
	})
}

// TestKeyScopeNamesAGroupThatExists: a scope naming no group is refused,
// since the key would otherwise cover whatever group is later given that
// name (and a misspelt group would leave the team a key that sees nothing),
// and a refused key is not stored.
func TestKeyScopeNamesAGroupThatExists(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := scopedFleet(t, e)
		ctx := context.Background()
		scope, err := muster.ParseScopes("scopes", []string{"job:web-*", "group:wbe"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "typo-team", Role: catalog.RoleOperator, Scope: scope}, "hash-typo", admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), `scope: group "wbe" does not exist`) {
			t.Fatalf("a key scoped to no group: %v, want %s naming the group", err, muster.EINVALID)
		}
		keys, err := db.FindAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(keys, func(k muster.APIKey) bool { return k.Name == "typo-team" }) {
			t.Errorf("the refused key was stored: %v", keys)
		}
		if err := db.CreateGroup(ctx, "wbe", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "typo-team", Role: catalog.RoleOperator, Scope: scope}, "hash-typo", admin); err != nil {
			t.Errorf("the same key once the group exists: %v", err)
		}
	})
}
