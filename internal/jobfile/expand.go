package jobfile

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster/internal/jsonhttp"
)

// MaxExpandedSize bounds what a job file may grow to once its aliases are
// expanded: as much as the master accepts in one apply request. An alias
// (*name) stands for a copy of the value its anchor (&name) marks, so a
// small file can stand for an enormous one; the size is counted before any
// value is decoded, and a file past the limit is refused before anything
// is built or sent.
const MaxExpandedSize = 16 << 20

// nodeCost is what each value costs besides its text: about what it adds
// to the JSON sent to the master (quotes, a key, separators). Each mapping
// and list costs jsonhttp.ValueCost more, as the master counts each object
// and array of a request, and each text as many bytes as JSON writes it
// in (jsonLen), so that a file that passes is one the master takes.
const nodeCost = 4

// expansion measures the expanded size of a node graph. Each node's size
// is computed once and remembered, so the count costs time in proportion
// to the file, however many times its aliases multiply it.
type expansion struct {
	size   map[*yaml.Node]int64
	active map[*yaml.Node]bool // on the current path: an alias back to one is a cycle
	uses   map[*yaml.Node]int  // anchor → how many aliases name it
}

// checkExpansion returns a problem if the document expands past
// MaxExpandedSize or an alias contains itself, else nil.
func checkExpansion(doc *yaml.Node) *problem {
	e := &expansion{size: map[*yaml.Node]int64{}, active: map[*yaml.Node]bool{}, uses: map[*yaml.Node]int{}}
	total, cycle := e.measure(doc)
	if cycle != nil {
		return &problem{line: cycle.Line, col: cycle.Column, msg: fmt.Sprintf("the alias *%s is used inside the value it names, which would never end", cycle.Value)}
	}
	if total <= MaxExpandedSize {
		return nil
	}
	// Name the anchor that multiplies the most.
	var worst *yaml.Node
	for a, n := range e.uses {
		if worst == nil || int64(n)*e.size[a] > int64(e.uses[worst])*e.size[worst] {
			worst = a
		}
	}
	msg := fmt.Sprintf("its aliases expand the file to more than %s, the most one apply may send (MaxExpandedSize)", bytesText(MaxExpandedSize))
	if worst == nil {
		return &problem{msg: fmt.Sprintf("the file comes to more than %s as sent to the master (in JSON, each mapping and list counting %d bytes more), the most one apply may send (MaxExpandedSize); split it, and apply the parts one at a time (without --prune)",
			bytesText(MaxExpandedSize), jsonhttp.ValueCost)}
	}
	return &problem{line: worst.Line, col: worst.Column, msg: fmt.Sprintf("%s: the value anchored here as &%s is %s and its aliases use it %d times",
		msg, worst.Anchor, bytesText(e.size[worst]), e.uses[worst])}
}

// measure returns the expanded size of n, saturating past the limit, or
// the alias node that closes a cycle.
func (e *expansion) measure(n *yaml.Node) (int64, *yaml.Node) {
	if s, ok := e.size[n]; ok {
		return s, nil
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nodeCost, nil
		}
		if e.active[n.Alias] {
			return 0, n
		}
		e.uses[n.Alias]++
		return e.measure(n.Alias)
	}
	e.active[n] = true
	defer delete(e.active, n)
	total := int64(nodeCost + jsonLen(n.Value))
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		total += jsonhttp.ValueCost
	}
	for _, c := range n.Content {
		s, cycle := e.measure(c)
		if cycle != nil {
			return 0, cycle
		}
		total = min(total+s, MaxExpandedSize+1)
	}
	e.size[n] = total
	return total, nil
}

// jsonLen is the length of s as encoding/json writes it in a string:
// quotes and backslashes escaped, \b, \f, \n, \r and \t so, the other
// control characters and <, > and & as \u00XX, U+2028 and U+2029 as
// \u2028, and each invalid byte as \ufffd.
func jsonLen(s string) int {
	n := 0
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			n += 6 // an invalid byte
		case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
			n += 2
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += utf8.RuneLen(r)
		}
	}
	return n
}

// bytesText renders a size for messages: "16 MiB", "1.0 MiB", "512 KiB".
func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
