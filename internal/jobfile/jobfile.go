// Package jobfile reads jobs.yaml, the declarative job definitions that
// `muster apply` sends to the master.
//
// Reading is strict and reports everything at once: every unknown key
// (with the closest known key, if one is close), every value of the wrong
// shape, every rule a job breaks (muster.Job.Problems), every invalid time
// zone or schedule and every job defined twice, each at FILE:LINE:COL of
// the key it is about. YAML syntax errors are reported at the line that
// broke the rule, not where yaml.v3 says (the start of the enclosing
// block). A file is at most MaxSize bytes, and aliases may not expand it
// past MaxExpandedSize: both are checked before anything is decoded.
package jobfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// MaxSize bounds a job file; it is checked before parsing.
const MaxSize = 4 << 20

// Read parses and checks a job file. name is used in errors
// ("jobs.yaml:7:9: ..."). Jobs are enabled unless they say otherwise.
// Every error is a *muster.Error with code EINVALID listing each problem
// on a line of its own.
func Read(name string, r io.Reader) ([]muster.Job, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	ps := &problems{file: name}
	if len(b) > MaxSize {
		ps.add(0, 0, "the file is over %s (MaxSize); split it, or apply it in parts", bytesText(MaxSize))
		return nil, ps.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, 0, "the file is empty; it needs a jobs: list")
		} else {
			p := syntaxProblem(b, err)
			ps.list = append(ps.list, p)
		}
		return nil, ps.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		ps.add(at.Line, at.Column, "a second YAML document (after ---); put every job in the one jobs: list")
	} else if !errors.Is(err, io.EOF) {
		ps.list = append(ps.list, syntaxProblem(b, err))
	}
	if p := checkExpansion(&doc); p != nil {
		ps.list = append(ps.list, *p)
		return nil, ps.err()
	}
	items := jobItems(ps, resolve(doc.Content[0]))
	if items == nil {
		return nil, ps.err()
	}
	jobs := make([]muster.Job, 0, len(items))
	seen := map[string]int{}
	for _, item := range items {
		j := muster.NewJob()
		before := len(ps.list)
		jd := &decoder{ps: ps, job: jobName(item)}
		jd.decode(item, reflect.ValueOf(&j).Elem(), "", "jobs")
		if len(ps.list) == before {
			// Rules are checked only on a job read whole: a value that
			// could not be read would be reported again as missing.
			check(ps, item, &j)
		}
		if j.Name != "" {
			if line, dup := seen[j.Name]; dup {
				at := ownKey(item, "name")
				ps.add(at.Line, at.Column, "job %q is already defined on line %d", j.Name, line)
			}
			seen[j.Name] = lookup(item, "name").Line
		}
		jobs = append(jobs, j)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return jobs, nil
}

// jobItems returns the items of the file's jobs: list (empty, not nil,
// for an empty list), or nil after recording why the file has none.
func jobItems(ps *problems, top *yaml.Node) []*yaml.Node {
	if top.Kind != yaml.MappingNode {
		ps.add(top.Line, top.Column, "the file must be a mapping with a top-level jobs: list, e.g. jobs: [{name: backup, ...}]")
		return nil
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := resolve(top.Content[i])
		if k.Kind == yaml.ScalarNode && k.Value == "jobs" {
			continue
		}
		if s := suggest(k.Value, []string{"jobs"}); s != "" {
			ps.add(k.Line, k.Column, "unknown key %q in the file; did you mean %q?", k.Value, s)
		} else {
			ps.add(k.Line, k.Column, "unknown key %q in the file; its only key is jobs", k.Value)
		}
	}
	jobs := findKey(top, "jobs")
	switch {
	case jobs == nil:
		ps.add(top.Line, top.Column, "the file needs a top-level jobs: list")
		return nil
	case isNull(jobs):
		return []*yaml.Node{}
	case jobs.Kind != yaml.SequenceNode:
		(&decoder{ps: ps}).wrongShape(jobs, jobs, "jobs", "jobs", "a list")
		return nil
	}
	// An empty list (jobs: []) is a file of no jobs, not a file without
	// its list.
	return append([]*yaml.Node{}, jobs.Content...)
}

// ownKey returns where a mapping gives key itself, else the mapping:
// where it is written, when it has the key through an alias or a merge
// key (its place is then the anchor's, elsewhere in the file).
func ownKey(item *yaml.Node, key string) *yaml.Node {
	if item.Kind != yaml.MappingNode {
		return item
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if k := resolve(item.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return item.Content[i]
		}
	}
	return item
}

// jobName returns the name a job's mapping gives, if it gives one as a
// plain value.
func jobName(item *yaml.Node) string {
	if n := findKey(item, "name"); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// scheduleField matches a schedule's error that starts with the key it is
// about: `cron "…": …`, `at: …`, `daily.every: …`.
var scheduleField = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_]+)*)(?:: | ")`)

// check records the rules a decoded job breaks, each at the key it is
// about: muster.Job's own rules, its time zone, and its schedules as the
// master compiles them (in the job's zone, else UTC).
func check(ps *problems, item *yaml.Node, j *muster.Job) {
	for _, p := range j.Problems() {
		at := lookup(item, p.Path)
		ps.add(at.Line, at.Column, "%s", p.Message)
	}
	loc := time.UTC
	if j.TimeZone != "" {
		// With a zone that does not exist, the schedules are still
		// checked, in UTC: most of their rules do not depend on the zone.
		if l, err := schedule.LoadZone(j.TimeZone); err != nil {
			at := lookup(item, "time_zone")
			ps.add(at.Line, at.Column, "job %q: time_zone: %q is not an IANA time zone such as Europe/Paris", j.Name, j.TimeZone)
		} else {
			loc = l
		}
	}
	compile := func(path string, schedules []muster.Schedule) {
		for i, s := range schedules {
			if _, err := schedule.Compile(s, loc); err != nil {
				name := s.Name
				if name == "" {
					name = muster.DefaultScheduleName(i)
				}
				msg := muster.ErrorMessage(err)
				at := lookup(item, fmt.Sprintf("%s[%d]", path, i))
				if m := scheduleField.FindStringSubmatch(msg); m != nil {
					// The key the message is about, or as near it as
					// the file goes.
					at = lookup(item, fmt.Sprintf("%s[%d].%s", path, i, m[1]))
				}
				ps.add(at.Line, at.Column, "job %q: %s[%d] %q: %s", j.Name, path, i, name, msg)
			}
		}
	}
	compile("schedules", j.Schedules)
	for i, o := range j.Overrides {
		if o.Schedules != nil {
			compile(fmt.Sprintf("overrides[%d].schedules", i), *o.Schedules)
		}
	}
}
