package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// inputAdmin is the admin key of an inputServer.
const inputAdmin = "mat_input-admin"

// inputServer serves the operator API on a catalog of engine e holding a
// small fleet: targets web1 and web2 in group web, jobs backup (on web1
// and web2) and report (on group web) with a run each, operator dba and
// alert failures.
type inputServer struct {
	url string
	hc  *http.Client
	db  *catalog.Catalog
}

func newInputServer(t *testing.T, e catalogtest.Engine) *inputServer {
	t.Helper()
	ctx := context.Background()
	db, err := catalog.Open(ctx, e.Open(t), catalog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	self := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "admin", Role: catalog.RoleAdmin}, pki.HashSecret(inputAdmin), self); err != nil {
		t.Fatal(err)
	}
	ids := map[string]catalog.TargetIdentity{}
	for _, name := range []string{"web1", "web2"} {
		ids[name] = enlistIn(t, db, name)
	}
	if err := db.CreateGroup(ctx, "web", self); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetGroupMembers(ctx, "web", []string{"web1", "web2"}, false, self); err != nil {
		t.Fatal(err)
	}
	backup, report := muster.NewJob(), muster.NewJob()
	backup.Name, backup.Targets = "backup", []string{"web1", "web2"}
	backup.Steps = []muster.Step{{Name: "dump", Shell: "true"}}
	report.Name, report.Groups = "report", []string{"web"}
	report.Steps = []muster.Step{{Name: "run", Shell: "true"}}
	if _, err := db.ApplyJobs(ctx, []muster.Job{backup, report}, catalog.ApplyOptions{}, self); err != nil {
		t.Fatal(err)
	}
	for target, job := range map[string]string{"web1": "backup", "web2": "report"} {
		res, err := db.UpsertRuns(ctx, ids[target], []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: job, RunID: "run-" + target,
			Status: muster.RunFailed, Trigger: "operator", StartedAt: time.Now()}}})
		if err != nil || !res[0].OK {
			t.Fatalf("upload a run of %s: %+v, %v", job, res, err)
		}
	}
	if _, err := db.CreateOperator(ctx, muster.Operator{Name: "dba", Email: "dba@example.com"}, "", self); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlert(ctx, muster.Alert{Name: "failures", Event: muster.EventRunFailed, Notify: []string{"dba"}}, self); err != nil {
		t.Fatal(err)
	}
	s := &httpapi.Server{DB: db, Log: slog.New(slog.DiscardHandler), Tokens: catalogTokens{db}, Poker: noPoker{}, Hub: noHub{}}
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	return &inputServer{url: srv.URL, hc: hc, db: db}
}

// catalogTokens makes enlistment tokens as the master does, but for the
// secret.
type catalogTokens struct{ db *catalog.Catalog }

func (c catalogTokens) NewEnlistToken(ctx context.Context, name string, ttl time.Duration, by muster.Actor) (string, time.Time, error) {
	secret := "mst1." + strings.Repeat("0", 64) + "." + pki.RandomSecret()
	at, err := c.db.CreateEnlistToken(ctx, pki.HashSecret(secret), muster.NormalizeTargetName(name), ttl, by)
	return secret, at, err
}

type noHub struct{}

func (noHub) RunsChanged() <-chan struct{} { return nil }
func (noHub) Closed() <-chan struct{}      { return nil }

type noPoker struct{}

func (noPoker) Poke([]int64) bool { return false }

// call sends a request with the admin key and returns the status and the
// body.
func (s *inputServer) call(t *testing.T, method, path, body string, header ...string) (int, []byte) {
	t.Helper()
	var in io.Reader
	if body != "" {
		in = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+inputAdmin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// refused checks that a reply is the error want (a code), with a message
// beginning with field and a colon.
func refused(t *testing.T, what string, status int, body []byte, want, field string) {
	t.Helper()
	var eb struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(body, &eb)
	switch {
	case eb.Error.Code != want:
		t.Errorf("%s: %d %s; want %s", what, status, body, want)
	case field != "" && !strings.HasPrefix(eb.Error.Message, field+":"):
		t.Errorf("%s: %q does not begin with %q", what, eb.Error.Message, field+":")
	}
}

// A query parameter a route does not take, or one given twice that is not
// a list, is refused naming it: it is not ignored, nor is all but its first
// value.
func TestQueryParametersAreChecked(t *testing.T) {
	s := newInputServer(t, catalogtest.SQLite)
	for _, tc := range []struct{ method, path, field string }{
		{"DELETE", "/api/v1/targets?all=true&all=false", "all"},
		{"DELETE", "/api/v1/targets?all=true&force=false&force=true", "force"},
		{"DELETE", "/api/v1/targets/web1?force=false&force=true", "force"},
		{"GET", "/api/v1/jobs/backup/history?limit=1&limit=5", "limit"},
		{"GET", "/api/v1/jobs/backup/history?target=web1&target=web2", "target"},
		{"GET", "/api/v1/jobs/backup/history?targte=web1", "targte"},
		{"GET", "/api/v1/downloadlist?job=backup&job=report", "job"},
		{"GET", "/api/v1/audit?limit=5&since=2026-01-02T15:04:05Z&since=2020-01-02T15:04:05Z", "since"},
		{"GET", "/api/v1/events?Limit=5", "Limit"},
		{"GET", "/api/v1/jobs?category=a&category=b", "category"},
		{"GET", "/api/v1/jobs/backup?verbose=1", "verbose"},
		{"POST", "/api/v1/downloadlist/1/retry?target=web1&target=web2", "target"},
	} {
		status, body := s.call(t, tc.method, tc.path, "")
		refused(t, tc.method+" "+tc.path, status, body, muster.EINVALID, tc.field)
	}
	if ts, err := s.db.FindTargets(context.Background(), catalog.TargetFilter{}); err != nil || len(ts) != 2 {
		t.Errorf("targets after the refusals: %d, %v; want both still there", len(ts), err)
	}
	// A list is a list.
	q := url.Values{"run": {"web1:run-web1", "web2:run-web2"}}
	status, body := s.call(t, "GET", "/api/v1/runs?"+q.Encode(), "")
	if status != http.StatusOK {
		t.Errorf("GET /api/v1/runs with two runs: %d %s", status, body)
	}
}

// A body that does not decode is refused naming the field, and in an apply
// the job, as the catalog's own refusals of an apply do.
func TestUndecodableBodiesNameTheField(t *testing.T) {
	s := newInputServer(t, catalogtest.SQLite)
	step := `"steps": [{"name": "s", "shell": "true"%s}]`
	job := func(name, extra string) string {
		return fmt.Sprintf(`{"jobs": [{"name": %q, "targets": ["web1"], `+step+`}]}`, name, extra)
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/api/v1/apply", job("late", `, "timeout": "-5s"`), `job "late": steps.timeout`},
		{"POST", "/api/v1/apply", job("late", `, "timeout": 5`), `job "late": steps.timeout`},
		{"POST", "/api/v1/apply", job("late", `, "retry": {"attempts": "3"}`), `job "late": steps.retry.attempts`},
		{"POST", "/api/v1/apply", job("late", `, "bogus": 1`), `job "late": steps.bogus`},
		{"POST", "/api/v1/apply", `{"jobs": [null]}`, "jobs"},
		{"POST", "/api/v1/apply", `{"jobs": {}}`, "jobs"},
		{"POST", "/api/v1/alerts", `{"name": "slow", "event": "no_success", "notify": ["dba"], "window": "-1h"}`, "window"},
		{"POST", "/api/v1/tokens", `{"target": "web3", "ttl_seconds": "600"}`, "ttl_seconds"},
		{"POST", "/api/v1/jobs/backup/start", `{"targets": "web1"}`, "targets"},
		{"POST", "/api/v1/history/purge", `{"keep_per_job": 1.5}`, "keep_per_job"},
		{"PATCH", "/api/v1/targets/web1", `{"Location ": "x"}`, "Location "},
		{"PATCH", "/api/v1/targets/web1", `{"location": "a", "location": "b"}`, "location"},
		{"PATCH", "/api/v1/targets/web1", `{"location": "a", "Location": "b"}`, "Location"},
		{"POST", "/api/v1/groups", `{"NAME": "db"}`, "NAME"},
		{"POST", "/api/v1/operators", `{"name": "ops", "email": "a@example.com", "email": "b@example.com"}`, "email"},
		{"POST", "/api/v1/jobs/backup/start", `{"targets": ["web1"], "Targets": ["web2"]}`, "Targets"},
		{"POST", "/api/v1/apply", job("late", `, "shell": "false"`), `job "late": steps.shell`},
		{"POST", "/api/v1/apply", `{"jobs": [{"name": "a", "Name": "b", "targets": ["web1"]}]}`, `job "a": Name`},
		{"POST", "/api/v1/apply", `{"jobs": [], "prune": false, "prune": true}`, "prune"},
		{"POST", "/api/v1/apply", job("late", ", \"env\": {\"A\": \"caf\xe9\"}"), `job "late": steps.env.A`},
		{"PATCH", "/api/v1/targets/web1", "{\"location\": \"d\xffb\"}", "location"},
	} {
		status, body := s.call(t, tc.method, tc.path, tc.body)
		refused(t, tc.method+" "+tc.path+" "+tc.body, status, body, muster.EINVALID, tc.field)
	}
}

// A body sent as something else than JSON is refused naming the header,
// whatever it holds: a browser may send a cross-site form or text/plain
// body without asking first, and a body of another type was not meant for
// a JSON API. A body without a Content-Type, and JSON with a charset of
// UTF-8, are read.
func TestBodiesThatAreNotJSONAreRefused(t *testing.T) {
	s := newInputServer(t, catalogtest.SQLite)
	before := s.dump(t)
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/json; charset=latin1", "application/jsonx", "json"} {
		status, body := s.call(t, "POST", "/api/v1/groups", `{"name": "db"}`, "Content-Type", ct)
		refused(t, ct, status, body, muster.EINVALID, "Content-Type")
	}
	if after := s.dump(t); !maps.Equal(after, before) {
		t.Error("a refused body changed the catalog")
	}
	for i, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8", ""} {
		status, body := s.call(t, "POST", "/api/v1/groups", fmt.Sprintf(`{"name": "db%d"}`, i), "Content-Type", ct)
		if status != http.StatusCreated {
			t.Errorf("Content-Type %q: %d %s, want 201", ct, status, body)
		}
	}
}

// dump reads everything the API shows of the catalog, but when each API
// key was last used (every request uses one).
func (s *inputServer) dump(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	paths := []string{"/api/v1/targets", "/api/v1/jobs", "/api/v1/groups", "/api/v1/operators", "/api/v1/alerts",
		"/api/v1/apikeys", "/api/v1/audit?limit=1000", "/api/v1/downloadlist", "/api/v1/events", "/api/v1/alerts/history",
		"/api/v1/jobs/backup", "/api/v1/jobs/report", "/api/v1/jobs/backup/history", "/api/v1/jobs/report/history",
		"/api/v1/jobs/backup/rollouts", "/api/v1/targets/web1", "/api/v1/targets/web2"}
	for _, p := range paths {
		status, body := s.call(t, "GET", p, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
		out[p] = lastUsedRE.ReplaceAllString(string(body), "")
	}
	return out
}

var lastUsedRE = regexp.MustCompile(`"last_used_at":("[^"]*"|null),?`)

// Every change the API refuses, for bad input, leaves the catalog exactly
// as it was, on both engines: nothing of it is written, not even to the
// audit log.
func TestRefusedChangesLeaveTheCatalogAsItWas(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		s := newInputServer(t, e)
		before := s.dump(t)
		for _, r := range []struct {
			method, path, body string
			code               string
		}{
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "new", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}, {"name": "backup", "targets": ["nope"], "steps": [{"name": "s", "shell": "true"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "new", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}, {"name": "new", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "backup", "targets": ["web1", "web1"], "steps": [{"name": "s", "shell": "true"}]}], "prune": true}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "backup", "targets": ["web1"], "max_parallel_targets": -1, "steps": [{"name": "s", "shell": "true"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "backup\u0000x", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "backup", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}]} {}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [], "prune": true}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "` + long + `"}]}`, muster.EINVALID},
			{"DELETE", "/api/v1/jobs/nope", "", muster.ENOTFOUND},
			{"POST", "/api/v1/jobs/backup/start", `{"targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/jobs/backup/start", `{"expires_in_seconds": -1}`, muster.EINVALID},
			{"POST", "/api/v1/jobs/backup/start", `{"env": {"A=B": "x"}}`, muster.EINVALID},
			{"POST", "/api/v1/jobs/backup/start", `{"rollout": {"batch": "0"}}`, muster.EINVALID},
			{"POST", "/api/v1/jobs/backup/start", `{"step": "nope"}`, muster.EINVALID},
			{"POST", "/api/v1/jobs/backup/stop", `{"targets": [""]}`, muster.EINVALID},
			{"POST", "/api/v1/history/purge", `{"older_than_seconds": -1}`, muster.EINVALID},
			{"POST", "/api/v1/history/purge", `{"keep_per_job": -1}`, muster.EINVALID},
			{"POST", "/api/v1/groups", `{"name": " web"}`, muster.EINVALID},
			{"POST", "/api/v1/groups", `{"name": "a/b"}`, muster.EINVALID},
			{"POST", "/api/v1/groups", `{"name": "web"}`, muster.ECONFLICT},
			{"POST", "/api/v1/groups", `{"name": "db", "name": "web"}`, muster.EINVALID},
			{"POST", "/api/v1/groups", `{"Name": "db"}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "new", "targets": ["web1"], "steps": [{"name": "s", "shell": "true", "Shell": "rm -rf /"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/apply", `{"jobs": [{"name": "new", "name": "backup", "targets": ["web1"], "steps": [{"name": "s", "shell": "true"}]}]}`, muster.EINVALID},
			{"POST", "/api/v1/groups/web/rename", `{"name": ""}`, muster.EINVALID},
			{"POST", "/api/v1/groups/web/add", `{"targets": []}`, muster.EINVALID},
			{"POST", "/api/v1/groups/web/remove", `{"targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/groups/web/remove", `{"targets": ["web1", "web1"]}`, muster.EINVALID},
			{"POST", "/api/v1/post", `{"operation": "SET-POLL", "value": 5}`, muster.EINVALID},
			{"POST", "/api/v1/post", `{"operation": "DEFECT", "targets": ["web1"]}`, muster.EINVALID},
			{"POST", "/api/v1/post", `{"operation": "START", "job": "backup", "targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/resync", `{"targets": ["web1"], "all": true}`, muster.EINVALID},
			{"POST", "/api/v1/resync", `{"targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/pause", `{"targets": ["web1", "nope"]}`, muster.EINVALID},
			{"POST", "/api/v1/pause", `{"group": "nope"}`, muster.EINVALID},
			{"PATCH", "/api/v1/targets/web1", `{"location": "a\nb"}`, muster.EINVALID},
			{"PATCH", "/api/v1/targets/web1", "{\"description\": \"caf\xe9\"}", muster.EINVALID},
			{"POST", "/api/v1/apply", "{\"jobs\": [{\"name\": \"new\", \"targets\": [\"web1\"], \"steps\": [{\"name\": \"s\", \"shell\": \"echo caf\xe9\"}]}]}", muster.EINVALID},
			{"PATCH", "/api/v1/targets/web1", `{"description": "` + long + `"}`, muster.ETOOLARGE},
			{"PATCH", "/api/v1/targets/web1", `{}`, muster.EINVALID},
			{"DELETE", "/api/v1/targets", "", muster.EINVALID},
			{"DELETE", "/api/v1/targets?all=yes", "", muster.EINVALID},
			{"DELETE", "/api/v1/targets/nope", "", muster.ENOTFOUND},
			{"POST", "/api/v1/tokens", `{"target": "web 3"}`, muster.EINVALID},
			{"POST", "/api/v1/tokens", `{"target": "web3", "ttl_seconds": 59}`, muster.EINVALID},
			{"POST", "/api/v1/operators", `{"name": "ops", "email": "not an address"}`, muster.EINVALID},
			{"POST", "/api/v1/operators", `{"name": "dba", "email": "dba@example.com"}`, muster.ECONFLICT},
			{"PATCH", "/api/v1/operators/dba", `{"email": "nope"}`, muster.EINVALID},
			{"PATCH", "/api/v1/operators/dba", `{"webhook_secret": "x", "new_secret": true}`, muster.EINVALID},
			{"DELETE", "/api/v1/operators/dba", "", muster.ECONFLICT},
			{"POST", "/api/v1/alerts", `{"name": "a", "event": "bogus", "notify": ["dba"]}`, muster.EINVALID},
			{"POST", "/api/v1/alerts", `{"name": "a", "event": "run_failed", "notify": ["dba", "dba"]}`, muster.EINVALID},
			{"POST", "/api/v1/alerts", `{"name": "a", "event": "run_failed", "notify": ["dba"], "min_severity": 9}`, muster.EINVALID},
			{"POST", "/api/v1/apikeys", `{"name": "k", "role": "root"}`, muster.EINVALID},
			{"POST", "/api/v1/apikeys", `{"name": "k", "role": "reader", "ttl_seconds": -1}`, muster.EINVALID},
			{"POST", "/api/v1/apikeys", `{"name": "k", "role": "reader", "scopes": ["job:"]}`, muster.EINVALID},
			{"POST", "/api/v1/apikeys", `{"name": "admin", "role": "reader"}`, muster.ECONFLICT},
			{"POST", "/api/v1/loginlinks", `{"ttl_seconds": 59}`, muster.EINVALID},
			{"POST", "/api/v1/loginlinks", `{"ttl_seconds": 9223372036}`, muster.EINVALID},
			{"POST", "/api/v1/downloadlist/0/retry?target=web1", "", muster.EINVALID},
			{"DELETE", "/api/v1/downloadlist/99?target=web1", "", muster.ENOTFOUND},
		} {
			status, body := s.call(t, r.method, r.path, r.body)
			what := r.method + " " + r.path + " " + r.body
			if len(what) > 200 {
				what = what[:200] + "…"
			}
			refused(t, what, status, body, r.code, "")
			if after := s.dump(t); !maps.Equal(after, before) {
				for p := range before {
					if after[p] != before[p] {
						t.Errorf("%s changed %s:\n%s\n->\n%s", what, p, before[p], after[p])
					}
				}
				before = after
			}
		}
	})
}

// A purge refused is refused naming the body's fields, not the catalog's.
func TestPurgeRefusalsNameTheField(t *testing.T) {
	s := newInputServer(t, catalogtest.SQLite)
	for _, tc := range []struct{ body, field string }{
		{`{"keep_per_job": -1}`, "keep_per_job"},
		{`{"older_than_seconds": -1}`, "older_than_seconds"},
		{`{"older_than_seconds": 4000000000}`, "older_than_seconds"},
		{`{}`, "older_than_seconds, keep_per_job"},
	} {
		status, body := s.call(t, "POST", "/api/v1/history/purge", tc.body)
		refused(t, tc.body, status, body, muster.EINVALID, tc.field)
	}
}

// A webhook at a literal link-local or unspecified address (a cloud's
// instance metadata service) is refused when it is set, naming the field,
// and the operator stays as it was; loopback and private addresses are
// internal receivers, and are taken.
func TestLinkLocalWebhookRefused(t *testing.T) {
	s := newInputServer(t, catalogtest.SQLite)
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/api/v1/operators", `{"name": "ops", "webhook": "http://169.254.169.254/latest/meta-data/"}`, `operator "ops": webhook`},
		{"POST", "/api/v1/operators", `{"name": "ops", "webhook": "http://[fd00:ec2::254]/latest/meta-data/"}`, `operator "ops": webhook`},
		{"POST", "/api/v1/operators", `{"name": "ops", "webhook": "http://[fe80::1%25eth0]:8080/hook"}`, `operator "ops": webhook`},
		{"POST", "/api/v1/operators", `{"name": "ops", "webhook": "http://[::ffff:169.254.169.254]/"}`, `operator "ops": webhook`},
		{"POST", "/api/v1/operators", `{"name": "ops", "webhook": "http://0.0.0.0:8080/hook"}`, `operator "ops": webhook`},
		{"PATCH", "/api/v1/operators/dba", `{"webhook": "https://169.254.170.2/v2/credentials"}`, `operator "dba": webhook`},
		{"PATCH", "/api/v1/operators/dba", `{"webhook": "http://[::]/hook"}`, `operator "dba": webhook`},
	} {
		before := s.dump(t)
		status, body := s.call(t, tc.method, tc.path, tc.body)
		refused(t, tc.body, status, body, muster.EINVALID, tc.field)
		if !strings.Contains(string(body), "link-local") && !strings.Contains(string(body), "unspecified") {
			t.Errorf("%s: %s does not name the rule", tc.body, body)
		}
		if after := s.dump(t); !maps.Equal(after, before) {
			t.Errorf("%s changed the catalog", tc.body)
		}
	}
	for i, hook := range []string{"http://127.0.0.1:9000/hook", "http://[::1]:9000/hook", "https://10.0.0.5/hook", "http://192.168.1.10/hook"} {
		body := fmt.Sprintf(`{"name": "internal%d", "webhook": %q}`, i, hook)
		if status, reply := s.call(t, "POST", "/api/v1/operators", body); status != http.StatusCreated {
			t.Errorf("%s: %d %s, want 201", body, status, reply)
		}
	}
}
