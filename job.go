package muster

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Job is a unit of work defined on the master and run by its targets: ordered
// steps, the schedules it fires on, and where it runs. A target receives the
// whole job (without Targets) in an INSERT instruction, at Version.
type Job struct {
	Name        string     `json:"name" yaml:"name"`
	Description string     `json:"description,omitempty" yaml:"description,omitempty"`
	Enabled     bool       `json:"enabled" yaml:"enabled"`
	Targets     []string   `json:"targets,omitempty" yaml:"targets,omitempty"`
	Steps       []Step     `json:"steps" yaml:"steps"`
	Schedules   []Schedule `json:"schedules,omitempty" yaml:"schedules,omitempty"`

	// Version increases with every change on the master. A target applies an
	// INSERT only at a version not older than the one it holds.
	Version int64 `json:"version,omitempty" yaml:"-"`
}

// NewJob returns a Job with the defaults a job definition starts from before
// it is decoded: enabled unless it says otherwise.
func NewJob() Job { return Job{Enabled: true} }

// Step is one unit of a job's work. Exactly one kind is set: Shell, run by
// /bin/sh -c, or Command, an argv run without a shell.
type Step struct {
	Name    string   `json:"name" yaml:"name"`
	Shell   string   `json:"shell,omitempty" yaml:"shell,omitempty"`
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
}

// Step kinds, as Step.Kind reports them.
const (
	StepShell   = "shell"
	StepCommand = "command"
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
	return k
}

// MaxSteps bounds the number of steps in one job.
const MaxSteps = 100

// MaxSchedules bounds the number of schedules in one job.
const MaxSchedules = 50

// Validate checks the structure of j: names, step kinds and references. It
// does not check schedule expressions (package schedule does) nor that the
// targets exist (the catalog does). Errors name the job, the step and the
// rule, e.g. `job "backup": steps[1] "dump": set exactly one of shell or command`.
func (j *Job) Validate() error {
	if msg := validObjectName(j.Name); msg != "" {
		if j.Name == "" {
			return Errorf(EINVALID, "job: name: %s", msg)
		}
		return Errorf(EINVALID, "job %q: name: %s", j.Name, msg)
	}
	fail := func(format string, args ...any) error {
		return Errorf(EINVALID, "job %q: %s", j.Name, fmt.Sprintf(format, args...))
	}
	if len(j.Description) > 1024 {
		return fail("description: at most 1024 characters")
	}
	seen := map[string]bool{}
	for i, t := range j.Targets {
		if err := ValidateTargetName(fmt.Sprintf("targets[%d]", i), NormalizeTargetName(t)); err != nil {
			return fail("%s", err.Error())
		}
		n := NormalizeTargetName(t)
		if seen[n] {
			return fail("targets[%d]: target %q is listed twice", i, n)
		}
		seen[n] = true
	}
	if len(j.Steps) == 0 {
		return fail("steps: a job needs at least one step")
	}
	if len(j.Steps) > MaxSteps {
		return fail("steps: a job has at most %d steps", MaxSteps)
	}
	stepNames := map[string]bool{}
	for i, s := range j.Steps {
		at := fmt.Sprintf("steps[%d]", i)
		if s.Name != "" {
			at = fmt.Sprintf("steps[%d] %q", i, s.Name)
		}
		if msg := validObjectName(s.Name); msg != "" {
			return fail("%s: name: %s", at, msg)
		}
		if stepNames[s.Name] {
			return fail("%s: name: another step is already named %q", at, s.Name)
		}
		stepNames[s.Name] = true
		switch kinds := s.kinds(); len(kinds) {
		case 0:
			return fail("%s: set one of shell or command", at)
		case 1:
		default:
			return fail("%s: set exactly one of shell or command, not %s", at, strings.Join(kinds, " and "))
		}
		if s.Command != nil {
			if len(s.Command) == 0 || s.Command[0] == "" {
				return fail("%s: command: the first element is the program to run and must not be empty", at)
			}
		}
		for _, arg := range append([]string{s.Shell}, s.Command...) {
			if strings.IndexByte(arg, 0) >= 0 {
				return fail("%s: a shell or command argument must not contain a NUL byte", at)
			}
		}
	}
	if len(j.Schedules) > MaxSchedules {
		return fail("schedules: a job has at most %d schedules", MaxSchedules)
	}
	schedNames := map[string]bool{}
	for i, s := range j.Schedules {
		name := s.Name
		if name == "" {
			name = DefaultScheduleName(i)
		}
		if msg := validObjectName(name); msg != "" {
			return fail("schedules[%d]: name: %s", i, msg)
		}
		if schedNames[name] {
			return fail("schedules[%d]: name: another schedule is already named %q", i, name)
		}
		schedNames[name] = true
	}
	return nil
}

// DefaultScheduleName is the name of the i-th (from 0) schedule of a job when
// the definition gives none.
func DefaultScheduleName(i int) string { return fmt.Sprintf("schedule-%d", i+1) }

// Normalize fills in defaults that the master stores, so that equal
// definitions compare equal: target names lower-cased and sorted, schedule
// names filled in.
func (j *Job) Normalize() {
	for i, t := range j.Targets {
		j.Targets[i] = NormalizeTargetName(t)
	}
	slices.Sort(j.Targets)
	for i := range j.Schedules {
		if j.Schedules[i].Name == "" {
			j.Schedules[i].Name = DefaultScheduleName(i)
		}
	}
}

// Definition returns the part of j a target runs: j without its targets.
func (j Job) Definition() Job {
	j.Targets = nil
	return j
}

// JobTarget is a job's standing on one of its targets: the outcome of its
// last run there (SQL Server's sysjobservers). LastStatus is "" until the
// job has run on the target.
type JobTarget struct {
	Target         string     `json:"target"`
	LastRunID      string     `json:"last_run_id"`
	LastStatus     RunStatus  `json:"last_status"`
	LastMessage    string     `json:"last_message"`
	LastStartedAt  *time.Time `json:"last_started_at"`
	LastDurationMS int64      `json:"last_duration_ms"`
}

// JobStatus is a job as the master holds it, with where it runs and how it
// last went there.
type JobStatus struct {
	Job
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
	Outcomes  []JobTarget `json:"outcomes"`
}
