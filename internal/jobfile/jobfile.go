// Package jobfile reads jobs.yaml, the declarative job definitions that
// `muster apply` sends to the master. Reading is strict: an unknown key is
// an error naming it and its line, never dropped.
package jobfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// MaxSize bounds a job file; it is checked before parsing.
const MaxSize = 4 << 20

// file is the shape of jobs.yaml.
type file struct {
	Jobs []muster.Job `yaml:"jobs"`
}

// Read parses a job file. name is used in errors ("jobs.yaml: line 7: ...").
// Jobs are enabled unless they say otherwise.
func Read(name string, r io.Reader) ([]muster.Job, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: the file is over %d bytes", name, MaxSize)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", name, explain(err))
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty; it needs a jobs: list", name)
		}
		return nil, fmt.Errorf("%s: %s", name, explain(err))
	}
	nodes := jobNodes(&root)
	if nodes == nil {
		return nil, fmt.Errorf("%s: the file needs a top-level jobs: list", name)
	}
	for i := range f.Jobs {
		// A job is enabled unless it says enabled: false.
		if i < len(nodes) && !hasKey(nodes[i], "enabled") {
			f.Jobs[i].Enabled = true
		}
		if err := f.Jobs[i].Validate(); err != nil {
			line := 0
			if i < len(nodes) {
				line = nodes[i].Line
			}
			return nil, fmt.Errorf("%s: line %d: %s", name, line, muster.ErrorMessage(err))
		}
	}
	if f.Jobs == nil {
		f.Jobs = []muster.Job{}
	}
	return f.Jobs, nil
}

// jobNodes returns the mapping nodes of the jobs list.
func jobNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "jobs" {
			// An empty list (jobs: []) is a file of no jobs, not a file
			// without its list.
			return append([]*yaml.Node{}, top.Content[i+1].Content...)
		}
	}
	return nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

var (
	unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)
	typeWords    = map[string]string{
		"jobfile.file": "the file", "muster.Job": "a job", "muster.Step": "a step", "muster.Schedule": "a schedule",
		"muster.Repeat": "repeat", "muster.DailyFrequency": "daily", "muster.WeeklyFrequency": "weekly",
		"muster.MonthlyFrequency": "monthly", "muster.MonthlyRelativeFrequency": "monthly_relative",
		"muster.Retry": "retry",
	}
)

// explain rewrites yaml's messages for a person: "line 7: unknown key
// "shel" in a step" rather than "field shel not found in type muster.Step".
func explain(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = unknownField.ReplaceAllStringFunc(msg, func(s string) string {
		m := unknownField.FindStringSubmatch(s)
		where := typeWords[m[3]]
		if where == "" {
			where = m[3]
		}
		return fmt.Sprintf("line %s: unknown key %q in %s", m[1], m[2], where)
	})
	return strings.ReplaceAll(msg, "\n  ", "; ")
}
