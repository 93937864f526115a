package sqlagent

import (
	"strings"
)

// call is one procedure call with its arguments by parameter name.
type call struct {
	m    *msdb
	stmt stmt
	args map[string]arg
}

// has reports whether the call gives a parameter a value (not DEFAULT).
func (c *call) has(name string) bool {
	a, ok := c.args[name]
	return ok && a.value.kind != valDefault
}

// resolve returns a parameter's binding, following a variable.
func (c *call) resolve(name string) (binding, bool) {
	a, ok := c.args[name]
	if !ok || a.value.kind == valDefault {
		return binding{}, false
	}
	if a.value.kind != valVar {
		return binding{v: a.value}, true
	}
	b, declared := c.m.vars[a.value.text]
	if !declared && !a.output {
		c.m.finding(c.stmt.line, Note, "%s: @%s: variable %s is not set in this batch; it is read as NULL", c.stmt.proc, name, a.value.text)
	}
	return b, true
}

// str returns a parameter's text, or def when it is not given or NULL.
func (c *call) str(name, def string) string {
	b, ok := c.resolve(name)
	if !ok {
		return def
	}
	switch b.v.kind {
	case valString, valNumber:
		return b.v.text
	case valUnknown:
		c.m.finding(c.stmt.line, Note, "%s: @%s: its value is an expression this import does not evaluate; the default is used", c.stmt.proc, name)
	}
	return def
}

// int returns a parameter's integer value, or def.
func (c *call) int(name string, def int) int {
	s := c.str(name, "")
	if s == "" {
		return def
	}
	n, ok := number(s)
	if !ok {
		c.m.finding(c.stmt.line, Note, "%s: @%s: %q is not a whole number; the default, %d, is used", c.stmt.proc, name, s, def)
		return def
	}
	return int(n)
}

// output binds the variable a parameter's OUTPUT names.
func (c *call) output(name string, b binding) {
	if a, ok := c.args[name]; ok && a.output && a.value.kind == valVar {
		c.m.vars[a.value.text] = b
	}
}

// job finds the job a call names by @job_id or @job_name, reporting
// (and returning nil) when it names none this script defines.
func (c *call) job() *agentJob {
	m := c.m
	if c.has("job_name") {
		name := c.str("job_name", "")
		if j := m.findJob(name); j != nil {
			return j
		}
		m.finding(c.stmt.line, LeftOut, "%s: no job named %q is created before this call; the call is ignored", c.stmt.proc, name)
		return nil
	}
	b, ok := c.resolve("job_id")
	switch {
	case !ok:
		m.finding(c.stmt.line, LeftOut, "%s: names no job (@job_id or @job_name); the call is ignored", c.stmt.proc)
		return nil
	case b.job != nil && b.job.deleted:
		m.finding(c.stmt.line, LeftOut, "%s: job %q was deleted before this call; the call is ignored", c.stmt.proc, b.job.name)
		return nil
	case b.job != nil:
		return b.job
	case b.v.kind == valJobLookup:
		if j := m.findJob(b.v.text); j != nil {
			return j
		}
		m.finding(c.stmt.line, LeftOut, "%s: no job named %q is created before this call; the call is ignored", c.stmt.proc, b.v.text)
		return nil
	}
	m.finding(c.stmt.line, LeftOut, "%s: @job_id names a job this script does not create (give it @job_name, or the variable sp_add_job's @job_id OUTPUT set); the call is ignored", c.stmt.proc)
	return nil
}

// step finds the step a call names by @step_id.
func (c *call) step(j *agentJob) *agentStep {
	id := c.int("step_id", 0)
	if id < 1 || id > len(j.steps) {
		c.m.finding(c.stmt.line, LeftOut, "%s: job %q has no step %d; the call is ignored", c.stmt.proc, j.name, id)
		return nil
	}
	return j.steps[id-1]
}

// server returns the @server_name of a call: "(LOCAL)" by default, and for
// @@SERVERNAME, the server the script runs on.
func (c *call) server() string {
	if c.args["server_name"].value.text == "@@servername" {
		return "(LOCAL)"
	}
	return strings.TrimSpace(c.str("server_name", "(LOCAL)"))
}
