package jobfile_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jobfile"
)

func TestRead(t *testing.T) {
	jobs, err := jobfile.Read("jobs.yaml", strings.NewReader(`
jobs:
  - name: hello
    targets: [web1, WEB2]
    steps:
      - name: greet
        shell: echo hello
  - name: quiet
    enabled: false
    steps:
      - name: noop
        command: ["true"]
    schedules:
      - cron: "*/5 * * * *"
        jitter: 30s
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || !jobs[0].Enabled || jobs[1].Enabled {
		t.Fatalf("got %+v, want hello enabled and quiet disabled", jobs)
	}
	if jobs[1].Steps[0].Command[0] != "true" || jobs[1].Schedules[0].Cron != "*/5 * * * *" || jobs[1].Schedules[0].Jitter.Std().Seconds() != 30 {
		t.Errorf("got %+v", jobs[1])
	}
}

// Anchors and merge keys share settings between steps, as in yaml.v3: the
// mapping's own keys win over the merged ones.
func TestReadMergesAnchors(t *testing.T) {
	_, err := jobfile.Read("jobs.yaml", strings.NewReader(`
defaults: &retrying
  retry: {attempts: 2, interval: 5s}
  timeout: 1m
jobs:
  - name: a
    targets: [web1]
    steps:
      - <<: *retrying
        name: one
        shell: "true"
      - <<: *retrying
        name: two
        shell: "true"
        timeout: 2m
`))
	if err == nil || !strings.Contains(err.Error(), `jobs.yaml:2:1: unknown key "defaults" in the file`) {
		t.Fatalf("got %v, want the unknown top-level key refused", err)
	}
	jobs, err := jobfile.Read("jobs.yaml", strings.NewReader(`
jobs:
  - name: a
    targets: [web1]
    steps:
      - &first
        name: one
        shell: "true"
        retry: {attempts: 2, interval: 5s}
        timeout: 1m
      - <<: *first
        name: two
        timeout: 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	two := jobs[0].Steps[1]
	if two.Name != "two" || two.Shell != "true" || two.Retry == nil || two.Retry.Attempts != 2 || two.Timeout.Std().Minutes() != 2 {
		t.Errorf("second step %+v: want the first's shell and retry, and its own name and timeout", two)
	}
}

// Each mistake is reported at the FILE:LINE:COL of the key it is about, in
// words.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown step key", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shel: echo\n",
			`jobs.yaml:5:9: job "a": unknown key "shel" in a step (steps[0]); did you mean "shell"?`},
		{"unknown job key", "jobs:\n  - name: a\n    stpes: []\n", `jobs.yaml:3:5: job "a": unknown key "stpes" in a job; did you mean "steps"?`},
		{"a prefix of a key", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: x\n        on_fail: next\n",
			`jobs.yaml:6:9: job "a": unknown key "on_fail" in a step (steps[0]); did you mean "on_failure"?`},
		{"nothing close", "jobs:\n  - name: a\n    zzz: 1\n", `jobs.yaml:3:5: job "a": unknown key "zzz" in a job; its keys are name, description, category, enabled, targets`},
		{"no jobs key", "job:\n  - name: a\n", `jobs.yaml:1:1: unknown key "job" in the file; did you mean "jobs"?`},
		{"empty", "", "jobs.yaml: the file is empty"},
		{"scalar targets", "jobs:\n  - name: a\n    targets: web1\n    steps: [{name: s, shell: x}]\n", `jobs.yaml:3:14: job "a": targets must be a list, e.g. [web1]`},
		{"mapping steps", "jobs:\n  - name: a\n    steps:\n      name: s\n      shell: x\n", `jobs.yaml:4:7: job "a": steps must be a list, each item starting with "- ", e.g. - {name: build, shell: make}`},
		{"scalar retry", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: x\n        retry: 3\n",
			`jobs.yaml:6:16: job "a": steps[0].retry must be a mapping of keys to values, e.g. {attempts: 2, interval: 30s}`},
		{"bad bool", "jobs:\n  - name: a\n    enabled: sometimes\n", `jobs.yaml:3:14: job "a": enabled must be true or false`},
		{"bad int", "jobs:\n  - name: a\n    max_parallel_targets: lots\n", `jobs.yaml:3:27: job "a": max_parallel_targets must be a whole number`},
		{"key twice", "jobs:\n  - name: a\n    steps: []\n    steps: []\n", `jobs.yaml:4:5: job "a": "steps" is given twice in a job (also on line 3)`},
		{"two kinds", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: x\n        command: [y]\n",
			`jobs.yaml:6:9: job "a": steps[0] "s": set exactly one of shell, command or sql, not shell and command`},
		{"no steps", "jobs:\n  - name: a\n", `jobs.yaml:2:5: job "a": steps: a job needs at least one step`},
		{"bad goto", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: x\n        on_failure: goto:nope\n",
			`jobs.yaml:6:9: job "a": steps[0] "s": on_failure: "goto:nope" goes to a step that does not exist`},
		{"bad duration", "jobs:\n  - name: a\n    steps: [{name: s, shell: x}]\n    schedules:\n      - daily: {}\n        jitter: soon\n",
			`jobs.yaml:6:17: job "a": schedules[0].jitter: invalid duration "soon"`},
		{"bad zone", "jobs:\n  - name: a\n    time_zone: Mars/Olympus\n    steps: [{name: s, shell: x}]\n",
			`jobs.yaml:3:5: job "a": time_zone: "Mars/Olympus" is not an IANA time zone`},
		{"local zone", "jobs:\n  - name: a\n    time_zone: Local\n    steps: [{name: s, shell: x}]\n",
			`jobs.yaml:3:5: job "a": time_zone: "Local" is not an IANA time zone`},
		{"never fires", "jobs:\n  - name: a\n    steps: [{name: s, shell: x}]\n    schedules:\n      - name: leap\n        cron: \"0 0 30 2 *\"\n",
			`jobs.yaml:6:9: job "a": schedules[0] "leap": cron "0 0 30 2 *": this schedule can never fire`},
		{"override never fires", "jobs:\n  - name: a\n    targets: [web1]\n    steps: [{name: s, shell: x}]\n    overrides:\n      - target: web1\n        schedules:\n          - cron: \"0 25 * * *\"\n",
			`jobs.yaml:8:13: job "a": overrides[0].schedules[0] "schedule-1": cron "0 25 * * *": hour field "25"`},
		// A step name may hold dots: the problem is still at its key.
		{"override of a dotted step", "jobs:\n  - name: a\n    targets: [web1]\n    steps: [{name: copy.v2, shell: x}]\n    overrides:\n      - target: web1\n        steps:\n          copy.v2:\n            connection: x\n",
			`jobs.yaml:9:13: job "a": overrides[0].steps.copy.v2.connection: only a sql step has a connection`},
		{"job twice", "jobs:\n  - name: a\n    steps: [{name: s, shell: x}]\n  - name: a\n    steps: [{name: s, shell: x}]\n",
			`jobs.yaml:4:5: job "a" is already defined on line 2`},
		{"second document", "jobs: []\n---\njobs: []\n", `jobs.yaml:3:1: a second YAML document`},
		{"alias cycle", "jobs: &j\n  - *j\n", `jobs.yaml:2:5: the alias *j is used inside the value it names`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jobfile.Read("jobs.yaml", strings.NewReader(tc.yaml))
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v (code %q), want an EINVALID error containing %q", err, muster.ErrorCode(err), tc.want)
			}
		})
	}
}

// YAML syntax errors are reported at the line that broke the rule, not at
// the start of the enclosing block as yaml.v3 says.
func TestReadSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		// yaml.v3 says "line 1: did not find expected '-' indicator".
		{"key indented less", "jobs:\n  - name: a\n    targets: [web1]\n   steps:\n      - name: s\n        shell: x\n",
			`jobs.yaml:4:4: bad indentation of "steps:": it is indented 3 spaces, and "targets: [web1]" on line 3 above it 4`},
		{"key indented more", "jobs:\n  - name: a\n    targets: [web1]\n     steps:\n      - name: s\n        shell: x\n",
			`jobs.yaml:4:6: bad indentation of "steps:"`},
		{"step key indented more", "jobs:\n  - name: a\n    steps:\n      - name: s\n         shell: x\n",
			`jobs.yaml:5:10: bad indentation of "shell:": it is indented 9 spaces, and "- name: s" on line 4 above it 8`},
		{"a colon in a value", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: echo a: b\n",
			`jobs.yaml:5:22: a value on this line holds ": "`},
		{"tab", "jobs:\n  - name: a\n\ttargets: [web1]\n", `jobs.yaml:3:1: a tab indents this line`},
		{"unclosed list", "jobs:\n  - name: a\n    targets: [web1\n    steps:\n      - name: s\n        shell: x\n",
			`jobs.yaml:3:14: a list opened with "[" is not closed with "]"`},
		{"unclosed quote", "jobs:\n  - name: a\n    steps:\n      - name: s\n        shell: \"echo\n",
			`jobs.yaml:5:16: the value quoted with " here is never closed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jobfile.Read("jobs.yaml", strings.NewReader(tc.yaml))
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an EINVALID error containing %q", err, tc.want)
			}
		})
	}
}

// The acceptance case: a jobs file with a key mis-indented on line 6 is
// reported at line 6.
func TestReadReportsMisindentedKeyAtItsLine(t *testing.T) {
	src := `jobs:
  - name: backup
    targets: [db1]
    steps:
      - name: dump
     shell: pg_dump app
`
	_, err := jobfile.Read("jobs.yaml", strings.NewReader(src))
	if err == nil || !strings.HasPrefix(err.Error(), "jobs.yaml:6:") {
		t.Errorf("got %v, want it reported at jobs.yaml:6", err)
	}
}

// Every problem of a file is reported at once, in the order of the file.
func TestReadReportsEveryProblem(t *testing.T) {
	src := `jobs:
  - name: a
    targets: web1
    steps: [{name: s, shell: x}]
  - name: b
    time_zone: Nowhere/Land
    steps:
      - name: s
        shell: x
        on_fail: next
    schedules:
      - cron: "61 * * * *"
  - name: a
    steps: [{name: s, shell: x}]
`
	_, err := jobfile.Read("jobs.yaml", strings.NewReader(src))
	if muster.ErrorCode(err) != muster.EINVALID {
		t.Fatalf("got %v, want EINVALID", err)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`jobs.yaml:3:14: job "a": targets must be a list, e.g. [web1]`,
		`jobs.yaml:10:9: job "b": unknown key "on_fail" in a step (steps[0]); did you mean "on_failure"?`,
		`jobs.yaml:13:5: job "a" is already defined on line 2`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems:\n%s\nwant %d", len(lines), err, len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("problem %d:\n got %s\nwant %s", i+1, lines[i], want[i])
		}
	}

	// With the shapes fixed, the rules of job b are all reported: its zone
	// and its schedule.
	src = strings.Replace(strings.Replace(src, "targets: web1", "targets: [web1]", 1), "on_fail:", "on_failure:", 1)
	_, err = jobfile.Read("jobs.yaml", strings.NewReader(src))
	for _, w := range []string{
		`jobs.yaml:6:5: job "b": time_zone: "Nowhere/Land" is not an IANA time zone`,
		`jobs.yaml:13:5: job "a" is already defined on line 2`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("got %v, want it to contain %q", err, w)
		}
	}
	src = strings.Replace(src, "Nowhere/Land", "Europe/Paris", 1)
	_, err = jobfile.Read("jobs.yaml", strings.NewReader(src))
	if w := `jobs.yaml:12:9: job "b": schedules[0] "schedule-1": cron "61 * * * *": minute field "61": 61 is out of range 0-59`; err == nil || !strings.Contains(err.Error(), w) {
		t.Errorf("got %v, want it to contain %q", err, w)
	}
}

func TestReadRefusesOversizedFiles(t *testing.T) {
	big := "jobs: []\n# " + strings.Repeat("x", jobfile.MaxSize)
	_, err := jobfile.Read("big.yaml", strings.NewReader(big))
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "big.yaml: the file is over 4 MiB (MaxSize)") {
		t.Errorf("got %v, want a size error naming MaxSize", err)
	}
}

// aliasBomb is a schema-valid jobs file of about 1.7 MB that defines one
// 1 MiB string and refers to it from every step: expanded, it is gigabytes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("jobs:\n  - name: j0\n    description: &big \"")
	b.WriteString(strings.Repeat("x", 1<<20))
	b.WriteString("\"\n    targets: [web1]\n    steps: [{name: s, shell: \"true\"}]\n")
	for j := 1; len(b.String()) < 1700<<10; j++ {
		fmt.Fprintf(&b, "  - name: j%d\n    targets: [web1]\n    steps:\n", j)
		for s := range 100 {
			fmt.Fprintf(&b, "      - {name: s%d, shell: *big}\n", s)
		}
	}
	return b.String()
}

// An alias bomb is refused before it is expanded, naming the limit, and
// reading it allocates a bounded amount of memory, not the gigabytes the
// expansion would take.
func TestReadRefusesAliasBombs(t *testing.T) {
	bomb := aliasBomb()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := jobfile.Read("bomb.yaml", strings.NewReader(bomb))
	runtime.ReadMemStats(&after)
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "more than 16 MiB, the most one apply may send (MaxExpandedSize)") {
		t.Fatalf("got %v, want a refusal naming MaxExpandedSize", err)
	}
	if !strings.Contains(err.Error(), "bomb.yaml:3:18:") || !strings.Contains(err.Error(), "anchored here as &big is 1.0 MiB") {
		t.Errorf("got %v, want the anchor &big named at its line", err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading the %d-byte bomb allocated %d MiB", len(bomb), allocated>>20)
	if limit := uint64(128 << 20); allocated > limit {
		t.Errorf("reading the bomb allocated %d MiB; want at most %d MiB", allocated>>20, limit>>20)
	}

	// Nested aliases (a billion laughs) cost time in proportion to the
	// file, not to the expansion.
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		p := string(i - 1)
		laughs += fmt.Sprintf("%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", i, i, p, p, p, p, p, p, p, p, p, p)
	}
	laughs += "jobs: *j\n"
	if _, err := jobfile.Read("laughs.yaml", strings.NewReader(laughs)); muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "MaxExpandedSize") {
		t.Errorf("got %v, want a refusal naming MaxExpandedSize", err)
	}
}

// Every variable of an env that breaks a rule is reported, each at its own
// key and always in the same order, wherever the env is: the job's, a
// step's, a target's in target_env and an override's.
func TestReadReportsEveryBadVariable(t *testing.T) {
	src := `jobs:
  - name: envs
    targets: [web1.example.com]
    env:
      OK: x
      2B: y
      1A: x
      MUSTER_JOB: z
    target_env:
      web1.example.com:
        B-B: x
        A-A: y
    steps:
      - name: s
        shell: "true"
        env: {X.Y: a, W.Z: b}
    overrides:
      - target: web1.example.com
        env:
          MUSTER_A: a
          MUSTER_B: b
`
	want := `jobs.yaml:6:7: job "envs": env: "2B" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:7:7: job "envs": env: "1A" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:8:7: job "envs": env: MUSTER_JOB: the MUSTER_ variables are set by muster and cannot be overridden
jobs.yaml:11:9: job "envs": target_env.web1.example.com: "B-B" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:12:9: job "envs": target_env.web1.example.com: "A-A" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:16:15: job "envs": steps[0] "s": env: "X.Y" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:16:23: job "envs": steps[0] "s": env: "W.Z" is not a variable name (letters, digits and _, not starting with a digit)
jobs.yaml:20:11: job "envs": overrides[0].env: MUSTER_A: the MUSTER_ variables are set by muster and cannot be overridden
jobs.yaml:21:11: job "envs": overrides[0].env: MUSTER_B: the MUSTER_ variables are set by muster and cannot be overridden`
	for i := range 20 {
		_, err := jobfile.Read("jobs.yaml", strings.NewReader(src))
		if code := muster.ErrorCode(err); code != muster.EINVALID {
			t.Fatalf("read %d: got %v (code %q), want %q", i, err, code, muster.EINVALID)
		}
		if got := muster.ErrorMessage(err); got != want {
			t.Fatalf("read %d: got\n%s\nwant\n%s", i, got, want)
		}
	}
}

// Merge keys work in every mapping of a job file as in any YAML: in the
// mappings of variables (env, target_env) and of step overrides too, and
// with a list of mappings to merge, the first that sets a key wins.
func TestReadMergesIntoMappings(t *testing.T) {
	src := `jobs:
  - name: a
    targets: [web1]
    env: &common {A: "1", B: "2"}
    target_env:
      web1: {<<: *common, B: "20"}
    steps:
      - &first
        name: one
        shell: "true"
        timeout: 1m
        env:
          <<: *common
          C: "3"
          A: "9"
      - &second
        name: two
        shell: "true"
        timeout: 2m
        workdir: /srv
      - <<: [*first, *second]
        name: three
    overrides:
      - target: web1
        steps:
          one: &slow {timeout: 1h}
          two: {<<: *slow}
`
	jobs, err := jobfile.Read("jobs.yaml", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	j := jobs[0]
	if got := fmt.Sprint(j.Steps[0].Env); got != "map[A:9 B:2 C:3]" {
		t.Errorf("steps[0].env = %s, want map[A:9 B:2 C:3]", got)
	}
	if got := fmt.Sprint(j.TargetEnv["web1"]); got != "map[A:1 B:20]" {
		t.Errorf("target_env.web1 = %s, want map[A:1 B:20]", got)
	}
	if three := j.Steps[2]; three.Timeout.Std() != time.Minute || three.Workdir != "/srv" {
		t.Errorf("steps[2]: timeout %s, workdir %q; want 1m0s (from the first mapping merged) and /srv", three.Timeout, three.Workdir)
	}
	if so := j.Overrides[0].Steps["two"]; so.Timeout == nil || so.Timeout.Std() != time.Hour {
		t.Errorf("overrides[0].steps.two = %+v, want timeout 1h", so)
	}
}

// An item of a list that YAML reads as null (~, null, or nothing) is
// refused, at the item: `command: [ls, ~]` would otherwise run ls with an
// empty argument, not the home directory the file seems to name.
func TestReadRefusesNullListItems(t *testing.T) {
	src := `jobs:
  - name: a
    targets: [web1]
    steps:
      - name: s
        command: [ls, ~, null, "~", "null"]
      -
`
	want := `jobs.yaml:6:23: job "a": steps[0].command[1] is null; quote it for the text ("~"), or write "" for an empty value
jobs.yaml:6:26: job "a": steps[0].command[2] is null; quote it for the text ("null"), or write "" for an empty value
jobs.yaml:7:8: job "a": steps[1] is empty; remove the "-" or give the item`
	refusedWith(t, src, want)
}

// A job defined twice through an alias, or a merge key, is reported where
// it is defined the second time, not at the anchor it copies.
func TestReadDuplicateByAlias(t *testing.T) {
	src := `jobs:
  - &a
    name: a
    steps: [{name: s, shell: "true"}]
  - *a
  - <<: *a
    description: again
`
	want := `jobs.yaml:5:5: job "a" is already defined on line 3
jobs.yaml:6:5: job "a" is already defined on line 3`
	refusedWith(t, src, want)
}

// The expansion is counted as the master counts what an apply sends: each
// mapping and list 128 bytes more (jsonhttp.ValueCost), each string as JSON
// writes it. A file that refers to a list of small steps from many jobs
// comes to more than the master takes, though its text is small, and is
// refused naming the anchor, before it is sent.
func TestReadCountsExpansionAsSent(t *testing.T) {
	var b strings.Builder
	b.WriteString("jobs:\n  - name: j0\n    targets: [web1]\n    steps: &steps\n")
	for s := range 100 {
		fmt.Fprintf(&b, "      - {name: s%d, shell: \"true\"}\n", s)
	}
	for j := 1; j < 1200; j++ {
		fmt.Fprintf(&b, "  - {name: j%d, targets: [web1], steps: *steps}\n", j)
	}
	_, err := jobfile.Read("many.yaml", strings.NewReader(b.String()))
	if code := muster.ErrorCode(err); code != muster.EINVALID {
		t.Fatalf("got %v (code %q), want %q", err, code, muster.EINVALID)
	}
	if !strings.Contains(err.Error(), "many.yaml:4:12: its aliases expand the file to more than 16 MiB") || !strings.Contains(err.Error(), "as &steps") {
		t.Errorf("got %v, want the anchor &steps named at its line", err)
	}

	// Characters JSON writes escaped count as escaped: 3 MiB of "<" is
	// sent as 18 MiB (\u003c).
	big := "jobs:\n  - name: big\n    targets: [web1]\n    steps:\n      - name: s\n        shell: \"" + strings.Repeat("<", 3<<20) + "\"\n"
	_, err = jobfile.Read("big.yaml", strings.NewReader(big))
	if code := muster.ErrorCode(err); code != muster.EINVALID || !strings.Contains(err.Error(), "big.yaml: the file comes to more than 16 MiB as sent to the master") {
		t.Errorf("got %v (code %q), want the file refused as over 16 MiB as sent", err, code)
	}
}

// A schedule's mistake is reported at the key it is about when the
// schedule names one (its cron, its at, its daily.every), not at the
// schedule's first line.
func TestReadPlacesScheduleMistakesAtTheirKey(t *testing.T) {
	src := `jobs:
  - name: a
    targets: [web1]
    steps: [{name: s, shell: "true"}]
    schedules:
      - name: nightly
        cron: "30 25 * * *"
      - name: late
        daily:
          every: -1
      - name: odd
        weekly: {days: [mon]}
        at: "25:00"
      - name: both
        start_date: "2027-02-01"
        end_date: "2027-01-01"
        daily: {}
    overrides:
      - target: web1
        schedules:
          - name: o
            cron: "61 * * * *"
`
	want := `jobs.yaml:7:9: job "a": schedules[0] "nightly": cron "30 25 * * *": hour field "25": 25 is out of range 0-23
jobs.yaml:10:11: job "a": schedules[1] "late": daily.every: -1 is negative; use 1 or more (0 or unset means 1)
jobs.yaml:13:9: job "a": schedules[2] "odd": at: "25:00" is not a time of day; use "15:04" or "15:04:05"
jobs.yaml:14:9: job "a": schedules[3] "both": start_date 2027-02-01 is after end_date 2027-01-01
jobs.yaml:22:13: job "a": overrides[0].schedules[0] "o": cron "61 * * * *": minute field "61": 61 is out of range 0-59`
	refusedWith(t, src, want)
}

// refusedWith reads src as jobs.yaml and checks it is refused as invalid
// with the message want, every problem in it.
func refusedWith(t *testing.T, src, want string) {
	t.Helper()
	_, err := jobfile.Read("jobs.yaml", strings.NewReader(src))
	if code := muster.ErrorCode(err); code != muster.EINVALID {
		t.Fatalf("got %v (code %q), want %q", err, code, muster.EINVALID)
	}
	if got := muster.ErrorMessage(err); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
