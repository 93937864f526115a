package muster

import (
	"fmt"
	"maps"
	"slices"
)

// Override changes a job's definition on some of its targets instead of a
// copy of the job per target: on one target (Target), or on the members of
// one of the job's groups (Group). A field left out keeps the job's value.
//
// The rule of precedence, field by field: the job's own value, then each
// group override the target falls under in the order the job lists them (a
// later one wins), then target_env, then the target's own override, which
// beats every group's. Env values merge (an override adds or replaces
// variables, never removes one); every other field replaces.
type Override struct {
	Target string `json:"target,omitempty" yaml:"target,omitempty"`
	Group  string `json:"group,omitempty" yaml:"group,omitempty"`

	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Schedules replace the job's schedules; an empty list leaves the
	// target with none (it runs the job only when started).
	Schedules *[]Schedule `json:"schedules,omitempty" yaml:"schedules,omitempty"`
	// Timeout replaces the job's run timeout.
	Timeout *Duration         `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Env     map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Steps change steps, by name.
	Steps map[string]StepOverride `json:"steps,omitempty" yaml:"steps,omitempty"`
}

// StepOverride changes one step of a job on the targets of an Override.
type StepOverride struct {
	Timeout    *Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Connection *string   `json:"connection,omitempty" yaml:"connection,omitempty"`
	RunAs      *string   `json:"run_as,omitempty" yaml:"run_as,omitempty"`
}

// MaxOverrides bounds the overrides of one job.
const MaxOverrides = 1000

// Subject names what an override applies to: "target web1", "group eu".
func (o Override) Subject() string {
	if o.Target != "" {
		return "target " + o.Target
	}
	return "group " + o.Group
}

// ChangesNothing reports whether o sets no field.
func (o Override) ChangesNothing() bool {
	return o.Enabled == nil && o.Schedules == nil && o.Timeout == nil && len(o.Env) == 0 && len(o.Steps) == 0
}

// overrideProblems checks j's overrides against the rest of j: each names
// exactly one target or one of the job's groups, once; each changes
// something; its steps exist and take what it sets.
func (j *Job) overrideProblems(add func(path, format string, args ...any)) {
	if len(j.Overrides) > MaxOverrides {
		add("overrides", "overrides: a job has at most %d overrides", MaxOverrides)
		return
	}
	steps := map[string]Step{}
	for _, s := range j.Steps {
		steps[s.Name] = s
	}
	seen := map[string]int{}
	for i, o := range j.Overrides {
		at := fmt.Sprintf("overrides[%d]", i)
		switch {
		case (o.Target == "") == (o.Group == ""):
			add(at, "%s: set exactly one of target or group", at)
			continue
		case o.Target != "":
			if err := ValidateTargetName(at+".target", NormalizeTargetName(o.Target)); err != nil {
				add(at+".target", "%s", err.Error())
				continue
			}
		case !slices.Contains(j.Groups, o.Group):
			add(at+".group", "%s.group: %q is not one of the job's groups; a group override applies to the members of a group the job runs on: add it to groups:",
				at, o.Group)
			continue
		}
		// Target names are case-insensitive (the job may not be
		// normalized yet, as read from a file).
		subject := Override{Target: NormalizeTargetName(o.Target), Group: o.Group}.Subject()
		if prev, dup := seen[subject]; dup {
			add(at, "%s: %s is already overridden at overrides[%d]; merge the two", at, subject, prev)
		}
		seen[subject] = i
		if o.ChangesNothing() {
			add(at, "%s: changes nothing; set enabled, schedules, timeout, env or steps", at)
		}
		if o.Timeout != nil && *o.Timeout < 0 {
			add(at+".timeout", "%s.timeout: must not be negative", at)
		}
		for _, p := range EnvProblems(at+".env", o.Env) {
			add(envPath(at+".env", p), "%s", p.Message)
		}
		if o.Schedules != nil && len(*o.Schedules) > MaxSchedules {
			add(at+".schedules", "%s.schedules: at most %d schedules", at, MaxSchedules)
		}
		if o.Schedules != nil {
			names := map[string]bool{}
			for k, s := range *o.Schedules {
				path, name := fmt.Sprintf("%s.schedules[%d]", at, k), s.Name
				if name == "" {
					name = DefaultScheduleName(k)
				}
				if msg := validObjectName(name); msg != "" {
					add(path+".name", "%s: name: %s", path, msg)
				} else if names[name] {
					add(path+".name", "%s: name: another schedule is already named %q", path, name)
				}
				names[name] = true
			}
		}
		for _, name := range slices.Sorted(maps.Keys(o.Steps)) {
			so, path := o.Steps[name], at+".steps."+name
			s, ok := steps[name]
			if !ok {
				add(path, "%s: the job has no step named %q", path, name)
				continue
			}
			if so.Timeout == nil && so.Connection == nil && so.RunAs == nil {
				add(path, "%s: changes nothing; set timeout, connection or run_as", path)
			}
			if so.Timeout != nil && *so.Timeout < 0 {
				add(path+".timeout", "%s.timeout: must not be negative", path)
			}
			if so.Connection != nil {
				switch msg := validObjectName(*so.Connection); {
				case s.SQL == "":
					add(path+".connection", "%s.connection: only a sql step has a connection", path)
				case msg != "":
					add(path+".connection", "%s.connection: %s", path, msg)
				}
			}
			if so.RunAs != nil {
				switch msg := validObjectName(*so.RunAs); {
				case s.SQL != "":
					add(path+".run_as", "%s.run_as: a sql step runs as its connection's user; run_as is for shell and command steps", path)
				case *so.RunAs != "" && msg != "":
					add(path+".run_as", "%s.run_as: %s", path, msg)
				}
			}
		}
	}
}

// normalizeOverrides lower-cases target names and fills in schedule names,
// as Normalize does for the job's own.
func (j *Job) normalizeOverrides() {
	for i := range j.Overrides {
		o := &j.Overrides[i]
		o.Target = NormalizeTargetName(o.Target)
		if o.Schedules != nil {
			for k := range *o.Schedules {
				if (*o.Schedules)[k].Name == "" {
					(*o.Schedules)[k].Name = DefaultScheduleName(k)
				}
			}
		}
	}
}

// OverridesFor returns the overrides that apply on target, a member of the
// job's groups in groups, in the order they apply: group overrides as the
// job lists them, then the target's own.
func (j Job) OverridesFor(target string, groups []string) []Override {
	var out []Override
	var own *Override
	for i, o := range j.Overrides {
		switch {
		case o.Target != "" && o.Target == target:
			own = &j.Overrides[i]
		case o.Group != "" && slices.Contains(groups, o.Group):
			out = append(out, o)
		}
	}
	if own != nil {
		out = append(out, *own)
	}
	return out
}

// apply changes d, a job's definition, as o says.
func (o Override) apply(d *Job) {
	if o.Enabled != nil {
		d.Enabled = *o.Enabled
	}
	if o.Schedules != nil {
		d.Schedules = slices.Clone(*o.Schedules)
		if d.Schedules == nil {
			d.Schedules = []Schedule{}
		}
	}
	if o.Timeout != nil {
		d.Timeout = *o.Timeout
	}
	if len(o.Env) > 0 {
		env := make(map[string]string, len(d.Env)+len(o.Env))
		maps.Copy(env, d.Env)
		maps.Copy(env, o.Env)
		d.Env = env
	}
	if len(o.Steps) > 0 {
		d.Steps = slices.Clone(d.Steps)
		for i, s := range d.Steps {
			so, ok := o.Steps[s.Name]
			if !ok {
				continue
			}
			if so.Timeout != nil {
				s.Timeout = *so.Timeout
			}
			if so.Connection != nil {
				s.Connection = *so.Connection
			}
			if so.RunAs != nil {
				s.RunAs = *so.RunAs
			}
			d.Steps[i] = s
		}
	}
}
