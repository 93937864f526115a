package sqlagent

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
)

// MaxScriptSize bounds one script, checked before it is read.
const MaxScriptSize = 16 << 20

// Import reads the scripts, in order, as if they ran one after another on
// one server, and maps what they define onto muster. Only an option that
// breaks a rule, or a script over MaxScriptSize, is an error (EINVALID);
// whatever a script holds that does not carry over is a Finding.
func Import(scripts []Script, opts Options) (*Result, error) {
	mp, err := newMapping(opts)
	if err != nil {
		return nil, err
	}
	for _, s := range scripts {
		if len(s.Text) > MaxScriptSize {
			return nil, muster.Errorf(muster.EINVALID, "%s: the script is over %d bytes", s.Name, MaxScriptSize)
		}
	}
	for _, s := range scripts {
		mp.m.run(s)
	}
	mp.res.Findings = append(mp.res.Findings, mp.m.findings...)
	mp.operators()
	for _, j := range mp.m.jobs {
		if j.deleted {
			continue
		}
		if mj, ok := mp.job(j); ok {
			mp.res.Jobs = append(mp.res.Jobs, mj)
		}
	}
	mp.categories()
	mp.groups()

	// Findings in the order of the scripts, then of their lines.
	order := map[string]int{}
	for i, s := range scripts {
		if _, ok := order[s.Name]; !ok {
			order[s.Name] = i
		}
	}
	slices.SortStableFunc(mp.res.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(a.Line, b.Line))
	})
	return mp.res, nil
}

// mapping is the state of mapping one import onto muster.
type mapping struct {
	m           *msdb
	res         *Result
	connections map[string]string // by lower-cased database
	targetMap   map[string]string // by lower-cased server

	jobNames      nameSet
	alertNames    nameSet
	operatorNames nameSet
	operatorIndex map[string]string // muster names, by lower-cased SQL Server name
	unmappedIndex map[string]int    // into res.Unmapped, by lower-cased server
}

// newMapping checks the options and starts a mapping.
func newMapping(opts Options) (*mapping, error) {
	mp := &mapping{
		m: newMSDB(),
		res: &Result{Jobs: []muster.Job{}, Operators: []Operator{}, Alerts: []Alert{}, Categories: []string{},
			Unmapped: []Unmapped{}, Findings: []Finding{}},
		connections: map[string]string{}, targetMap: map[string]string{},
		jobNames: nameSet{}, alertNames: nameSet{}, operatorNames: nameSet{},
		operatorIndex: map[string]string{}, unmappedIndex: map[string]int{},
	}
	for db, conn := range opts.Connections {
		if err := muster.ValidateName(fmt.Sprintf("connection map %s", db), conn); err != nil {
			return nil, err
		}
		mp.connections[strings.ToLower(strings.TrimSpace(db))] = conn
	}
	mp.m.variables = map[string]string{}
	for name, value := range opts.Variables {
		mp.m.variables[strings.ToLower(strings.TrimSpace(name))] = value
	}
	for server, target := range opts.Targets {
		t := muster.NormalizeTargetName(target)
		if err := muster.ValidateTargetName(fmt.Sprintf("target map %s", server), t); err != nil {
			return nil, err
		}
		mp.targetMap[strings.ToLower(strings.TrimSpace(server))] = t
	}
	return mp, nil
}

// categories lists the categories the scripts declare or their jobs use.
func (mp *mapping) categories() {
	seen := map[string]bool{}
	add := func(c string) {
		if c = category(c); c != "" && !seen[strings.ToLower(c)] {
			seen[strings.ToLower(c)] = true
			mp.res.Categories = append(mp.res.Categories, c)
		}
	}
	for _, c := range mp.m.categories {
		add(c)
	}
	for _, j := range mp.res.Jobs {
		add(j.Category)
	}
}

// groups reports the target server groups the scripts define: muster
// groups are made with muster group, not by an import.
func (mp *mapping) groups() {
	for _, g := range mp.m.groups {
		var members []string
		for _, s := range g.members {
			if t, reason := mp.target(s); reason == "" {
				members = append(members, t)
			} else {
				members = append(members, s)
			}
		}
		name := objectName(g.name, "group")
		msg := fmt.Sprintf("target server group %q is defined here; an import does not make groups: muster group create %s", g.name, name)
		if len(members) > 0 {
			msg += fmt.Sprintf(", then muster group add %s %s", name, strings.Join(members, " "))
		}
		mp.res.Findings = append(mp.res.Findings, Finding{File: g.file, Line: g.line, Level: Note, Message: msg})
	}
}
