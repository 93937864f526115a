package muster

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Job is a unit of work defined on the master and run by its targets: ordered
// steps, the schedules it fires on, and where it runs. A target receives the
// whole job (without Targets) in an INSERT instruction, at Version.
type Job struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Category groups jobs for people (SQL Server Agent's job categories):
	// free text that `muster job list --category` filters on. It is the
	// master's alone; targets never receive it.
	Category string   `json:"category,omitempty" yaml:"category,omitempty"`
	Enabled  bool     `json:"enabled" yaml:"enabled"`
	Targets  []string `json:"targets,omitempty" yaml:"targets,omitempty"`
	// Groups are target groups the job runs on, live: a target added to a
	// group later receives the job, one removed loses it.
	Groups    []string   `json:"groups,omitempty" yaml:"groups,omitempty"`
	Steps     []Step     `json:"steps" yaml:"steps"`
	Schedules []Schedule `json:"schedules,omitempty" yaml:"schedules,omitempty"`

	// TimeZone is the IANA zone the job's schedules fire in; by default the
	// target's own (as SQL Server Agent). A CRON_TZ= prefix wins over both.
	TimeZone string `json:"time_zone,omitempty" yaml:"time_zone,omitempty"`
	// Timeout ends a whole run that lasts longer, killing its processes; 0
	// means none.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Env is added to every step's environment.
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Misfire says what a target does with fires it missed while it was
	// down: skip them (the default) or run_once, the latest of them.
	Misfire string `json:"misfire,omitempty" yaml:"misfire,omitempty"`
	// TargetEnv overrides Env on particular targets, by target name,
	// instead of copying the job per target. Each target receives only its
	// own values.
	TargetEnv map[string]map[string]string `json:"target_env,omitempty" yaml:"target_env,omitempty"`
	// MaxParallelTargets caps how many targets run the job at once when the
	// master starts it: further targets' STARTs wait until a run ends. 0
	// means no cap. (Scheduled fires run on each target's own clock.)
	MaxParallelTargets int `json:"max_parallel_targets,omitempty" yaml:"max_parallel_targets,omitempty"`
	// Overrides change the job on particular targets, or on the members of
	// its groups: schedules, enabled, timeouts, env, connections and
	// proxies (see Override for which wins). Each target receives the job
	// with the overrides that apply to it, and only those.
	Overrides []Override `json:"overrides,omitempty" yaml:"overrides,omitempty"`

	// Version increases with every change on the master. A target applies an
	// INSERT only at a version not older than the one it holds.
	Version int64 `json:"version,omitempty" yaml:"-"`
}

// NewJob returns a Job with the defaults a job definition starts from before
// it is decoded: enabled unless it says otherwise.
func NewJob() Job { return Job{Enabled: true} }

// MaxSteps bounds the number of steps in one job.
const MaxSteps = 100

// MaxSchedules bounds the number of schedules in one job.
const MaxSchedules = 50

// FieldError is one rule a job definition breaks. Path locates the field
// as a job file spells it, from the job down: "name", "targets[1]",
// "target_env.web1", "steps[2].on_failure", "schedules[0].name". Message
// names the job, the step and the rule, as Validate's errors do.
type FieldError struct {
	Path    string
	Message string
}

// Validate checks the structure of j: names, step kinds and references. It
// does not check schedule expressions (package schedule does) nor that the
// targets exist (the catalog does). The error is the first of j's Problems,
// e.g. `job "backup": steps[1] "dump": set exactly one of shell, command or sql`.
func (j *Job) Validate() error {
	if p := j.Problems(); len(p) > 0 {
		return Errorf(EINVALID, "%s", p[0].Message)
	}
	return nil
}

// Problems returns every rule of Validate that j breaks, in the order of
// its fields, so that a job file's author can fix them all at once.
func (j *Job) Problems() []FieldError {
	var out []FieldError
	add := func(path, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if j.Name == "" {
			out = append(out, FieldError{Path: path, Message: "job: " + msg})
			return
		}
		out = append(out, FieldError{Path: path, Message: fmt.Sprintf("job %q: %s", j.Name, msg)})
	}
	if msg := validObjectName(j.Name); msg != "" {
		add("name", "name: %s", msg)
	}
	if utf8.RuneCountInString(j.Description) > MaxDescriptionLen {
		add("description", "description: at most %d characters", MaxDescriptionLen)
	}
	if err := ValidateCategory("category", j.Category); err != nil {
		add("category", "%s", ErrorMessage(err))
	}
	seen := map[string]bool{}
	for i, t := range j.Targets {
		path := fmt.Sprintf("targets[%d]", i)
		n := NormalizeTargetName(t)
		if err := ValidateTargetName(path, n); err != nil {
			add(path, "%s", err.Error())
			continue
		}
		if seen[n] {
			add(path, "%s: target %q is listed twice", path, n)
		}
		seen[n] = true
	}
	seenGroups := map[string]bool{}
	for i, g := range j.Groups {
		path := fmt.Sprintf("groups[%d]", i)
		if msg := validObjectName(g); msg != "" {
			add(path, "%s: %s", path, msg)
			continue
		}
		if seenGroups[g] {
			add(path, "%s: group %q is listed twice", path, g)
		}
		seenGroups[g] = true
	}
	envTargets := map[string]string{} // the key given, by target
	for _, t := range slices.Sorted(maps.Keys(j.TargetEnv)) {
		path := "target_env." + t
		n := NormalizeTargetName(t)
		if err := ValidateTargetName("target_env", n); err != nil {
			add(path, "%s", err.Error())
			continue
		}
		// Target names are case-insensitive: two spellings of one
		// target would be merged in an order left to chance.
		if prev, dup := envTargets[n]; dup {
			add(path, "%s: target %s is already given as target_env.%s; merge the two", path, n, prev)
			continue
		}
		envTargets[n] = t
		for _, p := range EnvProblems("target_env."+t, j.TargetEnv[t]) {
			add(envPath(path, p), "%s", p.Message)
		}
	}
	j.overrideProblems(add)
	if j.MaxParallelTargets < 0 {
		add("max_parallel_targets", "max_parallel_targets: must not be negative")
	}
	switch {
	case len(j.Steps) == 0:
		add("steps", "steps: a job needs at least one step")
	case len(j.Steps) > MaxSteps:
		add("steps", "steps: a job has at most %d steps", MaxSteps)
	}
	stepNames := map[string]bool{}
	for i, s := range j.Steps {
		at := stepLabel(i, s)
		path := fmt.Sprintf("steps[%d].name", i)
		if msg := validObjectName(s.Name); msg != "" {
			add(path, "%s: name: %s", at, msg)
			continue
		}
		if stepNames[s.Name] {
			add(path, "%s: name: another step is already named %q", at, s.Name)
		}
		stepNames[s.Name] = true
	}
	for i, s := range j.Steps {
		for _, p := range s.problems(stepLabel(i, s), fmt.Sprintf("steps[%d]", i), stepNames) {
			add(p.Path, "%s", p.Message)
		}
	}
	for _, p := range EnvProblems("env", j.Env) {
		add(envPath("env", p), "%s", p.Message)
	}
	switch j.Misfire {
	case "", MisfireSkip, MisfireRunOnce:
	default:
		add("misfire", "misfire: %q is not skip or run_once", j.Misfire)
	}
	if len(j.Schedules) > MaxSchedules {
		add("schedules", "schedules: a job has at most %d schedules", MaxSchedules)
	}
	schedNames := map[string]bool{}
	for i, s := range j.Schedules {
		name := s.Name
		if name == "" {
			name = DefaultScheduleName(i)
		}
		path := fmt.Sprintf("schedules[%d]", i)
		if s.Name != "" {
			path += ".name"
		}
		if msg := validObjectName(name); msg != "" {
			add(path, "schedules[%d]: name: %s", i, msg)
			continue
		}
		if schedNames[name] {
			add(path, "schedules[%d]: name: another schedule is already named %q", i, name)
		}
		schedNames[name] = true
	}
	return out
}

// MaxDescriptionLen bounds a job's description, in characters.
const MaxDescriptionLen = 1024

// MaxCategoryLen bounds a job's category, in characters, as SQL Server
// bounds its names.
const MaxCategoryLen = 128

// ValidateCategory checks a job category: free text of at most
// MaxCategoryLen characters without control characters, or "" for none. field
// names the input in the error.
func ValidateCategory(field, c string) error {
	switch {
	case !utf8.ValidString(c):
		return Errorf(EINVALID, "%s: not valid UTF-8 text", field)
	case utf8.RuneCountInString(c) > MaxCategoryLen:
		return Errorf(EINVALID, "%s: at most %d characters", field, MaxCategoryLen)
	case strings.IndexFunc(c, unicode.IsControl) >= 0:
		return Errorf(EINVALID, "%s: %q holds a control character (a tab, a line break, ...); a category is one line of text", field, c)
	case c != strings.TrimSpace(c):
		return Errorf(EINVALID, "%s: %q starts or ends with a space", field, c)
	}
	return nil
}

// Misfire policies: what a target does with fires it missed while down.
const (
	MisfireSkip    = "skip"     // record them as one skipped run
	MisfireRunOnce = "run_once" // run the latest of them once, late
)

// MaxRunExecutions bounds how many step executions one run may make, as a
// multiple of its number of steps, so goto loops end.
const MaxRunExecutions = 10

// MaxRunAttempts bounds how many step attempts (retries included) one run
// may make: a run that reaches it ends failed, as at MaxRunExecutions. It
// is as many as a master takes in one run's report.
const MaxRunAttempts = MaxRunExecutions * MaxSteps

func stepLabel(i int, s Step) string {
	if s.Name != "" {
		return fmt.Sprintf("steps[%d] %q", i, s.Name)
	}
	return fmt.Sprintf("steps[%d]", i)
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
	slices.Sort(j.Groups)
	if len(j.TargetEnv) > 0 {
		env := make(map[string]map[string]string, len(j.TargetEnv))
		for t, e := range j.TargetEnv {
			env[NormalizeTargetName(t)] = e
		}
		// Two spellings of one target are left as given, for Validate
		// to refuse, rather than merged in an order left to chance.
		if len(env) == len(j.TargetEnv) {
			j.TargetEnv = env
		}
	}
	for i := range j.Schedules {
		if j.Schedules[i].Name == "" {
			j.Schedules[i].Name = DefaultScheduleName(i)
		}
	}
	j.normalizeOverrides()
}

// Definition returns the part of j a target runs: j without where it runs,
// and without what only the master uses (so a target of an older version,
// which refuses unknown fields, never sees a field added for the master).
func (j Job) Definition() Job {
	j.Targets, j.Groups, j.TargetEnv, j.MaxParallelTargets, j.Category, j.Overrides = nil, nil, nil, 0, "", nil
	return j
}

// DefinitionFor returns the definition the named target receives, given
// the job's groups it is a member of: the job with the overrides of those
// groups applied in the order the job lists them, then its own target_env
// values merged over env, then its own override (see Override).
func (j Job) DefinitionFor(target string, groups []string) Job {
	d := j.Definition()
	overrides := j.OverridesFor(target, groups)
	own := len(overrides) > 0 && overrides[len(overrides)-1].Target == target
	for i, o := range overrides {
		if own && i == len(overrides)-1 {
			break
		}
		o.apply(&d)
	}
	if over := j.TargetEnv[target]; len(over) > 0 {
		env := make(map[string]string, len(d.Env)+len(over))
		maps.Copy(env, d.Env)
		maps.Copy(env, over)
		d.Env = env
	}
	if own {
		overrides[len(overrides)-1].apply(&d)
	}
	return d
}

// JobTarget is a job's standing on one of its targets: the outcome of its
// last run there (SQL Server's sysjobservers). LastStatus is "" until the
// job has run on the target.
type JobTarget struct {
	Target string `json:"target"`
	// Via says why the job runs there: "targets" (named in the job) and
	// "group:NAME" for each of its groups the target is in.
	Via            []string   `json:"via"`
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
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// CreatedBy and UpdatedBy name the API key (or, for a job older than
	// the record, nobody) that created the job and last changed its
	// definition.
	CreatedBy string      `json:"created_by"`
	UpdatedBy string      `json:"updated_by"`
	Outcomes  []JobTarget `json:"outcomes"`
}
