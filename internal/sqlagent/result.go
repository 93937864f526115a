package sqlagent

import (
	"fmt"
	"strings"

	"github.com/musterhq/muster"
)

// Script is one script file: its name, for findings, and its bytes.
type Script struct {
	Name string
	Text []byte
}

// Options steer the mapping onto muster.
type Options struct {
	// Connections maps the database a T-SQL step runs in (@database_name,
	// any case) to the target connection its sql step runs on. A database
	// not in the map runs on the connection of its own name.
	Connections map[string]string
	// Targets maps SQL Server names (@server_name, @target_servers, any
	// case; "(local)" for the server the script was written for) to
	// target names. A name not in the map is lower-cased.
	Targets map[string]string
	// Variables are the sqlcmd scripting variables the scripts are run
	// with (sqlcmd -v NAME=VALUE): each $(NAME), in any case, is replaced
	// with its value, unless a script's :setvar sets it again.
	Variables map[string]string
}

// Result is what a set of scripts defines, in muster's terms.
type Result struct {
	// Jobs are the jobs that carry over, in the order the scripts create
	// them, valid as muster apply checks them.
	Jobs []muster.Job `json:"jobs"`
	// Operators are those the scripts define or notify, each with its
	// e-mail address when it has one.
	Operators []Operator `json:"operators"`
	// Alerts notify operators of the jobs' failures, as the jobs'
	// @notify_level_email did. They name jobs, which must exist first.
	Alerts []Alert `json:"alerts"`
	// Categories are the job categories the scripts declare or use.
	Categories []string `json:"categories"`
	// Unmapped are the servers jobs run on that have no target name:
	// the server the script was written for, "(local)", and names that
	// are not valid target names. Each needs a --target-map entry.
	Unmapped []Unmapped `json:"unmapped"`
	// Findings say what did not carry over, or carried over changed.
	Findings []Finding `json:"findings"`
}

// Operator is an operator a script defines or notifies.
type Operator struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// Alert is an alert that carries over a job's notification.
type Alert struct {
	Name   string           `json:"name"`
	Event  muster.EventName `json:"event"`
	Job    string           `json:"job"`
	Notify []string         `json:"notify"`
}

// Unmapped is a server that jobs run on and that maps to no target.
type Unmapped struct {
	Server string   `json:"server"`
	Jobs   []string `json:"jobs"` // muster's job names
	Reason string   `json:"reason"`
}

// Finding levels.
const (
	// NotImported: a whole job was left out.
	NotImported = "not_imported"
	// LeftOut: part of a job (a schedule, a notification, a target) or a
	// statement of the script was left out; the rest carried over.
	LeftOut = "left_out"
	// Note: something carried over with a change worth knowing, or needs
	// doing on the targets.
	Note = "note"
)

// Finding is one thing that did not carry over as it was, with where the
// script says it and why.
type Finding struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Level    string `json:"level"`
	Job      string `json:"job,omitempty"`      // the job's name in the script
	Step     string `json:"step,omitempty"`     // the step's name in the script
	Schedule string `json:"schedule,omitempty"` // the schedule's name in the script
	Message  string `json:"message"`
}

// String renders f as file:line: job "J" step "S": message.
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", f.File, f.Line)
	if f.Job != "" {
		fmt.Fprintf(&b, "job %s: ", quote(f.Job))
	}
	if f.Step != "" {
		fmt.Fprintf(&b, "step %s: ", quote(f.Step))
	}
	if f.Schedule != "" {
		fmt.Fprintf(&b, "schedule %s: ", quote(f.Schedule))
	}
	b.WriteString(f.Message)
	return b.String()
}

// quote puts a name between double quotes as a person reads it: unlike %q,
// it leaves the backslashes of Windows names (CONTOSO\sqlagent) alone.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
