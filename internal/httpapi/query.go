package httpapi

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/musterhq/muster"
)

// queryParams holds, for each route pattern ("GET /api/v1/jobs"), the
// query parameters the OpenAPI document gives it, each true when it may
// be given more than once (an array).
var queryParams = sync.OnceValue(func() map[string]map[string]bool {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Type any `json:"type"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		panic("httpapi: openapi.json: " + err.Error())
	}
	out := map[string]map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			params := map[string]bool{}
			for _, p := range op.Parameters {
				if p.In == "query" {
					params[p.Name] = p.Schema.Type == "array"
				}
			}
			out[strings.ToUpper(method)+" "+path] = params
		}
	}
	return out
})

// checkQuery refuses a query parameter the route does not take, and one
// given more than once that is not a list: either would otherwise be
// ignored, or all but its first value would, and a request would do other
// than it said (DELETE /api/v1/targets?all=false&all=true).
func checkQuery(pattern string, q url.Values) error {
	params, ok := queryParams()[pattern]
	if !ok {
		return nil
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		list, known := params[name]
		switch {
		case !known && len(params) == 0:
			return muster.Errorf(muster.EINVALID, "%s: %s takes no query parameters", name, pattern)
		case !known:
			return muster.Errorf(muster.EINVALID, "%s: %s takes no such query parameter; it takes %s", name, pattern, strings.Join(slices.Sorted(maps.Keys(params)), ", "))
		case !list && len(q[name]) > 1:
			return muster.Errorf(muster.EINVALID, "%s: given %d times; give it once", name, len(q[name]))
		}
	}
	return nil
}
