package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

// The audit log's promise, route by route: every change made through the
// API is recorded once, under the key that made it (its name and role, the
// address it came from), naming what it was done to (the object, and every
// job and target it concerns, so that --job and --target find it) and what
// changed; a refused change records nothing; no entry holds a secret.

// auditWant is the entry a change must record.
type auditWant struct {
	action  string
	object  string
	jobs    []string
	targets []string
	// changes are texts each of which some line of the entry's changes
	// must hold.
	changes []string
}

// refusal is a request a key must be refused, with the status it gets.
type refusal struct {
	key    string
	req    request
	status int
}

// auditCase is how the test makes one route's change.
type auditCase struct {
	key   string // the kind of key that makes the change
	setup func(t *testing.T, f *fleet)
	req   request // the change; the route's probe (in) when zero
	want  []auditWant
	// refused are requests that must change nothing, refused or asking
	// for what already is, and so record nothing; each route is also
	// refused to a reader key.
	refused []refusal
	// secrets are texts of the answer (found by their JSON field) that
	// no entry may hold.
	secrets []string
}

// spareToken makes an enlistment token for new1 that no target used: the
// fourth of the fleet's catalog, after those web1, web2 and db1 enlisted
// with.
func spareToken(t *testing.T, f *fleet) {
	t.Helper()
	m := f.env.Master
	if _, err := m.Catalog.CreateEnlistToken(context.Background(), "hash-new1", "new1", time.Hour, m.Self()); err != nil {
		t.Fatal(err)
	}
	toks, err := m.Catalog.FindEnlistTokens(context.Background(), false)
	if err != nil || len(toks) != 1 || toks[0].ID != 4 {
		t.Fatalf("the tokens that can enlist: %+v %v, want new1's, id 4", toks, err)
	}
}

var auditCases = map[string]auditCase{
	"PATCH /api/v1/targets/{name}": {key: "operator", req: request{"PATCH", "/api/v1/targets/web1", `{"location": "dc2", "description": "web server"}`},
		want: []auditWant{{action: muster.AuditTargetSet, targets: []string{"web1"},
			changes: []string{`~ location: "" -> "dc2"`, `~ description: "" -> "web server"`}}},
		refused: []refusal{
			{"scoped operator", request{"PATCH", "/api/v1/targets/db1", `{"location": "dc2"}`}, http.StatusForbidden},
			{"operator", request{"PATCH", "/api/v1/targets/nowhere", `{"location": "dc2"}`}, http.StatusNotFound},
			{"operator", request{"PATCH", "/api/v1/targets/web1", `{"location": "dc\n2"}`}, http.StatusBadRequest},
		}},
	"DELETE /api/v1/targets/{name}": {key: "admin", req: request{"DELETE", "/api/v1/targets/web2", ""},
		want: []auditWant{{action: muster.AuditTargetDelete, jobs: []string{"web-backup"}, targets: []string{"web2"},
			changes: []string{"posted DEFECT web2", "no longer runs web-backup"}}},
		refused: []refusal{
			{"operator", request{"DELETE", "/api/v1/targets/web2", ""}, http.StatusForbidden},
			{"admin", request{"DELETE", "/api/v1/targets/nowhere", ""}, http.StatusNotFound},
		}},
	"POST /api/v1/tokens": {key: "admin", req: request{"POST", "/api/v1/tokens", `{"target": "new1"}`},
		want:    []auditWant{{action: muster.AuditTokenCreate, targets: []string{"new1"}, changes: []string{"enlistment token for new1"}}},
		secrets: []string{"token"}},
	"POST /api/v1/tokens/{id}/revoke": {key: "admin", setup: spareToken, req: request{"POST", "/api/v1/tokens/4/revoke", ""},
		want: []auditWant{{action: muster.AuditTokenRevoke, targets: []string{"new1"}, changes: []string{"enlistment token 4 for new1"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/tokens/4/revoke", ""}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/tokens/1/revoke", ""}, http.StatusPreconditionFailed}, // used by web1
			{"admin", request{"POST", "/api/v1/tokens/999/revoke", ""}, http.StatusNotFound},
			{"admin", request{"POST", "/api/v1/tokens/new1/revoke", ""}, http.StatusBadRequest},
		}},
	"POST /api/v1/tokens/revoke": {key: "admin", setup: spareToken, req: request{"POST", "/api/v1/tokens/revoke", `{"target": "new1"}`},
		want: []auditWant{{action: muster.AuditTokenRevoke, targets: []string{"new1"}, changes: []string{"enlistment token 4 for new1"}}},
		refused: []refusal{
			{"admin", request{"POST", "/api/v1/tokens/revoke", `{"target": "web1"}`}, http.StatusNotFound}, // used
			{"admin", request{"POST", "/api/v1/tokens/revoke", `{"target": "bad name"}`}, http.StatusBadRequest},
		}},
	"POST /api/v1/apply": {key: "operator", req: request{"POST", "/api/v1/apply", applyBody("web-new", "web")},
		want: []auditWant{{action: muster.AuditJobCreate, jobs: []string{"web-new"}, targets: []string{"web1", "web2"},
			changes: []string{`+ name: "web-new"`, "posted INSERT web1", "posted INSERT web2"}}},
		refused: []refusal{
			{"scoped operator", request{"POST", "/api/v1/apply", applyBody("db-new", "db")}, http.StatusForbidden},
			{"operator", request{"POST", "/api/v1/apply", applyBody("web-new", "nowhere")}, http.StatusBadRequest},
			{"operator", request{"POST", "/api/v1/apply", `{"dry_run": true, ` + applyBody("web-new", "web")[1:]}, http.StatusOK},
		}},
	"DELETE /api/v1/jobs/{name}": {key: "operator", req: request{"DELETE", "/api/v1/jobs/web-backup", ""},
		want: []auditWant{{action: muster.AuditJobDelete, jobs: []string{"web-backup"}, targets: []string{"web1", "web2"},
			changes: []string{"posted DELETE web1", "posted DELETE web2"}}},
		refused: []refusal{
			{"scoped operator", request{"DELETE", "/api/v1/jobs/db-backup", ""}, http.StatusForbidden},
			{"operator", request{"DELETE", "/api/v1/jobs/nowhere", ""}, http.StatusNotFound},
		}},
	"POST /api/v1/jobs/{name}/enable": {key: "operator",
		setup: func(t *testing.T, f *fleet) {
			f.mustCall(t, "admin", request{"POST", "/api/v1/jobs/web-backup/disable", ""})
		},
		req: request{"POST", "/api/v1/jobs/web-backup/enable", ""},
		want: []auditWant{{action: muster.AuditJobEnable, jobs: []string{"web-backup"}, targets: []string{"web1", "web2"},
			changes: []string{"~ enabled: false -> true"}}},
		refused: []refusal{{"scoped operator", request{"POST", "/api/v1/jobs/db-backup/enable", ""}, http.StatusForbidden}}},
	"POST /api/v1/jobs/{name}/disable": {key: "operator", req: request{"POST", "/api/v1/jobs/web-backup/disable", ""},
		want: []auditWant{{action: muster.AuditJobDisable, jobs: []string{"web-backup"}, targets: []string{"web1", "web2"},
			changes: []string{"~ enabled: true -> false"}}},
		refused: []refusal{{"scoped operator", request{"POST", "/api/v1/jobs/db-backup/disable", ""}, http.StatusForbidden}}},
	"POST /api/v1/jobs/{name}/start": {key: "operator", req: request{"POST", "/api/v1/jobs/web-backup/start", `{"targets": ["web1"]}`},
		want: []auditWant{{action: muster.AuditJobStart, jobs: []string{"web-backup"}, targets: []string{"web1"}, changes: []string{" on web1"}}},
		refused: []refusal{
			{"scoped operator", request{"POST", "/api/v1/jobs/db-backup/start", ""}, http.StatusForbidden},
			{"operator", request{"POST", "/api/v1/jobs/web-backup/start", `{"targets": ["db1"]}`}, http.StatusBadRequest},
		}},
	"POST /api/v1/jobs/{name}/stop": {key: "operator", req: request{"POST", "/api/v1/jobs/web-backup/stop", ""},
		want: []auditWant{{action: muster.AuditJobStop, jobs: []string{"web-backup"}, targets: []string{"web1", "web2"},
			changes: []string{"posted STOP web1", "posted STOP web2"}}},
		refused: []refusal{{"scoped operator", request{"POST", "/api/v1/jobs/db-backup/stop", ""}, http.StatusForbidden}}},
	"POST /api/v1/history/purge": {key: "admin", req: request{"POST", "/api/v1/history/purge", `{"job": "web-backup", "keep_per_job": 1}`},
		want: []auditWant{{action: muster.AuditHistoryPurge, jobs: []string{"web-backup"}, changes: []string{"beyond the newest 1 per job"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/history/purge", `{"keep_per_job": 1}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/history/purge", `{}`}, http.StatusBadRequest},
		}},
	"POST /api/v1/downloadlist/{seq}/retry": {key: "operator", setup: failFirstInstruction("web1"),
		req: request{"POST", "/api/v1/downloadlist/1/retry?target=web1", ""},
		want: []auditWant{{action: muster.AuditInstructionRetry, object: "instruction 1", jobs: []string{"web-backup"}, targets: []string{"web1"},
			changes: []string{"failed INSERT web1 (seq 1) superseded, reposted as seq"}}},
		refused: []refusal{
			{"scoped operator", request{"POST", "/api/v1/downloadlist/1/retry?target=db1", ""}, http.StatusForbidden},
			{"operator", request{"POST", "/api/v1/downloadlist/1/retry?target=web2", ""}, http.StatusPreconditionFailed},
		}},
	"DELETE /api/v1/downloadlist/{seq}": {key: "operator", req: request{"DELETE", "/api/v1/downloadlist/1?target=web1", ""},
		want: []auditWant{{action: muster.AuditInstructionDelete, object: "instruction 1", jobs: []string{"web-backup"}, targets: []string{"web1"},
			changes: []string{"pending INSERT web1 (seq 1) deleted"}}},
		refused: []refusal{
			{"scoped operator", request{"DELETE", "/api/v1/downloadlist/1?target=db1", ""}, http.StatusForbidden},
			{"operator", request{"DELETE", "/api/v1/downloadlist/99?target=web1", ""}, http.StatusNotFound},
		}},
	"POST /api/v1/groups": {key: "admin", req: request{"POST", "/api/v1/groups", `{"name": "ops"}`},
		want: []auditWant{{action: muster.AuditGroupCreate, object: "group ops"}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/groups", `{"name": "ops"}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/groups", `{"name": "web"}`}, http.StatusConflict},
		}},
	"DELETE /api/v1/groups/{name}": {key: "admin",
		setup: func(t *testing.T, f *fleet) {
			f.mustCall(t, "admin", request{"POST", "/api/v1/groups", `{"name": "ops"}`})
		},
		req:  request{"DELETE", "/api/v1/groups/ops", ""},
		want: []auditWant{{action: muster.AuditGroupDelete, object: "group ops"}},
		refused: []refusal{
			{"operator", request{"DELETE", "/api/v1/groups/ops", ""}, http.StatusForbidden},
			{"admin", request{"DELETE", "/api/v1/groups/web", ""}, http.StatusPreconditionFailed},
		}},
	// A job whose override names the group is changed by the rename (a
	// new version): the entry names it, so that --job finds it.
	"POST /api/v1/groups/{name}/rename": {key: "admin",
		setup: func(t *testing.T, f *fleet) {
			f.mustCall(t, "admin", request{"POST", "/api/v1/apply",
				`{"jobs": [{"name": "web-backup", "groups": ["web"], "steps": [{"name": "dump", "shell": "true"}], "overrides": [{"group": "web", "timeout": "1h"}]}]}`})
		},
		req: request{"POST", "/api/v1/groups/web/rename", `{"name": "www"}`},
		want: []auditWant{{action: muster.AuditGroupRename, object: "group www", jobs: []string{"web-backup"},
			changes: []string{"name: web -> www", "job web-backup: its override of group web now names www"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/groups/web/rename", `{"name": "www"}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/groups/web/rename", `{"name": "db"}`}, http.StatusConflict},
		}},
	"POST /api/v1/groups/{name}/add": {key: "admin", req: request{"POST", "/api/v1/groups/web/add", `{"targets": ["db1"]}`},
		want: []auditWant{{action: muster.AuditGroupAdd, object: "group web", jobs: []string{"web-backup"}, targets: []string{"db1"},
			changes: []string{"posted INSERT db1 (web-backup)"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/groups/web/add", `{"targets": ["db1"]}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/groups/web/add", `{"targets": ["db1", "web1"]}`}, http.StatusConflict},
		}},
	"POST /api/v1/groups/{name}/remove": {key: "admin", req: request{"POST", "/api/v1/groups/web/remove", `{"targets": ["web2"]}`},
		want: []auditWant{{action: muster.AuditGroupRemove, object: "group web", jobs: []string{"web-backup"}, targets: []string{"web2"},
			changes: []string{"posted DELETE web2 (web-backup)"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/groups/web/remove", `{"targets": ["web2"]}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/groups/web/remove", `{"targets": ["web2", "db1"]}`}, http.StatusPreconditionFailed},
		}},
	"POST /api/v1/post": {key: "operator", req: request{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["web1"]}`},
		want: []auditWant{{action: muster.AuditInstructionPost, targets: []string{"web1"}, changes: []string{"posted SYNC-TIME web1"}}},
		refused: []refusal{
			{"scoped operator", request{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["db1"]}`}, http.StatusForbidden},
			{"operator", request{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["nowhere"]}`}, http.StatusBadRequest},
		}},
	"POST /api/v1/resync": {key: "admin", req: request{"POST", "/api/v1/resync", `{"targets": ["web1"]}`},
		want: []auditWant{{action: muster.AuditTargetResync, jobs: []string{"web-backup"}, targets: []string{"web1"}, changes: []string{"superseded"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/resync", `{"targets": ["web1"]}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/resync", `{"targets": ["nowhere"]}`}, http.StatusBadRequest},
		}},
	"POST /api/v1/pause": {key: "operator", req: request{"POST", "/api/v1/pause", `{"targets": ["web1"]}`},
		want:    []auditWant{{action: muster.AuditTargetPause, targets: []string{"web1"}, changes: []string{"paused"}}},
		refused: []refusal{{"scoped operator", request{"POST", "/api/v1/pause", `{"targets": ["db1"]}`}, http.StatusForbidden}}},
	"POST /api/v1/resume": {key: "operator",
		setup: func(t *testing.T, f *fleet) {
			f.mustCall(t, "admin", request{"POST", "/api/v1/pause", `{"group": "web"}`})
		},
		req:     request{"POST", "/api/v1/resume", `{"group": "web"}`},
		want:    []auditWant{{action: muster.AuditTargetResume, object: "group web", targets: []string{"web1", "web2"}, changes: []string{"resumed"}}},
		refused: []refusal{{"scoped operator", request{"POST", "/api/v1/resume", `{"group": "db"}`}, http.StatusForbidden}}},
	// Answering a held poll now changes nothing in the catalog.
	"POST /api/v1/targets/{name}/poll": {key: "operator", req: request{"POST", "/api/v1/targets/web1/poll", ""}},
	"DELETE /api/v1/targets": {key: "admin", req: request{"DELETE", "/api/v1/targets?all=true", ""},
		want: []auditWant{
			{action: muster.AuditTargetDelete, jobs: []string{"db-backup"}, targets: []string{"db1"}, changes: []string{"posted DEFECT db1"}},
			{action: muster.AuditTargetDelete, jobs: []string{"web-backup"}, targets: []string{"web1"}, changes: []string{"posted DEFECT web1"}},
			{action: muster.AuditTargetDelete, jobs: []string{"web-backup"}, targets: []string{"web2"}, changes: []string{"posted DEFECT web2"}},
		},
		refused: []refusal{{"admin", request{"DELETE", "/api/v1/targets", ""}, http.StatusBadRequest}}},
	"POST /api/v1/operators": {key: "admin",
		req: request{"POST", "/api/v1/operators", `{"name": "oncall", "webhook": "https://hooks.example.com/T0/B0/hook-credential", "webhook_secret": "a-webhook-secret-of-some-length"}`},
		want: []auditWant{{action: muster.AuditOperatorCreate, object: "operator oncall",
			changes: []string{`webhook: "" -> "https://hooks.example.com/…"`, "webhook secret: replaced"}}},
		refused: []refusal{{"admin", request{"POST", "/api/v1/operators", `{"name": "dba", "email": "x@example.com"}`}, http.StatusConflict}}},
	"PATCH /api/v1/operators/{name}": {key: "admin",
		req: request{"PATCH", "/api/v1/operators/dba", `{"webhook": "https://hooks.example.com/T0/B0/hook-credential", "email": "dba2@example.com"}`},
		want: []auditWant{{action: muster.AuditOperatorUpdate, object: "operator dba",
			changes: []string{`email: "dba@example.com" -> "dba2@example.com"`, `webhook: "" -> "https://hooks.example.com/…"`, "webhook secret: replaced"}}},
		refused: []refusal{{"admin", request{"PATCH", "/api/v1/operators/nobody", `{"email": "x@example.com"}`}, http.StatusNotFound}},
		secrets: []string{"webhook_secret"}},
	"DELETE /api/v1/operators/{name}": {key: "admin",
		setup: func(t *testing.T, f *fleet) {
			f.mustCall(t, "admin", request{"POST", "/api/v1/operators", `{"name": "oncall", "email": "oncall@example.com"}`})
		},
		req:     request{"DELETE", "/api/v1/operators/oncall", ""},
		want:    []auditWant{{action: muster.AuditOperatorDelete, object: "operator oncall"}},
		refused: []refusal{{"admin", request{"DELETE", "/api/v1/operators/dba", ""}, http.StatusConflict}}},
	"POST /api/v1/alerts": {key: "admin",
		req: request{"POST", "/api/v1/alerts", `{"name": "a2", "event": "run_failed", "job": "web-backup", "target": "web1", "notify": ["dba"]}`},
		want: []auditWant{{action: muster.AuditAlertCreate, object: "alert a2", jobs: []string{"web-backup"}, targets: []string{"web1"},
			changes: []string{"on run_failed", "notifies dba"}}},
		refused: []refusal{{"admin", request{"POST", "/api/v1/alerts", `{"name": "a2", "event": "run_failed", "notify": ["nobody"]}`}, http.StatusBadRequest}}},
	// An alert on a job and a target is found by both for as long as it
	// lives: its deletion, enabling and disabling too.
	"DELETE /api/v1/alerts/{name}": {key: "admin", setup: createAlertOn("a2", "web-backup", "web1"),
		req:     request{"DELETE", "/api/v1/alerts/a2", ""},
		want:    []auditWant{{action: muster.AuditAlertDelete, object: "alert a2", jobs: []string{"web-backup"}, targets: []string{"web1"}}},
		refused: []refusal{{"admin", request{"DELETE", "/api/v1/alerts/nothing", ""}, http.StatusNotFound}}},
	"POST /api/v1/alerts/{name}/enable": {key: "admin",
		setup: func(t *testing.T, f *fleet) {
			createAlertOn("a2", "web-backup", "web1")(t, f)
			f.mustCall(t, "admin", request{"POST", "/api/v1/alerts/a2/disable", ""})
		},
		req:  request{"POST", "/api/v1/alerts/a2/enable", ""},
		want: []auditWant{{action: muster.AuditAlertEnable, object: "alert a2", jobs: []string{"web-backup"}, targets: []string{"web1"}}},
		refused: []refusal{
			{"admin", request{"POST", "/api/v1/alerts/nothing/enable", ""}, http.StatusNotFound},
			{"admin", request{"POST", "/api/v1/alerts/failures/enable", ""}, http.StatusOK}, // enabled already
		}},
	"POST /api/v1/alerts/{name}/disable": {key: "admin", setup: createAlertOn("a2", "web-backup", "web1"),
		req:  request{"POST", "/api/v1/alerts/a2/disable", ""},
		want: []auditWant{{action: muster.AuditAlertDisable, object: "alert a2", jobs: []string{"web-backup"}, targets: []string{"web1"}}},
		refused: []refusal{
			{"admin", request{"POST", "/api/v1/alerts/nothing/disable", ""}, http.StatusNotFound},
			{"operator", request{"POST", "/api/v1/jobs/web-backup/enable", ""}, http.StatusOK}, // enabled already
		}},
	"POST /api/v1/apikeys": {key: "admin", req: request{"POST", "/api/v1/apikeys", `{"name": "new-key", "role": "operator", "scopes": ["job:web-*"]}`},
		want: []auditWant{{action: muster.AuditKeyCreate, object: "apikey new-key", changes: []string{"role: operator", "scopes: job:web-*"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/apikeys", `{"name": "new-key", "role": "reader"}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/apikeys", `{"name": "reader", "role": "reader"}`}, http.StatusConflict},
		},
		secrets: []string{"key"}},
	"POST /api/v1/apikeys/{name}/revoke": {key: "admin", req: request{"POST", "/api/v1/apikeys/spare/revoke", ""},
		want: []auditWant{{action: muster.AuditKeyRevoke, object: "apikey spare"}},
		refused: []refusal{
			{"admin", request{"POST", "/api/v1/apikeys/nobody/revoke", ""}, http.StatusNotFound},
			{"admin", request{"POST", "/api/v1/apikeys/admin/revoke", ""}, http.StatusPreconditionFailed},
		}},
	"POST /api/v1/loginlinks": {key: "admin", req: request{"POST", "/api/v1/loginlinks", `{"role": "reader"}`},
		want: []auditWant{{action: muster.AuditLoginLinkCreate, object: "apikey admin", changes: []string{"role reader"}}},
		refused: []refusal{
			{"operator", request{"POST", "/api/v1/loginlinks", `{"role": "reader"}`}, http.StatusForbidden},
			{"admin", request{"POST", "/api/v1/loginlinks", `{"role": "root"}`}, http.StatusBadRequest},
		},
		secrets: []string{"path"}},
}

// failFirstInstruction has target acknowledge its first instruction as
// failed.
func failFirstInstruction(target string) func(t *testing.T, f *fleet) {
	return func(t *testing.T, f *fleet) {
		db := f.env.Master.Catalog
		id, err := db.TargetID(context.Background(), target)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(context.Background(), id, []catalog.AckRow{{Seq: 1, Status: muster.InstructionFailed, Error: "no such proxy"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// createAlertOn creates an alert on a job and a target.
func createAlertOn(name, job, target string) func(t *testing.T, f *fleet) {
	return func(t *testing.T, f *fleet) {
		b, _ := json.Marshal(httpapi.AlertRequest{Name: name, Event: muster.EventRunFailed, Job: job, Target: target, Notify: []string{"dba"}})
		f.mustCall(t, "admin", request{"POST", "/api/v1/alerts", string(b)})
	}
}

// mustCall makes a request that must succeed.
func (f *fleet) mustCall(t *testing.T, kind string, r request) string {
	t.Helper()
	status, body := f.call(t, f.keys[kind], r)
	if status >= 300 {
		t.Fatalf("%s %s: %d %s", r.method, r.path, status, body)
	}
	return body
}

// newEntries returns the audit entries made after the entry with id
// after, oldest first.
func newEntries(t *testing.T, f *fleet, after int64) []muster.AuditEntry {
	t.Helper()
	all, err := f.env.Master.Catalog.FindAudit(context.Background(), catalog.AuditFilter{Limit: catalog.MaxAuditList})
	if err != nil {
		t.Fatal(err)
	}
	var out []muster.AuditEntry
	for _, e := range slices.Backward(all) {
		if e.ID > after {
			out = append(out, e)
		}
	}
	return out
}

func lastAuditID(t *testing.T, f *fleet) int64 {
	t.Helper()
	all, err := f.env.Master.Catalog.FindAudit(context.Background(), catalog.AuditFilter{Limit: 1})
	if err != nil || len(all) == 0 {
		t.Fatalf("the audit log: %v, %v", all, err)
	}
	return all[0].ID
}

// TestEveryChangeIsAudited makes each change the API offers, once, and
// checks what the audit log recorded of it, and that the requests refused
// recorded nothing.
func TestEveryChangeIsAudited(t *testing.T) {
	s := &httpapi.Server{}
	s.Routes(http.NewServeMux())
	roles := map[string]string{"admin": catalog.RoleAdmin, "operator": catalog.RoleOperator}
	for _, pattern := range s.Patterns() {
		if strings.HasPrefix(pattern, "GET ") {
			continue
		}
		c, ok := auditCases[pattern]
		if !ok {
			t.Errorf("route %s has no case in audit_test.go: add one saying what it records", pattern)
			continue
		}
		t.Run(pattern, func(t *testing.T) {
			f := newFleet(t)
			if c.setup != nil {
				c.setup(t, f)
			}
			// Refused: nothing recorded.
			refused := append([]refusal{{"reader", c.req, http.StatusForbidden}}, c.refused...)
			for _, r := range refused {
				before := lastAuditID(t, f)
				status, body := f.call(t, f.keys[r.key], r.req)
				if status != r.status {
					t.Errorf("%s %s with the %s key: %d %s, want %d", r.req.method, r.req.path, r.key, status, body, r.status)
				}
				if got := newEntries(t, f, before); len(got) > 0 {
					t.Errorf("%s %s with the %s key (%d) recorded %s, want nothing", r.req.method, r.req.path, r.key, status, entriesJSON(got))
				}
			}

			before := lastAuditID(t, f)
			body := f.mustCall(t, c.key, c.req)
			got := newEntries(t, f, before)
			if len(got) != len(c.want) {
				t.Fatalf("%s %s recorded %d entries, want %d: %s", c.req.method, c.req.path, len(got), len(c.want), entriesJSON(got))
			}
			for i, w := range c.want {
				e := got[i]
				keyName := c.key
				if a := e.Actor; a.Kind != muster.ActorKey || a.Name != keyName || a.Role != roles[c.key] || a.Source != "127.0.0.1" {
					t.Errorf("entry %d by %+v, want key %s (%s) from 127.0.0.1", i, e.Actor, keyName, roles[c.key])
				}
				if e.Action != w.action || e.Object != w.object {
					t.Errorf("entry %d: %s on %q, want %s on %q", i, e.Action, e.Object, w.action, w.object)
				}
				if !slices.Equal(e.Jobs, nonNil(w.jobs)) || !slices.Equal(e.Targets, nonNil(w.targets)) {
					t.Errorf("entry %d (%s) concerns jobs %q and targets %q, want %q and %q", i, e.Action, e.Jobs, e.Targets, w.jobs, w.targets)
				}
				for _, want := range w.changes {
					if !slices.ContainsFunc(e.Changes, func(l string) bool { return strings.Contains(l, want) }) {
						t.Errorf("entry %d (%s): changes %q, want one saying %q", i, e.Action, e.Changes, want)
					}
				}
				// Each subject finds the entry.
				for _, j := range e.Jobs {
					if !findsEntry(t, f, catalog.AuditFilter{Job: j, Actor: keyName}, e.ID) {
						t.Errorf("entry %d (%s) not found by --job %s --actor %s", i, e.Action, j, keyName)
					}
				}
				for _, tg := range e.Targets {
					if !findsEntry(t, f, catalog.AuditFilter{Target: tg, Since: e.At}, e.ID) {
						t.Errorf("entry %d (%s) not found by --target %s --since its time", i, e.Action, tg)
					}
				}
			}

			// No secret of the answer is in the log.
			var answer map[string]any
			json.Unmarshal([]byte(body), &answer)
			var secrets []string
			for _, field := range c.secrets {
				if v, _ := answer[field].(string); v != "" {
					secrets = append(secrets, v)
				}
			}
			if strings.Contains(c.req.body, "hook-credential") {
				secrets = append(secrets, "hook-credential", "a-webhook-secret-of-some-length")
			}
			if len(c.secrets) > 0 && len(secrets) == 0 {
				t.Errorf("the answer %s has none of %q", body, c.secrets)
			}
			all, _ := json.Marshal(got)
			for _, s := range secrets {
				if strings.Contains(string(all), s) {
					t.Errorf("the audit log holds the secret %q: %s", s, all)
				}
			}
		})
	}
}

func entriesJSON(entries []muster.AuditEntry) string {
	b, _ := json.Marshal(entries)
	return string(b)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func findsEntry(t *testing.T, f *fleet, filter catalog.AuditFilter, id int64) bool {
	t.Helper()
	entries, err := f.env.Master.Catalog.FindAudit(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(entries, func(e muster.AuditEntry) bool { return e.ID == id })
}
