package jobfile

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// placed matches a message about a job's field, as the master words the
// rules it checks against the fleet: `job "NAME": PATH: what is wrong`.
var placed = regexp.MustCompile(`^job ("(?:[^"\\]|\\.)*"): ([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.*)$`)

// Locate finds where in src, a job file, the field that message speaks
// of is written: the master checks some rules (targets and groups that
// exist, what a key may reach) only once the file reached it, and words
// them `job "NAME": PATH: …`. Where the field is a list and the message
// names one of its items in quotes, the item's place. ok is false when
// message is not of that form, or src has no such job.
func Locate(src []byte, message string) (line, col int, ok bool) {
	m := placed.FindStringSubmatch(message)
	if m == nil {
		return 0, 0, false
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return 0, 0, false
	}
	return locate(src, name, m[2], m[3])
}

// Defined finds where in src, a job file, the job named name is given its
// name, for a job defined in two files.
func Defined(src []byte, name string) (line, col int, ok bool) {
	return locate(src, name, "name", "")
}

// locate finds the field at path of the job named name in src; where the
// field is a list and text names one of its items in quotes, the item.
func locate(src []byte, name, path, text string) (line, col int, ok bool) {
	var doc yaml.Node
	if yaml.NewDecoder(bytes.NewReader(src)).Decode(&doc) != nil || len(doc.Content) == 0 {
		return 0, 0, false
	}
	jobs := findKey(resolve(doc.Content[0]), "jobs")
	if jobs == nil || jobs.Kind != yaml.SequenceNode {
		return 0, 0, false
	}
	for _, item := range jobs.Content {
		if jobName(item) != name {
			continue
		}
		n := lookup(item, path)
		if seq := resolve(n); seq.Kind == yaml.SequenceNode {
			for _, v := range seq.Content {
				if v := resolve(v); v.Kind == yaml.ScalarNode && strings.Contains(strings.ToLower(text), strings.ToLower(strconv.Quote(v.Value))) {
					return v.Line, v.Column, true
				}
			}
		}
		return n.Line, n.Column, true
	}
	return 0, 0, false
}
