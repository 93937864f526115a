package httpapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// The access table: who may call each route of the operator API. The
// expected table is the one operators read, in docs/security.md; the test
// makes it again from the routes Server registers, by calling each with
// each kind of key, and the two must match cell for cell (reliability test
// plan, T19).

// Kinds of key, as the columns of the table.
var keyKinds = []string{"admin", "operator", "reader", "scoped operator", "scoped reader"}

// Cells of the table.
const (
	allowed = "yes"   // the key may call the route
	denied  = "no"    // the key is refused (403)
	inScope = "scope" // a scoped key may call it, on what is in its scope only
	docPath = "../../docs/security.md"
)

// probe is how the test calls one route: a request on what a scoped key's
// scope covers (job web-backup, group web, targets web1 and web2), and one
// on what it does not (job db-backup, group db, target db1). For a list,
// out is empty and hidden holds what the list must leave out for a scoped
// key.
type probe struct {
	in, out request
	hidden  []string
}

type request struct {
	method, path, body string
}

func get(path string) request { return request{method: http.MethodGet, path: path} }

// same probes a route that names nothing a scope could cover: the same
// request both ways.
func same(r request) probe { return probe{in: r, out: r} }

// list probes a list: the scoped key's answer must not hold hidden.
func list(path string, hidden ...string) probe {
	return probe{in: get(path), hidden: hidden}
}

// probes has one entry per registered route. A route added without one
// fails the test, so every new route gets its line in the table.
var probes = map[string]probe{
	"GET /api/v1/targets":                   list("/api/v1/targets", `"db1"`),
	"GET /api/v1/targets/{name}":            {in: get("/api/v1/targets/web1"), out: get("/api/v1/targets/db1")},
	"PATCH /api/v1/targets/{name}":          {in: request{"PATCH", "/api/v1/targets/web1", `{"location": "dc2"}`}, out: request{"PATCH", "/api/v1/targets/db1", `{"location": "dc2"}`}},
	"DELETE /api/v1/targets/{name}":         {in: request{"DELETE", "/api/v1/targets/web2", ""}, out: request{"DELETE", "/api/v1/targets/db1", ""}},
	"POST /api/v1/tokens":                   same(request{"POST", "/api/v1/tokens", `{"target": "new1"}`}),
	"GET /api/v1/tokens":                    same(get("/api/v1/tokens?all=true")),
	"POST /api/v1/tokens/{id}/revoke":       same(request{"POST", "/api/v1/tokens/1/revoke", ""}),
	"POST /api/v1/tokens/revoke":            same(request{"POST", "/api/v1/tokens/revoke", `{"target": "web1"}`}),
	"GET /api/v1/jobs":                      list("/api/v1/jobs", `"db-backup"`),
	"POST /api/v1/apply":                    {in: request{"POST", "/api/v1/apply", applyBody("web-new", "web")}, out: request{"POST", "/api/v1/apply", applyBody("db-new", "db")}},
	"GET /api/v1/jobs/{name}":               {in: get("/api/v1/jobs/web-backup"), out: get("/api/v1/jobs/db-backup")},
	"DELETE /api/v1/jobs/{name}":            {in: request{"DELETE", "/api/v1/jobs/web-backup", ""}, out: request{"DELETE", "/api/v1/jobs/db-backup", ""}},
	"POST /api/v1/jobs/{name}/enable":       {in: request{"POST", "/api/v1/jobs/web-backup/enable", ""}, out: request{"POST", "/api/v1/jobs/db-backup/enable", ""}},
	"POST /api/v1/jobs/{name}/disable":      {in: request{"POST", "/api/v1/jobs/web-backup/disable", ""}, out: request{"POST", "/api/v1/jobs/db-backup/disable", ""}},
	"POST /api/v1/jobs/{name}/start":        {in: request{"POST", "/api/v1/jobs/web-backup/start", ""}, out: request{"POST", "/api/v1/jobs/db-backup/start", ""}},
	"POST /api/v1/jobs/{name}/stop":         {in: request{"POST", "/api/v1/jobs/web-backup/stop", ""}, out: request{"POST", "/api/v1/jobs/db-backup/stop", ""}},
	"GET /api/v1/jobs/{name}/history":       {in: get("/api/v1/jobs/web-backup/history"), out: get("/api/v1/jobs/db-backup/history")},
	"GET /api/v1/jobs/{name}/next":          {in: get("/api/v1/jobs/web-backup/next"), out: get("/api/v1/jobs/db-backup/next")},
	"GET /api/v1/jobs/{name}/rollouts":      {in: get("/api/v1/jobs/web-backup/rollouts"), out: get("/api/v1/jobs/db-backup/rollouts")},
	"GET /api/v1/jobs/{name}/rollouts/{id}": {in: get("/api/v1/jobs/web-backup/rollouts/1"), out: get("/api/v1/jobs/db-backup/rollouts/1")},
	"POST /api/v1/history/purge":            same(request{"POST", "/api/v1/history/purge", `{"keep_per_job": 1}`}),
	"GET /api/v1/runs":                      {in: get("/api/v1/runs?job=web-backup"), out: get("/api/v1/runs?job=db-backup")},
	"GET /api/v1/downloadlist":              list("/api/v1/downloadlist", `"db1"`, `"db-backup"`),
	"POST /api/v1/downloadlist/{seq}/retry": {in: request{"POST", "/api/v1/downloadlist/1/retry?target=web1", ""}, out: request{"POST", "/api/v1/downloadlist/1/retry?target=db1", ""}},
	"DELETE /api/v1/downloadlist/{seq}":     {in: request{"DELETE", "/api/v1/downloadlist/1?target=web1", ""}, out: request{"DELETE", "/api/v1/downloadlist/1?target=db1", ""}},
	"GET /api/v1/groups":                    list("/api/v1/groups", `"db"`, `"db1"`, `"db-backup"`),
	"POST /api/v1/groups":                   same(request{"POST", "/api/v1/groups", `{"name": "ops"}`}),
	"DELETE /api/v1/groups/{name}":          {in: request{"DELETE", "/api/v1/groups/web", ""}, out: request{"DELETE", "/api/v1/groups/db", ""}},
	"POST /api/v1/groups/{name}/rename":     {in: request{"POST", "/api/v1/groups/web/rename", `{"name": "www"}`}, out: request{"POST", "/api/v1/groups/db/rename", `{"name": "dbs"}`}},
	"POST /api/v1/groups/{name}/add":        {in: request{"POST", "/api/v1/groups/web/add", `{"targets": ["web1"]}`}, out: request{"POST", "/api/v1/groups/db/add", `{"targets": ["web1"]}`}},
	"POST /api/v1/groups/{name}/remove":     {in: request{"POST", "/api/v1/groups/web/remove", `{"targets": ["web2"]}`}, out: request{"POST", "/api/v1/groups/db/remove", `{"targets": ["db1"]}`}},
	"POST /api/v1/post":                     {in: request{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["web1"]}`}, out: request{"POST", "/api/v1/post", `{"operation": "SYNC-TIME", "targets": ["db1"]}`}},
	"POST /api/v1/resync":                   {in: request{"POST", "/api/v1/resync", `{"targets": ["web1"]}`}, out: request{"POST", "/api/v1/resync", `{"targets": ["db1"]}`}},
	"POST /api/v1/pause":                    {in: request{"POST", "/api/v1/pause", `{"targets": ["web1"]}`}, out: request{"POST", "/api/v1/pause", `{"targets": ["db1"]}`}},
	"POST /api/v1/resume":                   {in: request{"POST", "/api/v1/resume", `{"group": "web"}`}, out: request{"POST", "/api/v1/resume", `{"group": "db"}`}},
	"POST /api/v1/targets/{name}/poll":      {in: request{"POST", "/api/v1/targets/web1/poll", ""}, out: request{"POST", "/api/v1/targets/db1/poll", ""}},
	"DELETE /api/v1/targets":                same(request{"DELETE", "/api/v1/targets?all=true", ""}),
	"GET /api/v1/operators":                 same(get("/api/v1/operators")),
	"POST /api/v1/operators":                same(request{"POST", "/api/v1/operators", `{"name": "oncall", "email": "oncall@example.com"}`}),
	"GET /api/v1/operators/{name}":          same(get("/api/v1/operators/MSXOperator")),
	"PATCH /api/v1/operators/{name}":        same(request{"PATCH", "/api/v1/operators/MSXOperator", `{"email": "msx@example.com"}`}),
	"DELETE /api/v1/operators/{name}":       same(request{"DELETE", "/api/v1/operators/dba", ""}),
	"GET /api/v1/alerts":                    same(get("/api/v1/alerts")),
	"POST /api/v1/alerts":                   same(request{"POST", "/api/v1/alerts", `{"name": "a2", "event": "run_failed", "notify": ["MSXOperator"]}`}),
	"DELETE /api/v1/alerts/{name}":          same(request{"DELETE", "/api/v1/alerts/failures", ""}),
	"POST /api/v1/alerts/{name}/enable":     same(request{"POST", "/api/v1/alerts/failures/enable", ""}),
	"POST /api/v1/alerts/{name}/disable":    same(request{"POST", "/api/v1/alerts/failures/disable", ""}),
	"GET /api/v1/alerts/history":            same(get("/api/v1/alerts/history")),
	"GET /api/v1/events":                    list("/api/v1/events", `"db1"`, `"db-backup"`),
	"GET /api/v1/apikeys":                   same(get("/api/v1/apikeys")),
	"POST /api/v1/apikeys":                  same(request{"POST", "/api/v1/apikeys", `{"name": "new-key", "role": "reader"}`}),
	"POST /api/v1/apikeys/{name}/revoke":    same(request{"POST", "/api/v1/apikeys/spare/revoke", ""}),
	"POST /api/v1/loginlinks":               same(request{"POST", "/api/v1/loginlinks", `{"role": "reader"}`}),
	"GET /api/v1/audit":                     same(get("/api/v1/audit")),
}

func applyBody(job, group string) string {
	return fmt.Sprintf(`{"jobs": [{"name": %q, "groups": [%q], "steps": [{"name": "s", "shell": "true"}]}]}`, job, group)
}

// fleet is a master with the fixture every probe runs against, and a key
// of each kind.
type fleet struct {
	env  *testenv.Env
	http *http.Client
	keys map[string]string // by kind
}

// newFleet starts a master with two teams: web (group web: web1, web2;
// job web-backup) and db (group db: db1; job db-backup), each with a
// failed run (and so an event) and pending instructions, an operator dba
// and an alert failures, and a key of each kind. The scoped keys have
// group:web and job:web-*.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t, testenv.Options{})
	m, c := env.Master, env.Client
	ids := map[string]catalog.TargetIdentity{}
	for _, name := range []string{"web1", "web2", "db1"} {
		if _, err := m.Catalog.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, m.Self()); err != nil {
			t.Fatal(err)
		}
		id, err := m.Catalog.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
			func(string) (catalog.IssuedCert, error) {
				return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
	}
	for group, members := range map[string][]string{"web": {"web1", "web2"}, "db": {"db1"}} {
		if err := c.CreateGroup(ctx, group); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GroupMembers(ctx, group, members, false); err != nil {
			t.Fatal(err)
		}
	}
	var jobs []muster.Job
	for name, group := range map[string]string{"web-backup": "web", "db-backup": "db"} {
		j := muster.NewJob()
		j.Name, j.Groups = name, []string{group}
		j.Steps = []muster.Step{{Name: "dump", Shell: "true"}}
		jobs = append(jobs, j)
	}
	if _, err := c.Apply(ctx, httpapi.ApplyRequest{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	for target, job := range map[string]string{"web1": "web-backup", "db1": "db-backup"} {
		res, err := m.Catalog.UpsertRuns(ctx, ids[target], []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: job, RunID: "run-" + target,
			Status: muster.RunFailed, Trigger: "operator", StartedAt: time.Now()}}})
		if err != nil || !res[0].OK {
			t.Fatalf("upload a run of %s: %+v, %v", job, res, err)
		}
	}
	if _, err := c.CreateOperator(ctx, httpapi.OperatorRequest{Name: "dba", Email: "dba@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlert(ctx, httpapi.AlertRequest{Name: "failures", Event: muster.EventRunFailed, Notify: []string{"dba"}}); err != nil {
		t.Fatal(err)
	}
	f := &fleet{env: env, keys: map[string]string{"admin": m.AdminToken}}
	scopes := []string{"group:web", "job:web-*"}
	for _, k := range []httpapi.KeyRequest{
		{Name: "operator", Role: catalog.RoleOperator},
		{Name: "reader", Role: catalog.RoleReader},
		{Name: "scoped-operator", Role: catalog.RoleOperator, Scopes: scopes},
		{Name: "scoped-reader", Role: catalog.RoleReader, Scopes: scopes},
		{Name: "spare", Role: catalog.RoleReader},
	} {
		res, err := c.CreateAPIKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[strings.ReplaceAll(k.Name, "-", " ")] = res.Key
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: m.CA.Pool()}
	f.http = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return f
}

// call makes a request with a key and returns the status and body.
func (f *fleet) call(t *testing.T, key string, r request) (int, string) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, f.env.Master.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// access works out what a key of kind may do with a route, by calling it.
func (f *fleet) access(t *testing.T, pattern, kind string, p probe) string {
	t.Helper()
	status, body := f.call(t, f.keys[kind], p.in)
	switch {
	case status == http.StatusUnauthorized:
		t.Fatalf("%s with the %s key: 401 %s", pattern, kind, body)
	case status == http.StatusForbidden:
		return denied
	case !strings.HasPrefix(kind, "scoped"):
		return allowed
	}
	if p.hidden != nil {
		if status != http.StatusOK {
			t.Fatalf("%s with the %s key: %d %s", pattern, kind, status, body)
		}
		for _, h := range p.hidden {
			if strings.Contains(body, h) {
				return allowed // it sees beyond its scope
			}
		}
		return inScope
	}
	if status, _ := f.call(t, f.keys[kind], p.out); status == http.StatusForbidden {
		return inScope
	}
	return allowed
}

// documentedAccess reads the access table from docs/security.md, between
// its markers: each row is a route in backquotes, then one cell per kind
// of key.
func documentedAccess(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table := map[string][]string{}
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "<!-- access table -->":
			in = true
			continue
		case line == "<!-- end of access table -->":
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) < 1+len(keyKinds) {
			t.Fatalf("%s: the row %q has %d cells, want the route and one per kind of key", docPath, line, len(cells))
		}
		table[strings.Trim(cells[0], "`")] = cells[1 : 1+len(keyKinds)]
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(table) == 0 {
		t.Fatalf("%s has no access table between <!-- access table --> and <!-- end of access table -->", docPath)
	}
	return table
}

// TestAccessTable calls every registered route with every kind of key and
// checks the result against the documented table: 100% of the cells match,
// every route is documented, and nothing is documented that is not
// registered.
func TestAccessTable(t *testing.T) {
	want := documentedAccess(t)
	s := &httpapi.Server{}
	s.Routes(http.NewServeMux())
	patterns := s.Patterns()
	got := map[string][]string{}
	for _, pattern := range patterns {
		p, ok := probes[pattern]
		if !ok {
			t.Errorf("route %s has no probe in access_test.go: add one, and its row in %s", pattern, docPath)
			continue
		}
		f := newFleet(t)
		row := make([]string, len(keyKinds))
		for i, kind := range keyKinds {
			row[i] = f.access(t, pattern, kind, p)
		}
		got[pattern] = row
	}
	cells := 0
	for _, pattern := range patterns {
		row, ok := got[pattern]
		if !ok {
			continue
		}
		if _, ok := want[pattern]; !ok {
			t.Errorf("route %s is not in the table of %s; it behaves as: | `%s` | %s |", pattern, docPath, pattern, strings.Join(row, " | "))
			continue
		}
		for i, kind := range keyKinds {
			cells++
			if row[i] != want[pattern][i] {
				t.Errorf("%s with the %s key: %s, but %s says %s", pattern, kind, row[i], docPath, want[pattern][i])
			}
		}
	}
	for pattern := range want {
		if !slices.Contains(patterns, pattern) {
			t.Errorf("%s documents %s, which the server does not register", docPath, pattern)
		}
	}
	if want := len(patterns) * len(keyKinds); cells != want {
		t.Errorf("checked %d cells, want %d (%d routes × %d kinds of key)", cells, want, len(patterns), len(keyKinds))
	}
	t.Logf("%d routes × %d kinds of key: %d cells checked", len(patterns), len(keyKinds), cells)
}

// A request to a path or method the API does not have is refused, with any
// key and without one, and the audit log has no route that changes it.
func TestUnknownRoutesAreDenied(t *testing.T) {
	f := newFleet(t)
	for _, r := range []request{
		get("/api/v1/nope"),
		{"PUT", "/api/v1/jobs", "{}"},
		{"DELETE", "/api/v1/audit", ""},
		{"POST", "/api/v1/audit", "{}"},
		{"PATCH", "/api/v1/audit", "{}"},
		{"PUT", "/api/v1/audit", "{}"},
		{"DELETE", "/api/v1/apikeys/reader", ""},
	} {
		for _, kind := range append([]string{""}, keyKinds...) {
			status, body := f.call(t, f.keys[kind], r)
			if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s with key %q: %d %s, want 404 or 405", r.method, r.path, kind, status, body)
			}
		}
	}
}
