package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// openAPIDoc reads the document as it is on disk (the same bytes server.go
// embeds) and decodes it.
func openAPIDoc(t *testing.T) (raw []byte, doc map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return raw, doc
}

func TestOpenAPIDocument(t *testing.T) {
	raw, doc := openAPIDoc(t)
	v, _ := doc["openapi"].(string)
	if !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] != "muster operator API" || info["version"] != "1" {
		t.Errorf("info: title %q, version %q", info["title"], info["version"])
	}
	// Pretty-printed with a 2-space indent, so diffs stay readable.
	var want bytes.Buffer
	if err := json.Indent(&want, bytes.TrimSpace(raw), "", "  "); err != nil {
		t.Fatal(err)
	}
	want.WriteByte('\n')
	if !bytes.Equal(raw, want.Bytes()) {
		t.Errorf("openapi.json is not indented with 2 spaces (and ending in one newline)")
	}
}

// registeredRoutes returns the method+path pairs Routes registers, keyed
// "get /api/v1/jobs/{name}".
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	s := &httpapi.Server{}
	s.Routes(http.NewServeMux())
	routes := map[string]bool{
		// Registered with mux.HandleFunc directly, not through handle.
		"get /api/v1/openapi.json": true,
	}
	for _, p := range s.Patterns() {
		method, path, ok := strings.Cut(p, " ")
		if !ok || !strings.HasPrefix(path, "/") {
			t.Fatalf("pattern %q is not METHOD /path", p)
		}
		routes[strings.ToLower(method)+" "+path] = true
	}
	if len(routes) < 2 {
		t.Fatalf("Routes registered no patterns")
	}
	return routes
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPICoversRoutes(t *testing.T) {
	_, doc := openAPIDoc(t)
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("the document has no paths")
	}
	documented := map[string]bool{}
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method := range ops {
			if slices.Contains(httpMethods, method) {
				documented[method+" "+path] = true
			}
		}
	}
	routes := registeredRoutes(t)
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %q is registered but not in openapi.json", r)
		}
	}
	for r := range documented {
		if !routes[r] {
			t.Errorf("openapi.json documents %s, which Routes does not register", r)
		}
	}
}

var pathParamRE = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIOperations(t *testing.T) {
	_, doc := openAPIDoc(t)
	paths, _ := doc["paths"].(map[string]any)
	ids := map[string]string{}
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, o := range ops {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			at := method + " " + path
			op, _ := o.(map[string]any)
			id, _ := op["operationId"].(string)
			switch {
			case id == "":
				t.Errorf("%s: no operationId", at)
			case ids[id] != "":
				t.Errorf("%s: operationId %q is also used by %s", at, id, ids[id])
			}
			ids[id] = at
			if s, _ := op["summary"].(string); s == "" {
				t.Errorf("%s: no summary", at)
			}
			if rs, _ := op["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s: no responses", at)
			}
			// Every operation behind a token names the role it needs.
			if sec, set := op["security"].([]any); !set || len(sec) > 0 {
				desc, _ := op["description"].(string)
				if !regexp.MustCompile(`Role: (reader|operator|admin)\.`).MatchString(desc) {
					t.Errorf("%s: the description does not name the minimum role (\"Role: operator.\")", at)
				}
			}
			// Every {param} of the path is declared, and only those.
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			inPath := map[string]bool{}
			for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
				inPath[m[1]] = true
				if !declared[m[1]] {
					t.Errorf("%s: path parameter {%s} is not declared", at, m[1])
				}
			}
			for name := range declared {
				if !inPath[name] {
					t.Errorf("%s: declares path parameter %q, which the path does not have", at, name)
				}
			}
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	_, doc := openAPIDoc(t)
	n := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"]; ok {
				n++
				s, _ := r.(string)
				if !strings.HasPrefix(s, "#/components/") {
					t.Errorf("%s: $ref %q does not point into #/components/", at, s)
				} else if _, ok := resolvePointer(doc, s[1:]); !ok {
					t.Errorf("%s: $ref %q does not resolve", at, s)
				}
			}
			for k, e := range v {
				walk(at+"/"+k, e)
			}
		case []any:
			for _, e := range v {
				walk(at+"[]", e)
			}
		}
	}
	walk("#", doc)
	if n == 0 {
		t.Error("the document has no $ref at all")
	}
}

// resolvePointer follows a JSON pointer (RFC 6901) such as
// "/components/schemas/Job" through doc.
func resolvePointer(doc any, ptr string) (any, bool) {
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// The document is served without a token, as the bytes on disk.
func TestOpenAPIServed(t *testing.T) {
	raw, _ := openAPIDoc(t)
	mux := http.NewServeMux()
	(&httpapi.Server{}).Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), raw) {
		t.Error("the served document differs from openapi.json")
	}
}

// TestOpenAPISchemasMatchTypes checks that each schema documents exactly the
// JSON fields its Go type has, so the document cannot drift from the code.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	_, doc := openAPIDoc(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	code := 0
	for name, v := range map[string]any{
		"Target": muster.Target{DefectedAt: new(time.Time), DefectedBy: "x", Departure: "x"},
		"Job": muster.Job{Targets: []string{"x"}, Schedules: []muster.Schedule{{}}, Version: 1, Description: "x", Category: "x",
			TimeZone: "x", Timeout: 1, Env: map[string]string{"A": "x"}, Misfire: "x", Groups: []string{"x"},
			TargetEnv: map[string]map[string]string{"x": {}}, MaxParallelTargets: 1, Overrides: []muster.Override{{}}},
		"Override": muster.Override{Target: "x", Group: "x", Enabled: new(bool), Schedules: &[]muster.Schedule{}, Timeout: new(muster.Duration),
			Env: map[string]string{"A": "x"}, Steps: map[string]muster.StepOverride{"x": {}}},
		"StepOverride": muster.StepOverride{Timeout: new(muster.Duration), Connection: new(string), RunAs: new(string)},
		"Step": muster.Step{Shell: "x", Command: []string{"x"}, SQL: "x", Connection: "x", Params: []string{"x"}, Workdir: "x",
			Env: map[string]string{"A": "x"}, Timeout: 1, Retry: &muster.Retry{}, OnSuccess: "x", OnFailure: "x", RunAs: "x"},
		"Retry":        muster.Retry{Interval: 1},
		"TargetFires":  muster.TargetFires{},
		"Fire":         muster.Fire{},
		"PurgeResult":  muster.PurgeResult{},
		"Group":        muster.Group{},
		"PostRequest":  httpapi.PostRequest{Job: "x", Targets: []string{"x"}, Value: 1},
		"PollResult":   httpapi.PollResult{},
		"ResyncBody":   httpapi.ResyncBody{Targets: []string{"x"}, All: true},
		"PauseBody":    httpapi.PauseBody{Targets: []string{"x"}, Group: "x"},
		"TargetsBody":  httpapi.TargetsBody{},
		"TargetUpdate": httpapi.TargetUpdate{Location: new(string), Description: new(string)},
		"Run":          muster.Run{Message: "x", TargetOffline: true},
		"StepAttempt":  muster.StepAttempt{ExitCode: &code, Message: "x"},
		"Instruction":  muster.Instruction{RunID: "x", Queued: true},
		"JobTarget":    muster.JobTarget{},
		"JobChange": muster.JobChange{Diff: []string{"x"}, Instructions: []string{"x"}, Posted: []muster.Instruction{{}},
			LeftOut: []string{"x"}, Warnings: []string{"x"}, Notes: []string{"x"}},
		"StartResult":   muster.StartResult{Rollout: &muster.Rollout{}},
		"RolloutSpec":   muster.RolloutSpec{},
		"Rollout":       muster.Rollout{Reason: "x", EndedAt: new(time.Time)},
		"RolloutTarget": muster.RolloutTarget{DurationMS: 1, Message: "x"},
		"Event":         muster.Event{Window: 1},
		"Operator":      muster.Operator{},
		"Alert":         muster.Alert{Window: 1},
		"Delivery":      muster.Delivery{},

		"OperatorRequest":    httpapi.OperatorRequest{Webhook: "x", Email: "x", WebhookSecret: "x"},
		"OperatorUpdate":     httpapi.OperatorUpdate{Webhook: new(string), Email: new(string), WebhookSecret: new(string), NewSecret: true},
		"OperatorResponse":   httpapi.OperatorResponse{WebhookSecret: "x"},
		"AlertRequest":       httpapi.AlertRequest{Job: "x", Target: "x", MinSeverity: 1, Window: 1},
		"APIKey":             muster.APIKey{},
		"EnlistToken":        muster.EnlistToken{},
		"TokenRevokeRequest": httpapi.TokenRevokeRequest{},
		"KeyRequest":         httpapi.KeyRequest{Scopes: []string{"x"}, TTLSeconds: 1},
		"KeyResponse":        httpapi.KeyResponse{},
		"LoginLinkRequest":   httpapi.LoginLinkRequest{Role: "x", TTLSeconds: 1},
		"LoginLinkResponse":  httpapi.LoginLinkResponse{},
		"AuditEntry":         muster.AuditEntry{Actor: muster.Actor{Role: "x", Source: "x"}, Object: "x"},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		json.Unmarshal(b, &fields)
		schema, _ := schemas[name].(map[string]any)
		props, _ := schema["properties"].(map[string]any)
		var got, want []string
		for k := range props {
			got = append(got, k)
		}
		for k := range fields {
			want = append(want, k)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s documents %v; the type has %v", name, got, want)
		}
	}
}
