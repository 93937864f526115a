package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// validate checks v (decoded JSON) against an OpenAPI 3.1 schema (JSON
// Schema, the keywords the document uses) and returns each violation, at
// its JSON pointer. A field an object's schema does not list is a
// violation, unless the schema says what other fields hold, or is a part
// of an allOf.
func validate(doc map[string]any, schema any, v any, at string) []string {
	return validateIn(doc, schema, v, at, false)
}

func validateIn(doc map[string]any, schema any, v any, at string, open bool) []string {
	s, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		target, found := resolvePointer(doc, strings.TrimPrefix(ref, "#"))
		if !found {
			return []string{at + ": $ref " + ref + " does not resolve"}
		}
		return validateIn(doc, target, v, at, open)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, e := range t {
				types = append(types, e.(string))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			fail("%s, not of type %v", short(v), types)
			return errs
		}
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, v) }) {
		fail("%s is not one of %v", short(v), e)
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, v) {
		fail("%s is not %v", short(v), c)
	}
	if n, ok := v.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v is below the minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v is above the maximum %v", n, m)
		}
	}
	if str, ok := v.(string); ok {
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("%q is not a date-time", str)
			}
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	for _, sub := range anyList(s["allOf"]) {
		errs = append(errs, validateIn(doc, sub, v, at, true)...)
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		alts := anyList(s[key])
		if len(alts) == 0 {
			continue
		}
		matched := 0
		for _, sub := range alts {
			if len(validate(doc, sub, v, at)) == 0 {
				matched++
			}
		}
		if matched == 0 || key == "oneOf" && matched > 1 {
			fail("%s matches %d of the %d schemas of %s", short(v), matched, len(alts), key)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range anyList(s["required"]) {
			if _, ok := v[r.(string)]; !ok {
				fail("required field %q is missing", r)
			}
		}
		for k, e := range v {
			if p, ok := props[k]; ok {
				errs = append(errs, validate(doc, p, e, at+"/"+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("field %q is not in the schema", k)
				}
			case map[string]any:
				errs = append(errs, validate(doc, ap, e, at+"/"+k)...)
			default:
				if props != nil && !open && s["allOf"] == nil && s["unevaluatedProperties"] == nil {
					fail("field %q is not in the schema", k)
				}
			}
		}
	case []any:
		for i, e := range v {
			errs = append(errs, validate(doc, s["items"], e, fmt.Sprintf("%s/%d", at, i))...)
		}
	}
	return errs
}

func anyList(v any) []any { l, _ := v.([]any); return l }

func hasType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// responseSchema returns the schema the document gives the reply with
// status to method path ("/api/v1/jobs/{name}").
func responseSchema(t *testing.T, doc map[string]any, method, path string, status int) any {
	t.Helper()
	op, ok := resolvePointer(doc, "/paths/"+strings.ReplaceAll(path, "/", "~1")+"/"+strings.ToLower(method))
	if !ok {
		t.Fatalf("the document has no %s %s", method, path)
	}
	r, ok := op.(map[string]any)["responses"].(map[string]any)[fmt.Sprint(status)]
	if !ok {
		t.Fatalf("%s %s: the document has no %d reply", method, path, status)
	}
	if ref, ok := r.(map[string]any)["$ref"].(string); ok {
		r, _ = resolvePointer(doc, strings.TrimPrefix(ref, "#"))
	}
	s, _ := resolvePointer(r, "/content/application~1json/schema")
	return s
}

// Real replies of the API, reads and changes, errors among them, hold to
// the schemas the OpenAPI document gives them: the fields it says are
// required are there, and each has the type, format and values it says.
func TestRepliesMatchTheOpenAPIDocument(t *testing.T) {
	_, doc := openAPIDoc(t)
	// The check sees what is wrong.
	bad := map[string]any{"name": "web1", "status": "lost", "flags": []any{}, "extra": true}
	if errs := validate(doc, map[string]any{"$ref": "#/components/schemas/Target"}, bad, "#"); len(errs) < 3 {
		t.Fatalf("a target with a status that is none, an unknown field and most fields missing: %q", errs)
	}
	s := newInputServer(t, catalogtest.SQLite)
	for _, tc := range []struct {
		method, pattern, path, body string
		status                      int
	}{
		{"GET", "/api/v1/targets", "/api/v1/targets", "", 200},
		{"GET", "/api/v1/targets/{name}", "/api/v1/targets/web1", "", 200},
		{"PATCH", "/api/v1/targets/{name}", "/api/v1/targets/web1", `{"location": "rack 4"}`, 200},
		{"GET", "/api/v1/jobs", "/api/v1/jobs", "", 200},
		{"GET", "/api/v1/jobs/{name}", "/api/v1/jobs/backup", "", 200},
		{"GET", "/api/v1/jobs/{name}/history", "/api/v1/jobs/backup/history", "", 200},
		{"GET", "/api/v1/jobs/{name}/next", "/api/v1/jobs/backup/next", "", 200},
		{"GET", "/api/v1/runs", "/api/v1/runs?job=backup", "", 200},
		{"GET", "/api/v1/downloadlist", "/api/v1/downloadlist", "", 200},
		{"GET", "/api/v1/groups", "/api/v1/groups", "", 200},
		{"GET", "/api/v1/operators", "/api/v1/operators", "", 200},
		{"GET", "/api/v1/alerts", "/api/v1/alerts", "", 200},
		{"GET", "/api/v1/events", "/api/v1/events", "", 200},
		{"GET", "/api/v1/apikeys", "/api/v1/apikeys", "", 200},
		{"GET", "/api/v1/audit", "/api/v1/audit", "", 200},
		{"POST", "/api/v1/apply", "/api/v1/apply", `{"jobs": [{"name": "new", "targets": ["web1"], "steps": [{"name": "s", "shell": "true", "timeout": "5m"}], "schedules": [{"cron": "0 3 * * *"}]}]}`, 200},
		{"POST", "/api/v1/jobs/{name}/start", "/api/v1/jobs/backup/start", `{"rollout": {"batch": "1"}}`, 201},
		{"GET", "/api/v1/jobs/{name}/rollouts", "/api/v1/jobs/backup/rollouts", "", 200},
		{"POST", "/api/v1/jobs/{name}/stop", "/api/v1/jobs/backup/stop", `{}`, 200},
		{"POST", "/api/v1/jobs/{name}/disable", "/api/v1/jobs/report/disable", "", 200},
		{"POST", "/api/v1/post", "/api/v1/post", `{"operation": "START", "job": "report"}`, 201},
		{"POST", "/api/v1/post", "/api/v1/post", `{"operation": "SYNC-TIME"}`, 201},
		{"POST", "/api/v1/pause", "/api/v1/pause", `{"group": "web"}`, 200},
		{"POST", "/api/v1/groups/{name}/remove", "/api/v1/groups/web/remove", `{"targets": ["web2"]}`, 200},
		{"POST", "/api/v1/tokens", "/api/v1/tokens", `{"target": "web3"}`, 201},
		{"GET", "/api/v1/tokens", "/api/v1/tokens", "", 200},
		{"POST", "/api/v1/tokens/revoke", "/api/v1/tokens/revoke", `{"target": "web3"}`, 200},
		{"GET", "/api/v1/tokens", "/api/v1/tokens?all=true", "", 200},
		{"POST", "/api/v1/tokens/{id}/revoke", "/api/v1/tokens/999999/revoke", "", 404},
		{"POST", "/api/v1/tokens/revoke", "/api/v1/tokens/revoke", `{"target": "web3"}`, 404},
		{"POST", "/api/v1/operators", "/api/v1/operators", `{"name": "ops", "webhook": "https://hooks.example.com/x"}`, 201},
		{"POST", "/api/v1/alerts", "/api/v1/alerts", `{"name": "slow", "event": "no_success", "window": "1h", "notify": ["ops"]}`, 201},
		{"POST", "/api/v1/apikeys", "/api/v1/apikeys", `{"name": "ci", "role": "operator", "scopes": ["job:back*"], "ttl_seconds": 3600}`, 201},
		{"POST", "/api/v1/history/purge", "/api/v1/history/purge", `{"keep_per_job": 1}`, 200},
		{"POST", "/api/v1/apply", "/api/v1/apply", `{"jobs": [{"name": "x", "steps": [{"name": "s", "shell": "true", "timeout": 5}]}]}`, 400},
		{"GET", "/api/v1/jobs/{name}", "/api/v1/jobs/nope", "", 404},
		{"POST", "/api/v1/groups", "/api/v1/groups", `{"name": "web"}`, 409},
	} {
		status, body := s.call(t, tc.method, tc.path, tc.body)
		what := tc.method + " " + tc.path
		if status != tc.status {
			t.Errorf("%s: %d %s; want %d", what, status, body, tc.status)
			continue
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("%s: the reply is not JSON: %v", what, err)
			continue
		}
		for _, e := range validate(doc, responseSchema(t, doc, tc.method, tc.pattern, status), v, "#") {
			t.Errorf("%s (%d): %s", what, status, e)
		}
	}
}
