package muster

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Step is one unit of a job's work. Exactly one kind is set: Shell, run by
// /bin/sh -c; Command, an argv run without a shell; or SQL, run against a
// connection defined on the target.
type Step struct {
	Name    string   `json:"name" yaml:"name"`
	Shell   string   `json:"shell,omitempty" yaml:"shell,omitempty"`
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	SQL     string   `json:"sql,omitempty" yaml:"sql,omitempty"`

	// Connection names the target's database connection a SQL step runs
	// against (defined in the target's settings, never sent by the master).
	Connection string `json:"connection,omitempty" yaml:"connection,omitempty"`
	// Params binds variables of the step's environment, by name, to the SQL
	// statement's placeholders in order ($1… for PostgreSQL, ? for MySQL and
	// SQLite). Nothing is ever substituted into the SQL text.
	Params []string `json:"params,omitempty" yaml:"params,omitempty"`

	// Workdir is the directory a shell or command step runs in (default: the
	// home directory of the user it runs as).
	Workdir string `json:"workdir,omitempty" yaml:"workdir,omitempty"`
	// Env adds to the step's environment (after the job's env).
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Timeout ends an attempt that runs longer, killing its whole process
	// tree (or cancelling its SQL statement); 0 means none.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Retry runs a failed step again (SQL Server's @retry_attempts).
	Retry *Retry `json:"retry,omitempty" yaml:"retry,omitempty"`

	// OnSuccess and OnFailure say what comes after the step: next,
	// quit_success, quit_failure or goto:<step name>. By default success
	// goes to the next step (ending the run successfully after the last)
	// and failure ends the run as failed, as in SQL Server Agent.
	OnSuccess string `json:"on_success,omitempty" yaml:"on_success,omitempty"`
	OnFailure string `json:"on_failure,omitempty" yaml:"on_failure,omitempty"`

	// RunAs names a proxy defined on the target: the OS user a shell or
	// command step runs as.
	RunAs string `json:"run_as,omitempty" yaml:"run_as,omitempty"`
}

// Retry is how often a failed step is tried again, and how long to wait
// between attempts.
type Retry struct {
	Attempts int      `json:"attempts" yaml:"attempts"`
	Interval Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
}

// Step kinds, as Step.Kind reports them.
const (
	StepShell   = "shell"
	StepCommand = "command"
	StepSQL     = "sql"
)

// Flow actions, for OnSuccess and OnFailure. A goto is written
// "goto:<step name>".
const (
	ActionNext        = "next"
	ActionQuitSuccess = "quit_success"
	ActionQuitFailure = "quit_failure"
	ActionGoto        = "goto:"
)

// Limits on a step.
const (
	MaxRetryAttempts = 100
	MaxEnvVars       = 100
	// MaxStartEnvSize bounds the variables a start sets for its run, in
	// bytes as a request carries them (a JSON object): well inside the
	// bound of a request's body, so that a start too large is refused
	// naming its env.
	MaxStartEnvSize = 32 << 10
)

// Kind names the kind of s, or "" when none or several are set.
func (s Step) Kind() string {
	kinds := s.kinds()
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

func (s Step) kinds() []string {
	var k []string
	if s.Shell != "" {
		k = append(k, StepShell)
	}
	if s.Command != nil {
		k = append(k, StepCommand)
	}
	if s.SQL != "" {
		k = append(k, StepSQL)
	}
	return k
}

// SuccessAction returns the step's action on success, with the default.
func (s Step) SuccessAction() string {
	if s.OnSuccess == "" {
		return ActionNext
	}
	return s.OnSuccess
}

// FailureAction returns the step's action on failure, with the default.
func (s Step) FailureAction() string {
	if s.OnFailure == "" {
		return ActionQuitFailure
	}
	return s.OnFailure
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateEnv checks environment variables a job, a step or a start adds:
// names are shell-style, values hold no NUL, and the MUSTER_ variables
// (which muster sets itself) cannot be overridden. The error is the first
// of EnvProblems, by variable name.
func ValidateEnv(field string, env map[string]string) error {
	if p := EnvProblems(field, env); len(p) > 0 {
		return Errorf(EINVALID, "%s", p[0].Message)
	}
	return nil
}

// ValidateStartEnv checks the variables a start sets for its run: as
// ValidateEnv does, and their size together (MaxStartEnvSize).
func ValidateStartEnv(field string, env map[string]string) error {
	if err := ValidateEnv(field, env); err != nil {
		return err
	}
	// Counted as sent: json.Marshal writes '<', '>', '&' and control
	// characters as six bytes each.
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if len(b) > MaxStartEnvSize {
		return Errorf(EINVALID, "%s: the variables come to %d bytes as sent (JSON); a start sets at most %d (give a step more in a file it reads)", field, len(b), MaxStartEnvSize)
	}
	return nil
}

// EnvProblems returns every rule of ValidateEnv that env breaks, one for
// each variable that breaks one, in the order of their names. Path is the
// variable's name ("" for a rule about the whole env); field names the env
// in messages.
func EnvProblems(field string, env map[string]string) []FieldError {
	if len(env) > MaxEnvVars {
		return []FieldError{{Message: fmt.Sprintf("%s: at most %d variables", field, MaxEnvVars)}}
	}
	var out []FieldError
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		switch {
		case !envNameRE.MatchString(k):
			out = append(out, FieldError{k, fmt.Sprintf("%s: %q is not a variable name (letters, digits and _, not starting with a digit)", field, k)})
		case strings.HasPrefix(k, "MUSTER_"):
			out = append(out, FieldError{k, fmt.Sprintf("%s: %s: the MUSTER_ variables are set by muster and cannot be overridden", field, k)})
		case strings.IndexByte(v, 0) >= 0:
			out = append(out, FieldError{k, fmt.Sprintf("%s: %s: a value must not contain a NUL byte", field, k)})
		}
	}
	return out
}

// envPath is the path of a variable of EnvProblems under the env at path.
func envPath(path string, p FieldError) string {
	if p.Path == "" {
		return path
	}
	return path + "." + p.Path
}

// validateFlow checks a flow action against the job's step names.
func validateFlow(field, action string, steps map[string]bool) string {
	switch action {
	case "", ActionNext, ActionQuitSuccess, ActionQuitFailure:
		return ""
	}
	if target, ok := strings.CutPrefix(action, ActionGoto); ok {
		if !steps[target] {
			return fmt.Sprintf("%s: %q goes to a step that does not exist", field, action)
		}
		return ""
	}
	return fmt.Sprintf("%s: %q is not next, quit_success, quit_failure or goto:<step name>", field, action)
}

// problems checks one step. at names it in messages ("steps[1] \"dump\""),
// path locates it in the job ("steps[1]").
func (s Step) problems(at, path string, steps map[string]bool) []FieldError {
	var out []FieldError
	add := func(field, msg string) {
		p := path
		if field != "" {
			p += "." + field
		}
		out = append(out, FieldError{Path: p, Message: msg})
	}
	switch kinds := s.kinds(); len(kinds) {
	case 0:
		add("", at+": set one of shell, command or sql")
	case 1:
	default:
		add(kinds[1], fmt.Sprintf("%s: set exactly one of shell, command or sql, not %s", at, strings.Join(kinds, " and ")))
	}
	if s.Command != nil && (len(s.Command) == 0 || s.Command[0] == "") {
		add("command", at+": command: the first element is the program to run and must not be empty")
	}
	hasNUL := func(v string) bool { return strings.IndexByte(v, 0) >= 0 }
	for _, f := range []struct {
		field  string
		values []string
	}{{"shell", []string{s.Shell}}, {"command", s.Command}, {"sql", []string{s.SQL}}, {"workdir", []string{s.Workdir}}} {
		if slices.ContainsFunc(f.values, hasNUL) {
			add(f.field, at+": a shell, command, sql or workdir value must not contain a NUL byte")
			break
		}
	}
	if s.SQL != "" {
		if s.Connection == "" {
			add("sql", at+": connection: a sql step names the target's connection to run against")
		}
		if s.RunAs != "" {
			add("run_as", at+": run_as: a sql step runs as its connection's user; run_as is for shell and command steps")
		}
		if s.Workdir != "" {
			add("workdir", at+": workdir: a sql step has no working directory")
		}
	} else {
		if s.Connection != "" {
			add("connection", at+": connection: only a sql step has a connection")
		}
		if len(s.Params) > 0 {
			add("params", at+": params: only a sql step binds params")
		}
	}
	if msg := validObjectName(s.Connection); s.Connection != "" && msg != "" {
		add("connection", fmt.Sprintf("%s: connection: %s", at, msg))
	}
	if msg := validObjectName(s.RunAs); s.RunAs != "" && msg != "" {
		add("run_as", fmt.Sprintf("%s: run_as: %s", at, msg))
	}
	for i, p := range s.Params {
		if !envNameRE.MatchString(p) {
			add(fmt.Sprintf("params[%d]", i), fmt.Sprintf("%s: params[%d]: %q is not a variable name", at, i, p))
		}
	}
	if s.Workdir != "" && !strings.HasPrefix(s.Workdir, "/") {
		add("workdir", fmt.Sprintf("%s: workdir: %q must be an absolute path", at, s.Workdir))
	}
	for _, p := range EnvProblems(at+": env", s.Env) {
		add(envPath("env", p), p.Message)
	}
	if s.Retry != nil && (s.Retry.Attempts < 0 || s.Retry.Attempts > MaxRetryAttempts) {
		add("retry.attempts", fmt.Sprintf("%s: retry.attempts: from 0 to %d retries after the first attempt", at, MaxRetryAttempts))
	}
	if msg := validateFlow(at+": on_success", s.OnSuccess, steps); msg != "" {
		add("on_success", msg)
	}
	if msg := validateFlow(at+": on_failure", s.OnFailure, steps); msg != "" {
		add("on_failure", msg)
	}
	return out
}
