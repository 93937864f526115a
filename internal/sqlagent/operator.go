package sqlagent

import (
	"fmt"
	"strings"

	"github.com/musterhq/muster"
)

// operators maps the operators the scripts define (sp_add_operator), in
// the order they define them.
func (mp *mapping) operators() {
	for _, o := range mp.m.operators {
		op := Operator{Name: mp.operatorNames.unique(objectName(o.name, "operator"))}
		note := func(level, format string, args ...any) {
			mp.res.Findings = append(mp.res.Findings, Finding{File: o.file, Line: o.line, Level: level,
				Message: fmt.Sprintf("operator %q: ", o.name) + fmt.Sprintf(format, args...)})
		}
		if op.Name != o.name {
			note(Note, "named %q in muster", op.Name)
		}
		for _, a := range strings.FieldsFunc(o.email, func(r rune) bool { return r == ';' || r == ',' }) {
			a = strings.TrimSpace(a)
			switch {
			case muster.ValidateEmail("email", a) != nil:
				note(LeftOut, "e-mail address %q is not one muster can send to (user@domain); it is left out", a)
			case op.Email == "":
				op.Email = a
			default:
				note(LeftOut, "e-mail address %q is left out: a muster operator has one address, and this one has %q", a, op.Email)
			}
		}
		if o.pager != "" {
			note(LeftOut, "pager address %q is left out: muster notifies by e-mail and webhook", o.pager)
		}
		if o.netsend != "" {
			note(LeftOut, "net send address %q is left out: muster notifies by e-mail and webhook", o.netsend)
		}
		if o.disabled {
			note(Note, "it is disabled (@enabled = 0), and muster operators cannot be: disable the alerts that notify it (muster alert disable)")
		}
		mp.operatorIndex[strings.ToLower(o.name)] = op.Name
		mp.res.Operators = append(mp.res.Operators, op)
	}
}

// operator returns the muster name of an operator a job notifies, adding
// it to the result when no script defines it.
func (mp *mapping) operator(name, file string, line int) string {
	if n, ok := mp.operatorIndex[strings.ToLower(name)]; ok {
		return n
	}
	n := mp.operatorNames.unique(objectName(name, "operator"))
	mp.operatorIndex[strings.ToLower(name)] = n
	mp.res.Operators = append(mp.res.Operators, Operator{Name: n})
	mp.res.Findings = append(mp.res.Findings, Finding{File: file, Line: line, Level: Note,
		Message: fmt.Sprintf("operator %q is not defined in these scripts (sp_add_operator), so it has no address: the master must have operator %q already (muster operator create %s --email ADDRESS)", name, n, n)})
	return n
}

// notifications maps a job's e-mail notification to an alert on its
// failures, and reports what has no equivalent.
func (mp *mapping) notifications(j *agentJob, job string, f *stepFindings) {
	note := func(level, format string, args ...any) {
		f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: level, Message: fmt.Sprintf(format, args...)})
	}
	op := strings.TrimSpace(j.emailOperator)
	switch {
	case j.notifyEmail == 0:
	case op == "":
		note(LeftOut, "@notify_level_email %d names no operator (@notify_email_operator_name); no alert is made", j.notifyEmail)
	case j.notifyEmail == 1:
		note(LeftOut, "it e-mails %q when it succeeds (@notify_level_email 1): muster alerts fire on failures, so this is left out", op)
	case j.notifyEmail == 2 || j.notifyEmail == 3:
		a := Alert{Name: mp.alertNames.unique(alertName(job)), Event: muster.EventRunFailed, Job: job,
			Notify: []string{mp.operator(op, j.file, j.line)}}
		mp.res.Alerts = append(mp.res.Alerts, a)
		if j.notifyEmail == 3 {
			note(LeftOut, "it e-mails %q whenever it completes (@notify_level_email 3): alert %q e-mails its failures; muster alerts do not fire on success", op, a.Name)
		}
	default:
		note(LeftOut, "@notify_level_email %d is not 0 (never), 1 (on success), 2 (on failure) or 3 (on completion); no alert is made", j.notifyEmail)
	}
	for _, n := range []struct {
		level    int
		operator string
		how      string
	}{{j.notifyPage, j.pageOperator, "pages"}, {j.notifyNetsend, j.netsendOperator, "sends a net send message to"}} {
		if n.level != 0 && strings.TrimSpace(n.operator) != "" {
			note(LeftOut, "it %s %q: muster notifies by e-mail and webhook (muster operator update, muster alert create)", n.how, n.operator)
		}
	}
}

// alertName names the alert that carries a job's notification.
func alertName(job string) string {
	const suffix = "-failed"
	return trimName(job[:min(len(job), muster.MaxNameLen-len(suffix))]) + suffix
}
