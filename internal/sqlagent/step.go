package sqlagent

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/musterhq/muster"
)

// Step actions (on_success_action, on_fail_action).
const (
	actionQuitSuccess = 1
	actionQuitFailure = 2
	actionNext        = 3
	actionGoto        = 4
)

// unsupportedSubsystem names what a subsystem muster has no equivalent for
// does.
func unsupportedSubsystem(k string) (string, bool) {
	switch k {
	case "SSIS":
		return "SSIS package execution", true
	case "DTS":
		return "SSIS package execution", true
	case "ANALYSISQUERY":
		return "an Analysis Services query", true
	case "ANALYSISCOMMAND":
		return "an Analysis Services command", true
	case "ACTIVESCRIPTING":
		return "ActiveX scripting (VBScript or JScript)", true
	case "DISTRIBUTION":
		return "the replication Distribution Agent", true
	case "SNAPSHOT":
		return "the replication Snapshot Agent", true
	case "LOGREADER":
		return "the replication Log Reader Agent", true
	case "MERGE":
		return "the replication Merge Agent", true
	case "QUEUEREADER":
		return "the replication Queue Reader Agent", true
	}
	return "", false
}

// powerShellEnv is the variable a PowerShell step's script is passed in:
// the step's shell hands it to pwsh as one argument, so nothing in the
// script needs quoting.
const powerShellEnv = "POWERSHELL_SCRIPT"

// powerShell runs the script in powerShellEnv through pwsh, saying so
// plainly where pwsh is not installed.
const powerShell = `command -v pwsh >/dev/null 2>&1 || { echo "this step needs PowerShell (pwsh), which is not installed on this target" >&2; exit 127; }
exec pwsh -NoProfile -NonInteractive -Command "$` + powerShellEnv + `"`

// commandPatterns are what a step's command is read for.
type commandPatterns struct {
	// goLine is a GO line inside a T-SQL step's command.
	goLine *regexp.Regexp
	// agentToken is a SQL Server Agent token, such as $(ESCAPE_SQUOTE(JOBID)).
	agentToken *regexp.Regexp
	// windowsCommand is a command line written for cmd.exe.
	windowsCommand *regexp.Regexp
}

// compiled holds the patterns, compiled by the first import that reads a
// step rather than when the program starts.
var compiled struct {
	once sync.Once
	commandPatterns
}

func patterns() *commandPatterns {
	compiled.once.Do(func() {
		compiled.commandPatterns = commandPatterns{
			goLine:         regexp.MustCompile(`(?im)^[ \t]*GO[ \t]*[0-9]*[ \t]*(--.*)?$`),
			agentToken:     regexp.MustCompile(`\$\((ESCAPE_[A-Z]+\()?[A-Z][A-Z0-9_-]*\)?\)`),
			windowsCommand: regexp.MustCompile(`(?i)(^\s*"?[a-z]:\\|\.(exe|bat|cmd)\b|^\s*cmd(\.exe)?\s+/c\b)`),
		}
	})
	return &compiled.commandPatterns
}

// stepFindings collects a job's findings about its steps.
type stepFindings struct {
	file  string
	notes []Finding
	// blockers are why the job cannot carry over.
	blockers []Finding
}

func (f *stepFindings) note(s *agentStep, level, format string, args ...any) {
	fd := Finding{File: f.file, Line: s.line, Level: level, Step: s.name, Message: fmt.Sprintf(format, args...)}
	if level == NotImported {
		f.blockers = append(f.blockers, fd)
		return
	}
	f.notes = append(f.notes, fd)
}

// steps maps a job's steps onto muster's, in the order the job runs them.
func (mp *mapping) steps(j *agentJob, f *stepFindings) []muster.Step {
	names := make([]string, len(j.steps))
	taken := nameSet{}
	for i, s := range j.steps {
		names[i] = taken.unique(objectName(s.name, fmt.Sprintf("step-%d", i+1)))
		if names[i] != s.name {
			f.note(s, Note, "named %q in muster", names[i])
		}
	}
	out := make([]muster.Step, len(j.steps))
	for i, s := range j.steps {
		ms := muster.Step{Name: names[i]}
		mp.stepKind(s, &ms, f)
		last := i == len(j.steps)-1
		ms.OnSuccess = flow(s, f, s.onSuccess, s.onSuccessStep, true, last, names)
		ms.OnFailure = flow(s, f, s.onFail, s.onFailStep, false, last, names)
		if s.retryAttempts > 0 {
			attempts := s.retryAttempts
			if attempts > muster.MaxRetryAttempts {
				f.note(s, Note, "@retry_attempts %d is more than muster's %d; it retries %d times", attempts, muster.MaxRetryAttempts, muster.MaxRetryAttempts)
				attempts = muster.MaxRetryAttempts
			}
			ms.Retry = &muster.Retry{Attempts: attempts, Interval: muster.Duration(time.Duration(max(s.retryInterval, 0)) * time.Minute)}
		}
		if s.outputFile != "" {
			f.note(s, Note, "its output went to %s (@output_file_name); muster keeps each attempt's output in the run's history (muster job history JOB --steps)", s.outputFile)
		}
		out[i] = ms
	}
	if len(out) > 0 && j.startStep != 1 {
		if j.startStep < 1 || j.startStep > len(out) {
			f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
				Message: fmt.Sprintf("@start_step_id %d is not one of its steps; it starts at its first step", j.startStep)})
		} else {
			out = startAt(out, j.startStep-1)
			f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
				Message: fmt.Sprintf("it starts at step %d (@start_step_id), and a muster job starts at its first step: step %q comes first, with the flow that keeps the order of execution", j.startStep, out[0].Name)})
		}
	}
	return out
}

// stepKind sets what the step runs, by its subsystem.
func (mp *mapping) stepKind(s *agentStep, ms *muster.Step, f *stepFindings) {
	sub := strings.ToUpper(strings.TrimSpace(s.subsystem))
	// A target runs the command on Unix, where a line ends with a line
	// feed alone: a carriage return left at the end of each line would be
	// part of the line's last word to /bin/sh.
	command := strings.ReplaceAll(s.command, "\r\n", "\n")
	if what, ok := unsupportedSubsystem(sub); ok {
		f.note(s, NotImported, "the step runs %s (@subsystem %s), which muster has no equivalent for", what, s.subsystem)
		return
	}
	if strings.TrimSpace(command) == "" {
		f.note(s, NotImported, "the step has no command")
		return
	}
	if token := patterns().agentToken.FindString(command); token != "" {
		// What the token does when nothing replaces it depends on what
		// reads the command.
		switch sub {
		case "CMDEXEC":
			f.note(s, LeftOut, "its command uses SQL Server Agent tokens such as %s, which muster does not replace: to /bin/sh, $(…) runs a command, so the step fails, or goes on with an empty value, until they are rewritten; "+
				"the step finds its job, target and run in $MUSTER_JOB, $MUSTER_TARGET and $MUSTER_RUN_ID", token)
		case "POWERSHELL":
			f.note(s, LeftOut, "its command uses SQL Server Agent tokens such as %s, which muster does not replace: to PowerShell, $(…) outside single quotes runs a command, so the step fails, or goes on with an empty value, until they are rewritten; "+
				"the step finds its job, target and run in $env:MUSTER_JOB, $env:MUSTER_TARGET and $env:MUSTER_RUN_ID", token)
		default:
			f.note(s, LeftOut, "its command uses SQL Server Agent tokens such as %s, which muster does not replace: the database receives them as written", token)
		}
	}
	switch sub {
	case "TSQL", "":
		ms.SQL = command
		db := s.database
		if db == "" {
			db = "master"
		}
		if conn, ok := mp.connections[strings.ToLower(db)]; ok {
			ms.Connection = conn
		} else {
			ms.Connection = objectName(db, "master")
		}
		if n := len(patterns().goLine.FindAllStringIndex(command, -1)); n > 0 {
			f.note(s, Note, "its T-SQL holds %d GO line(s); a muster sql step runs its text as one batch, so split it into a step per batch", n)
		}
		if s.databaseUser != "" {
			f.note(s, Note, "@database_user_name %q is not carried over: a sql step runs as its connection's user", s.databaseUser)
		}
		return
	case "CMDEXEC":
		ms.Shell = command
		if s.successCode != 0 {
			ms.Shell = fmt.Sprintf("(\n%s\n)\ntest $? -eq %d", strings.TrimRight(command, "\n"), s.successCode)
			f.note(s, Note, "it succeeds when its command exits %d (@cmdexec_success_code), as in SQL Server: the shell tests the exit code", s.successCode)
		}
		if patterns().windowsCommand.MatchString(command) {
			f.note(s, Note, "its command looks written for Windows; a muster target runs it with /bin/sh -c")
		}
	case "POWERSHELL":
		ms.Shell = powerShell
		ms.Env = map[string]string{powerShellEnv: command}
		if strings.IndexByte(command, 0) >= 0 {
			f.note(s, NotImported, "its script holds a NUL character, which an environment variable cannot carry")
		}
	default:
		f.note(s, NotImported, "@subsystem %q is not one SQL Server Agent has", s.subsystem)
		return
	}
	switch {
	case s.proxyName != "":
		ms.RunAs = objectName(s.proxyName, "proxy")
		f.note(s, Note, "it runs as proxy %q: each target needs that proxy in its settings (proxies:) and allow_downloaded_jobs_to_match_proxy_name: true, or it refuses the job", ms.RunAs)
	case s.proxyID != 0:
		f.note(s, NotImported, "it runs as a proxy named by number (@proxy_id %d), which a script cannot resolve; name it with @proxy_name, or the step would run as the target daemon's user", s.proxyID)
	}
}

// flow maps an action onto on_success or on_failure, leaving out muster's
// defaults: next on success, quit_failure on failure (the last step's next
// ends the run as the step did, as SQL Server's quit does).
func flow(s *agentStep, f *stepFindings, action, step int, success, last bool, names []string) string {
	field := map[bool]string{true: "@on_success_action", false: "@on_fail_action"}[success]
	switch action {
	case actionQuitSuccess:
		if success && last {
			return ""
		}
		return muster.ActionQuitSuccess
	case actionQuitFailure:
		if !success {
			return ""
		}
		return muster.ActionQuitFailure
	case actionNext:
		if success || last {
			return ""
		}
		return muster.ActionNext
	case actionGoto:
		if step >= 1 && step <= len(names) {
			return muster.ActionGoto + names[step-1]
		}
		f.note(s, Note, "%s goes to step %d, which the job does not have; it quits with failure, as SQL Server Agent does when the step is missing", field, step)
		if !success {
			return ""
		}
		return muster.ActionQuitFailure
	}
	f.note(s, Note, "%s %d is not 1 (quit with success), 2 (quit with failure), 3 (next step) or 4 (go to step); the default is used", field, action)
	return ""
}

// startAt moves step k first, making explicit the flow that changes with
// the move: k's next (the step after it), and the next of the step before
// it (k itself). The order of execution stays SQL Server's.
func startAt(steps []muster.Step, k int) []muster.Step {
	n := len(steps)
	if k == 0 {
		return steps
	}
	moved := &steps[k]
	if k == n-1 {
		if moved.OnSuccess == "" || moved.OnSuccess == muster.ActionNext {
			moved.OnSuccess = muster.ActionQuitSuccess
		}
		if moved.OnFailure == muster.ActionNext {
			moved.OnFailure = ""
		}
	} else {
		after := muster.ActionGoto + steps[k+1].Name
		if moved.OnSuccess == "" || moved.OnSuccess == muster.ActionNext {
			moved.OnSuccess = after
		}
		if moved.OnFailure == muster.ActionNext {
			moved.OnFailure = after
		}
	}
	before := &steps[k-1]
	if before.OnSuccess == "" || before.OnSuccess == muster.ActionNext {
		before.OnSuccess = muster.ActionGoto + steps[k].Name
	}
	if before.OnFailure == muster.ActionNext {
		before.OnFailure = muster.ActionGoto + steps[k].Name
	}
	out := make([]muster.Step, 0, n)
	out = append(out, steps[k])
	out = append(out, steps[:k]...)
	return append(out, steps[k+1:]...)
}
