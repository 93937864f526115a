package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/musterhq/muster"
)

// diffJobs describes how b differs from a, one line per changed leaf:
// "+ path: value" (added), "- path: value" (removed), "~ path: old -> new".
// A nil a is a job being created: every leaf of b is added.
func diffJobs(a, b *muster.Job) []string {
	before, after := map[string]string{}, map[string]string{}
	if a != nil {
		flattenJob(*a, before)
	}
	flattenJob(*b, after)
	var paths []string
	for p := range before {
		paths = append(paths, p)
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var lines []string
	for _, p := range paths {
		old, hadOld := before[p]
		new, hasNew := after[p]
		switch {
		case hadOld && hasNew && old != new:
			lines = append(lines, fmt.Sprintf("~ %s: %s -> %s", p, old, new))
		case !hadOld:
			lines = append(lines, fmt.Sprintf("+ %s: %s", p, new))
		case !hasNew:
			lines = append(lines, fmt.Sprintf("- %s: %s", p, old))
		}
	}
	return lines
}

func flattenJob(j muster.Job, out map[string]string) {
	j.Version = 0
	b, err := json.Marshal(j)
	if err != nil {
		return
	}
	var v any
	if json.Unmarshal(b, &v) == nil {
		flatten("", v, out)
	}
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && prefix != "" {
			// An empty mapping is a value of its own, as stored.
			out[prefix] = "{}"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 {
			// An empty list is a value of its own: an override's
			// schedules: [] leaves a target none, where no schedules key
			// leaves it the job's.
			out[prefix] = "[]"
		}
		for i, e := range x {
			flatten(prefix+"["+strconv.Itoa(i)+"]", e, out)
		}
	case nil:
		// An absent value is no leaf: a list that was null and is now
		// set shows its elements as added, not "null" as removed.
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}
