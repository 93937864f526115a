package jobfile

import (
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// Entry returns j as a job file holds it: without what the master sets
// (its version) and without the defaults Read and the master fill in again
// (schedule names schedule-1, schedule-2, …), so that applying the entry
// gives j back unchanged.
func Entry(j muster.Job) muster.Job {
	j.Version = 0
	if len(j.Schedules) > 0 {
		j.Schedules = append([]muster.Schedule(nil), j.Schedules...)
		for i := range j.Schedules {
			if j.Schedules[i].Name == muster.DefaultScheduleName(i) {
				j.Schedules[i].Name = ""
			}
		}
	}
	return j
}

// Write writes jobs as a job file: the form `muster export` prints and
// `muster apply` reads. Each job goes through Entry, and enabled is written
// only when it is false, so a file written by hand comes back as it was
// written, and Read of what Write wrote gives the same definitions.
func Write(w io.Writer, jobs []muster.Job) error {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, j := range jobs {
		var n yaml.Node
		if err := n.Encode(Entry(j)); err != nil {
			return fmt.Errorf("job %q: %w", j.Name, err)
		}
		if j.Enabled {
			removeKey(&n, "enabled")
		}
		compact(&n, "")
		seq.Content = append(seq.Content, &n)
	}
	if len(jobs) == 0 {
		seq.Style = yaml.FlowStyle
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "jobs"}, seq,
	}}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// removeKey drops key and its value from a mapping node.
func removeKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

// flowKeys are the small mappings written on one line, as docs/jobs.md
// writes them: retry: {attempts: 2, interval: 5m}.
var flowKeys = map[string]bool{
	"retry": true, "daily": true, "weekly": true, "monthly": true, "monthly_relative": true, "repeat": true,
}

// maxFlowLen is the longest list or mapping written on one line.
const maxFlowLen = 72

// compact writes short lists of scalars and the small mappings of flowKeys
// on one line, as people write them. key is the key n is the value of.
func compact(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			compact(n.Content[i+1], n.Content[i].Value)
		}
		if flowKeys[key] && oneLine(n) {
			n.Style = yaml.FlowStyle
		}
	case yaml.SequenceNode:
		scalars := true
		for _, c := range n.Content {
			compact(c, "")
			scalars = scalars && c.Kind == yaml.ScalarNode
		}
		if scalars && oneLine(n) {
			n.Style = yaml.FlowStyle
		}
	}
}

// oneLine reports whether a node holds only short one-line scalars.
func oneLine(n *yaml.Node) bool {
	total := 0
	var walk func(*yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.ScalarNode {
			total += len(n.Value) + 2
			return !strings.ContainsAny(n.Value, "\n\r")
		}
		for _, c := range n.Content {
			if !walk(c) {
				return false
			}
		}
		return true
	}
	return walk(n) && total <= maxFlowLen
}
