package muster_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func ptr[T any](v T) *T { return &v }

// overridden is a job on web1, web2 and group eu with overrides of each
// kind.
func overridden() muster.Job {
	j := muster.NewJob()
	j.Name = "report"
	j.Targets = []string{"web1", "web2"}
	j.Groups = []string{"eu", "prod"}
	j.Timeout = muster.Duration(time.Hour)
	j.Env = map[string]string{"LEVEL": "job", "KEEP": "job"}
	j.TargetEnv = map[string]map[string]string{"web1": {"LEVEL": "target_env", "FROM_TARGET_ENV": "yes"}}
	j.Steps = []muster.Step{{Name: "q", SQL: "select 1", Connection: "main"}, {Name: "copy", Shell: "cp a b"}}
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
	j.Overrides = []muster.Override{
		{Group: "eu", Timeout: ptr(muster.Duration(2 * time.Hour)), Env: map[string]string{"LEVEL": "eu", "EU": "yes"},
			Steps: map[string]muster.StepOverride{"q": {Connection: ptr("eu-main")}}},
		{Group: "prod", Env: map[string]string{"LEVEL": "prod"}, Steps: map[string]muster.StepOverride{"copy": {RunAs: ptr("backup")}}},
		{Target: "web1", Enabled: ptr(false), Schedules: &[]muster.Schedule{{Name: "hourly", Cron: "0 * * * *"}},
			Env: map[string]string{"LEVEL": "web1"}, Steps: map[string]muster.StepOverride{"q": {Timeout: ptr(muster.Duration(time.Minute))}}},
	}
	return j
}

// Each target receives the job with the overrides that apply to it: its
// groups' in the order the job lists them, then target_env, then its own,
// which beats every group's.
func TestDefinitionForAppliesOverridesInOrder(t *testing.T) {
	j := overridden()
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target     string
		groups     []string
		enabled    bool
		schedules  []string
		timeout    time.Duration
		env        map[string]string
		connection string
		stepTO     time.Duration
		runAs      string
	}{
		{"web2", nil, true, []string{"nightly"}, time.Hour, map[string]string{"LEVEL": "job", "KEEP": "job"}, "main", 0, ""},
		{"db1", []string{"eu"}, true, []string{"nightly"}, 2 * time.Hour, map[string]string{"LEVEL": "eu", "KEEP": "job", "EU": "yes"}, "eu-main", 0, ""},
		// prod is listed after eu: its LEVEL wins.
		{"db2", []string{"eu", "prod"}, true, []string{"nightly"}, 2 * time.Hour, map[string]string{"LEVEL": "prod", "KEEP": "job", "EU": "yes"}, "eu-main", 0, "backup"},
		// web1's own override beats its groups' and target_env.
		{"web1", []string{"eu", "prod"}, false, []string{"hourly"}, 2 * time.Hour,
			map[string]string{"LEVEL": "web1", "KEEP": "job", "EU": "yes", "FROM_TARGET_ENV": "yes"}, "eu-main", time.Minute, "backup"},
	} {
		t.Run(c.target, func(t *testing.T) {
			d := j.DefinitionFor(c.target, c.groups)
			var scheds []string
			for _, s := range d.Schedules {
				scheds = append(scheds, s.Name)
			}
			if d.Enabled != c.enabled || !slices.Equal(scheds, c.schedules) || d.Timeout.Std() != c.timeout {
				t.Errorf("enabled %v, schedules %v, timeout %s; want %v, %v, %s", d.Enabled, scheds, d.Timeout.Std(), c.enabled, c.schedules, c.timeout)
			}
			if len(d.Env) != len(c.env) {
				t.Errorf("env %v, want %v", d.Env, c.env)
			}
			for k, v := range c.env {
				if d.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, d.Env[k], v)
				}
			}
			if d.Steps[0].Connection != c.connection || d.Steps[0].Timeout.Std() != c.stepTO || d.Steps[1].RunAs != c.runAs {
				t.Errorf("steps: connection %q, timeout %s, run_as %q; want %q, %s, %q", d.Steps[0].Connection, d.Steps[0].Timeout.Std(),
					d.Steps[1].RunAs, c.connection, c.stepTO, c.runAs)
			}
			if d.Overrides != nil || d.TargetEnv != nil || d.Targets != nil {
				t.Errorf("the definition a target receives holds where the job runs: %+v", d)
			}
		})
	}
	// The job itself is untouched.
	if j.Steps[0].Connection != "main" || j.Env["LEVEL"] != "job" || len(j.Schedules) != 1 {
		t.Errorf("DefinitionFor changed the job: %+v", j)
	}
	// An empty schedules list leaves a target with none.
	j.Overrides = []muster.Override{{Target: "web2", Schedules: &[]muster.Schedule{}}}
	if d := j.DefinitionFor("web2", nil); len(d.Schedules) != 0 {
		t.Errorf("schedules: [] gave %v, want none", d.Schedules)
	}
}

// Each mistake in an override names the field and the rule.
func TestOverrideProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		o    muster.Override
		path string
		want string
	}{
		{"neither", muster.Override{Enabled: ptr(true)}, "overrides[0]", "overrides[0]: set exactly one of target or group"},
		{"both", muster.Override{Target: "web1", Group: "eu", Enabled: ptr(true)}, "overrides[0]", "set exactly one of target or group"},
		{"bad target name", muster.Override{Target: "web 1", Enabled: ptr(true)}, "overrides[0].target", "overrides[0].target"},
		{"group not the job's", muster.Override{Group: "us", Enabled: ptr(true)}, "overrides[0].group", `overrides[0].group: "us" is not one of the job's groups`},
		{"nothing", muster.Override{Target: "web1"}, "overrides[0]", "overrides[0]: changes nothing"},
		{"negative timeout", muster.Override{Target: "web1", Timeout: ptr(muster.Duration(-time.Second))}, "overrides[0].timeout", "must not be negative"},
		{"bad env", muster.Override{Target: "web1", Env: map[string]string{"1X": "y"}}, "overrides[0].env.1X", "overrides[0].env"},
		{"unknown step", muster.Override{Target: "web1", Steps: map[string]muster.StepOverride{"nope": {RunAs: ptr("x")}}}, "overrides[0].steps.nope", `the job has no step named "nope"`},
		{"connection on shell", muster.Override{Target: "web1", Steps: map[string]muster.StepOverride{"copy": {Connection: ptr("x")}}}, "overrides[0].steps.copy.connection", "only a sql step has a connection"},
		{"run_as on sql", muster.Override{Target: "web1", Steps: map[string]muster.StepOverride{"q": {RunAs: ptr("x")}}}, "overrides[0].steps.q.run_as", "run_as is for shell and command steps"},
		{"empty step override", muster.Override{Target: "web1", Steps: map[string]muster.StepOverride{"q": {}}}, "overrides[0].steps.q", "changes nothing; set timeout, connection or run_as"},
		{"schedule names", muster.Override{Target: "web1", Schedules: &[]muster.Schedule{{Name: "a", Cron: "@daily"}, {Name: "a", Cron: "@hourly"}}}, "overrides[0].schedules[1].name", `another schedule is already named "a"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := overridden()
			j.Overrides = []muster.Override{c.o}
			j.Normalize()
			ps := j.Problems()
			if len(ps) != 1 || ps[0].Path != c.path || !strings.Contains(ps[0].Message, c.want) {
				t.Fatalf("problems %+v; want one at %s containing %q", ps, c.path, c.want)
			}
			if err := j.Validate(); muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("Validate: %v, want EINVALID", err)
			}
		})
	}
	j := overridden()
	j.Overrides = append(j.Overrides, muster.Override{Target: "WEB1", Enabled: ptr(true)})
	j.Normalize()
	if ps := j.Problems(); len(ps) != 1 || ps[0].Path != "overrides[3]" || !strings.Contains(ps[0].Message, "target web1 is already overridden at overrides[2]") {
		t.Errorf("a target overridden twice: %+v", ps)
	}
}

// Target names are case-insensitive: two overrides, or two target_env
// entries, of one target in two spellings are refused as read from a
// file (before Normalize), not left to chance.
func TestTargetNamedTwiceInTwoSpellings(t *testing.T) {
	j := overridden()
	j.Overrides = append(j.Overrides, muster.Override{Target: "WEB1", Enabled: ptr(true)})
	if ps := j.Problems(); len(ps) != 1 || ps[0].Path != "overrides[3]" || !strings.Contains(ps[0].Message, "target web1 is already overridden at overrides[2]") {
		t.Errorf("a target overridden twice, not normalized: %+v", ps)
	}
	j = overridden()
	j.TargetEnv = map[string]map[string]string{"web1": {"A": "1"}, "WEB1": {"A": "2"}}
	ps := j.Problems()
	if len(ps) != 1 || ps[0].Path != "target_env.web1" || !strings.Contains(ps[0].Message, `target_env.web1: target web1 is already given as target_env.WEB1; merge the two`) {
		t.Errorf("target_env of one target twice: %+v", ps)
	}
}
