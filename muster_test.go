package muster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestDeriveStatus(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		state  muster.TargetState
		status string
		flags  []string
	}{
		{"fresh poll", muster.TargetState{LastPoll: now.Add(-time.Minute), PollInterval: 60}, muster.StatusNormal, []string{}},
		{"exactly three intervals", muster.TargetState{LastPoll: now.Add(-3 * time.Minute), PollInterval: 60}, muster.StatusNormal, []string{}},
		{"past three intervals", muster.TargetState{LastPoll: now.Add(-3*time.Minute - time.Second), PollInterval: 60}, muster.StatusSuspectedOffline, []string{"suspected_offline"}},
		{"short interval", muster.TargetState{LastPoll: now.Add(-31 * time.Second), PollInterval: 10}, muster.StatusSuspectedOffline, []string{"suspected_offline"}},
		{"never polled", muster.TargetState{PollInterval: 60}, muster.StatusSuspectedOffline, []string{"suspected_offline"}},
		{"blocked", muster.TargetState{LastPoll: now, PollInterval: 60, Blocking: 2}, muster.StatusBlocked, []string{"blocked"}},
		{"offline wins", muster.TargetState{LastPoll: now.Add(-time.Hour), PollInterval: 60, Blocking: 1}, muster.StatusSuspectedOffline, []string{"suspected_offline", "blocked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, flags := muster.DeriveStatus(now, tc.state)
			if status != tc.status || !slices.Equal(flags, tc.flags) {
				t.Errorf("got %s %v, want %s %v", status, flags, tc.status, tc.flags)
			}
		})
	}
}

func TestJobValidate(t *testing.T) {
	valid := func() muster.Job {
		j := muster.NewJob()
		j.Name = "backup"
		j.Targets = []string{"db1"}
		j.Steps = []muster.Step{{Name: "dump", Shell: "pg_dump"}}
		return j
	}
	for _, tc := range []struct {
		name   string
		change func(*muster.Job)
		want   string
	}{
		{"valid", func(*muster.Job) {}, ""},
		{"no name", func(j *muster.Job) { j.Name = "" }, "job: name: a name is required"},
		{"bad name", func(j *muster.Job) { j.Name = "a b" }, `job "a b": name: a name may hold only`},
		{"no steps", func(j *muster.Job) { j.Steps = nil }, `job "backup": steps: a job needs at least one step`},
		{"two kinds", func(j *muster.Job) { j.Steps[0].Command = []string{"x"} }, `steps[0] "dump": set exactly one of shell, command or sql, not shell and command`},
		{"no kind", func(j *muster.Job) { j.Steps[0].Shell = "" }, `steps[0] "dump": set one of shell, command or sql`},
		{"empty argv", func(j *muster.Job) { j.Steps[0] = muster.Step{Name: "x", Command: []string{}} }, `command: the first element is the program`},
		{"duplicate step", func(j *muster.Job) { j.Steps = append(j.Steps, j.Steps[0]) }, `another step is already named "dump"`},
		{"duplicate target", func(j *muster.Job) { j.Targets = []string{"db1", "DB1"} }, `target "db1" is listed twice`},
		{"bad target", func(j *muster.Job) { j.Targets = []string{"-x"} }, `targets[0]: target name "-x" may hold only`},
		{"NUL", func(j *muster.Job) { j.Steps[0].Shell = "a\x00b" }, "NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := valid()
			tc.change(&j)
			err := j.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			case err != nil && muster.ErrorCode(err) != muster.EINVALID:
				t.Errorf("code %q, want invalid", muster.ErrorCode(err))
			}
		})
	}
}

func TestRunIDsAreDerived(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	a := muster.ScheduledRunID("uid-1", "job", "s", at)
	if a != muster.ScheduledRunID("uid-1", "job", "s", at) {
		t.Error("ScheduledRunID is not deterministic")
	}
	ids := []string{a, muster.ScheduledRunID("uid-2", "job", "s", at),
		muster.ScheduledRunID("uid-1", "job", "s", at.Add(time.Second)),
		muster.ScheduledRunID("uid-1", "job", "t", at), muster.ScheduledRunID("uid-1", "jo", "bs", at)}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("id %s derived twice from different inputs", id)
		}
		seen[id] = true
		if len(id) != 36 || id[14] != '8' {
			t.Errorf("id %s is not a version 8 UUID", id)
		}
	}
}

func TestStepValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		step muster.Step
		want string
	}{
		{"sql needs a connection", muster.Step{Name: "q", SQL: "select 1"}, "connection: a sql step names the target's connection"},
		{"sql ok", muster.Step{Name: "q", SQL: "select $1", Connection: "warehouse", Params: []string{"MUSTER_RUN_ID"}}, ""},
		{"connection without sql", muster.Step{Name: "q", Shell: "x", Connection: "w"}, "connection: only a sql step has a connection"},
		{"params without sql", muster.Step{Name: "q", Shell: "x", Params: []string{"A"}}, "params: only a sql step binds params"},
		{"bad param", muster.Step{Name: "q", SQL: "x", Connection: "w", Params: []string{"1A"}}, `params[0]: "1A" is not a variable name`},
		{"run_as on sql", muster.Step{Name: "q", SQL: "x", Connection: "w", RunAs: "backup"}, "run_as: a sql step runs as its connection's user"},
		{"relative workdir", muster.Step{Name: "q", Shell: "x", Workdir: "tmp"}, `workdir: "tmp" must be an absolute path`},
		{"env override", muster.Step{Name: "q", Shell: "x", Env: map[string]string{"MUSTER_JOB": "x"}}, "MUSTER_JOB: the MUSTER_ variables are set by muster"},
		{"env name", muster.Step{Name: "q", Shell: "x", Env: map[string]string{"A-B": "x"}}, `"A-B" is not a variable name`},
		{"negative retries", muster.Step{Name: "q", Shell: "x", Retry: &muster.Retry{Attempts: -1}}, "retry.attempts: from 0 to 100"},
		{"bad action", muster.Step{Name: "q", Shell: "x", OnSuccess: "stop"}, `on_success: "stop" is not next, quit_success, quit_failure or goto:<step name>`},
		{"goto nowhere", muster.Step{Name: "q", Shell: "x", OnFailure: "goto:nowhere"}, `on_failure: "goto:nowhere" goes to a step that does not exist`},
		{"goto ok", muster.Step{Name: "q", Shell: "x", OnFailure: "goto:q"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := muster.NewJob()
			j.Name = "job"
			j.Steps = []muster.Step{tc.step}
			err := j.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRunIDIsRandom(t *testing.T) {
	seen := map[string]bool{}
	n := 0
	for range 1000 {
		id := muster.NewRunID()
		if seen[id] {
			t.Fatalf("run id %s made twice", id)
		}
		seen[id] = true
		if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("id %s is not a version 7 UUID of RFC 9562's variant", id)
		}
		n++
	}
	if n != 1000 {
		t.Fatalf("checked %d ids, want 1000", n)
	}
}

// Run ids made later sort after those made earlier, whatever their random
// bits: the catalog's index by run id grows at its end.
func TestNewRunIDsSortByTime(t *testing.T) {
	base := time.Date(2026, 12, 6, 21, 30, 0, 0, time.UTC)
	n := 0
	for i := range 500 {
		earlier, later := muster.NewRunIDAt(base.Add(time.Duration(i)*time.Millisecond)), muster.NewRunIDAt(base.Add(time.Duration(i+1)*time.Millisecond))
		if earlier >= later {
			t.Fatalf("run id %s, made 1 ms before %s, does not sort before it", earlier, later)
		}
		n++
	}
	if n != 500 {
		t.Fatalf("compared %d pairs, want 500", n)
	}
	// The time is the first 48 bits, in milliseconds since 1970.
	if got, want := muster.NewRunIDAt(base)[:13], "01a24d43-83c0"; got != want {
		t.Errorf("run id made at %s begins %s, want %s", base, got, want)
	}
}

// Problems lists every rule a job breaks, each with the path of its field,
// in the order of the fields; Validate reports the first.
func TestJobProblems(t *testing.T) {
	j := muster.NewJob()
	j.Name = "backup"
	j.Targets = []string{"db1", "DB1"}
	j.Steps = []muster.Step{
		{Name: "dump", Shell: "pg_dump", OnFailure: "goto:nowhere"},
		{Name: "dump", SQL: "select 1"},
		{Name: "copy", Shell: "cp", Retry: &muster.Retry{Attempts: -1}, Workdir: "tmp"},
	}
	j.Misfire = "always"
	j.Schedules = []muster.Schedule{{Name: "a", Cron: "@daily"}, {Name: "a", Cron: "@hourly"}}
	want := []muster.FieldError{
		{"targets[1]", `job "backup": targets[1]: target "db1" is listed twice`},
		{"steps[1].name", `job "backup": steps[1] "dump": name: another step is already named "dump"`},
		{"steps[0].on_failure", `job "backup": steps[0] "dump": on_failure: "goto:nowhere" goes to a step that does not exist`},
		{"steps[1].sql", `job "backup": steps[1] "dump": connection: a sql step names the target's connection to run against`},
		{"steps[2].workdir", `job "backup": steps[2] "copy": workdir: "tmp" must be an absolute path`},
		{"steps[2].retry.attempts", `job "backup": steps[2] "copy": retry.attempts: from 0 to 100 retries after the first attempt`},
		{"misfire", `job "backup": misfire: "always" is not skip or run_once`},
		{"schedules[1].name", `job "backup": schedules[1]: name: another schedule is already named "a"`},
	}
	got := j.Problems()
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if err := j.Validate(); muster.ErrorCode(err) != muster.EINVALID || err.Error() != want[0].Message {
		t.Errorf("Validate: got %v, want the first problem", err)
	}
}

func TestJobCategory(t *testing.T) {
	for _, tc := range []struct {
		name, category, want string
	}{
		{"none", "", ""},
		{"free text", "Database Maintenance", ""},
		{"sql server's brackets", "[Uncategorized (Local)]", ""},
		{"longest", strings.Repeat("x", muster.MaxCategoryLen), ""},
		{"too long", strings.Repeat("x", muster.MaxCategoryLen+1), "category: at most 128 characters"},
		// The bound counts characters, not the bytes that encode them.
		{"longest, not ascii", strings.Repeat("é", muster.MaxCategoryLen), ""},
		{"too long, not ascii", strings.Repeat("é", muster.MaxCategoryLen+1), "category: at most 128 characters"},
		{"line break", "a\nb", `category: "a\nb" holds a control character`},
		{"tab", "a\tb", "holds a control character"},
		{"padded", " reports", "starts or ends with a space"},
		{"not utf-8", "caf\xe9", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := muster.NewJob()
			j.Name, j.Category = "job", tc.category
			j.Steps = []muster.Step{{Name: "s", Shell: "true"}}
			err := j.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			case tc.want != "" && muster.ErrorCode(err) != muster.EINVALID:
				t.Errorf("code %q, want invalid", muster.ErrorCode(err))
			}
		})
	}
}

// A description holds at most 1024 characters, whatever the bytes that
// encode them: 1024 letters é are 2048 bytes.
func TestJobDescriptionLength(t *testing.T) {
	for _, tc := range []struct {
		name, description string
		ok                bool
	}{
		{"longest", strings.Repeat("x", 1024), true},
		{"too long", strings.Repeat("x", 1025), false},
		{"longest, not ascii", strings.Repeat("é", 1024), true},
		{"too long, not ascii", strings.Repeat("日", 1025), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := muster.NewJob()
			j.Name, j.Description = "job", tc.description
			j.Steps = []muster.Step{{Name: "s", Shell: "true"}}
			err := j.Validate()
			switch {
			case tc.ok && err != nil:
				t.Errorf("got %v, want no error", err)
			case !tc.ok && muster.ErrorCode(err) != muster.EINVALID:
				t.Errorf("got %v (code %q), want %q", err, muster.ErrorCode(err), muster.EINVALID)
			case !tc.ok && !strings.Contains(err.Error(), "description: at most 1024 characters"):
				t.Errorf("got %v, want the bound named", err)
			}
		})
	}
}

// A target never receives the category: it is the master's alone, and a
// target of an older version refuses fields it does not know.
func TestDefinitionLeavesOutCategory(t *testing.T) {
	j := muster.NewJob()
	j.Name, j.Category, j.Description = "job", "Reports", "nightly"
	if d := j.DefinitionFor("web1", nil); d.Category != "" || d.Description != "nightly" {
		t.Errorf("definition: category %q, description %q; want no category and the description", d.Category, d.Description)
	}
	if j.Category != "Reports" {
		t.Errorf("Definition changed the job itself: category %q", j.Category)
	}
}

func TestDurationShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		15 * time.Minute:                "15m",
		26 * time.Hour:                  "26h",
		90 * time.Second:                "1m30s",
		time.Hour + 30*time.Minute:      "1h30m",
		time.Hour + 30*time.Second:      "1h0m30s",
		0:                               "0s",
		1500 * time.Millisecond:         "1.5s",
		2*time.Hour + 5*time.Minute + 7: "2h5m0.000000007s",
	} {
		if got := muster.Duration(d).Short(); got != want {
			t.Errorf("Duration(%s).Short() = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(muster.Duration(d).Short()); err != nil || back != d {
			t.Errorf("%q parses back as %s, %v; want %s", muster.Duration(d).Short(), back, err, d)
		}
	}
}

// An Error keeps its cause for errors.Is and errors.As (a caller can tell
// a context's deadline from a refusal), while its code and message are
// its own.
func TestErrorUnwrap(t *testing.T) {
	err := fmt.Errorf("find job: %w", muster.Wrap(muster.ETIMEOUT, context.DeadlineExceeded, "the catalog did not answer in time"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	if code, msg := muster.ErrorCode(err), muster.ErrorMessage(err); code != muster.ETIMEOUT || msg != "the catalog did not answer in time" {
		t.Errorf("code %q, message %q", code, msg)
	}
	if errors.Is(muster.Errorf(muster.ECANCELED, "given up"), context.Canceled) {
		t.Errorf("an Error with no cause unwraps to context.Canceled")
	}
}

// A webhook is shown below admin as its scheme and host: whatever may
// carry its credential (a path, a query, user information) is left out.
func TestRedactWebhook(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/services/T0/B0/secret": "https://hooks.example.com/…",
		"https://hooks.example.com":                       "https://hooks.example.com",
		"https://hooks.example.com/":                      "https://hooks.example.com",
		"https://hooks.example.com?token=secret":          "https://hooks.example.com/…",
		"https://user:pass@hooks.example.com:8443/x":      "https://hooks.example.com:8443/…",
		// An @ in the query or fragment is not user information: the
		// host is the one before them, and nothing after is shown.
		"https://hooks.example.com?token=ab@cd":   "https://hooks.example.com/…",
		"https://hooks.example.com#ab@cd":         "https://hooks.example.com/…",
		"https://u:p@hooks.example.com?t=ab@cd/e": "https://hooks.example.com/…",
		"": "",
	} {
		if got := muster.RedactWebhook(in); got != want {
			t.Errorf("RedactWebhook(%q) = %q, want %q", in, got, want)
		}
	}
}

// A job names a connection of the target's; a DSN put in its place, its
// password with it, is refused without being repeated: the refusal goes
// back to whoever applied the job, and may be logged.
func TestStepConnectionIsANameNotADSN(t *testing.T) {
	const secret = "s3cr3tPW"
	for _, dsn := range []string{
		"postgres://app:" + secret + "@db.example.com:5432/app",
		"app:" + secret + "@tcp(db.example.com:3306)/app",
		"host=db.example.com password=" + secret,
	} {
		j := muster.NewJob()
		j.Name = "job"
		j.Steps = []muster.Step{{Name: "q", SQL: "SELECT 1", Connection: dsn}}
		err := j.Validate()
		if muster.ErrorCode(err) != muster.EINVALID || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v; want it refused (EINVALID) without the password", dsn, err)
		}
	}
}
