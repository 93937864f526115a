package jobfile_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jobfile"
)

// exampleJobs covers every key of a job, a step and a schedule, and values
// that YAML could misread if written carelessly.
func exampleJobs() []muster.Job {
	full := muster.NewJob()
	full.Name = "nightly-report"
	full.Description = "build: the report\nand mail it"
	full.Category = "[Uncategorized (Local)]"
	full.Targets = []string{"web1", "web2"}
	full.Groups = []string{"reporting"}
	full.TimeZone = "Europe/Paris"
	full.Timeout = muster.Duration(2 * time.Hour)
	full.Env = map[string]string{"REPORT_DIR": "/srv/reports", "YES": "yes", "NUM": "0123", "EMPTY": ""}
	full.Misfire = muster.MisfireRunOnce
	full.TargetEnv = map[string]map[string]string{"web1": {"REPORT_DIR": "/tmp"}}
	full.MaxParallelTargets = 1
	full.Steps = []muster.Step{
		{Name: "build", Shell: "set -e\n./build-report.sh \"$REPORT_DIR\"\n  indented: line\n", Workdir: "/srv", Timeout: muster.Duration(30 * time.Minute),
			Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(5 * time.Minute)}, OnFailure: "goto:mail", Env: map[string]string{"A": "1"}},
		{Name: "query", SQL: "SELECT 'it''s' AS quote, $1", Connection: "warehouse", Params: []string{"MUSTER_RUN_ID"}},
		{Name: "mail", Command: []string{"mail-report", "--to", "ops@example.com", "", "true", "null", "#x"}, RunAs: "mailer", OnSuccess: muster.ActionQuitSuccess},
		{Name: "long", Shell: strings.Repeat("echo long line that goes on; ", 12)},
		// Strings gopkg.in/yaml.v3 writes in forms it does not read back.
		{Name: "tab-first", SQL: "\tSELECT 1\n\tFROM t", Connection: "w"},
		{Name: "break-first", Shell: "\necho 'x'", Env: map[string]string{"A": "\n'", "B": "\n\n"}},
	}
	full.Schedules = []muster.Schedule{
		{Cron: "30 2 * * *"},
		{Name: "business-hours", Weekly: &muster.WeeklyFrequency{Days: []string{"mon", "wed", "fri"}},
			Repeat: &muster.Repeat{Every: muster.Duration(15 * time.Minute), From: "08:00", Until: "18:00"}},
		{Daily: &muster.DailyFrequency{Every: 2}, At: "02:30", StartDate: "2024-01-15", EndDate: "2030-12-31", Jitter: muster.Duration(90 * time.Second)},
		{Name: "schedule-2", Monthly: &muster.MonthlyFrequency{Every: 3, Day: 1}},
		{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "last", Day: "weekday"}, At: "22:00:30"},
		{Once: "2027-06-01T09:00:00"},
		{AtStart: true},
	}
	off, conn, proxy := false, "eu-warehouse", ""
	hour, minute := muster.Duration(time.Hour), muster.Duration(time.Minute)
	full.Overrides = []muster.Override{
		{Group: "reporting", Timeout: &hour, Env: map[string]string{"REPORT_DIR": "/eu"},
			Steps: map[string]muster.StepOverride{"query": {Connection: &conn, Timeout: &minute}, "mail": {RunAs: &proxy}}},
		{Target: "web2", Enabled: &off, Schedules: &[]muster.Schedule{{Cron: "0 * * * *"}, {Name: "late", Cron: "0 23 * * *"}}},
		{Target: "web1", Schedules: &[]muster.Schedule{}},
	}
	quiet := muster.NewJob()
	quiet.Name, quiet.Enabled = "quiet", false
	quiet.Steps = []muster.Step{{Name: "noop", Command: []string{"true"}}}
	return []muster.Job{full, quiet}
}

// What Write writes, Read reads back as the same definitions: the round
// trip muster export → muster apply relies on.
func TestWriteReadsBack(t *testing.T) {
	jobs := exampleJobs()
	for i := range jobs {
		jobs[i].Normalize()
	}
	var buf bytes.Buffer
	if err := jobfile.Write(&buf, jobs); err != nil {
		t.Fatal(err)
	}
	readsBack(t, "export.yaml", buf.Bytes(), jobs)
}

// readsBack reads written, a file of the name given, and checks it holds
// jobs (normalized), each as it was.
func readsBack(t *testing.T, name string, written []byte, jobs []muster.Job) {
	t.Helper()
	got, err := jobfile.Read(name, bytes.NewReader(written))
	if err != nil {
		t.Fatalf("%v\n%s", err, written)
	}
	if len(got) != len(jobs) {
		t.Fatalf("read %d jobs, wrote %d", len(got), len(jobs))
	}
	for i := range got {
		got[i].Normalize()
		if a, b := jsonOf(t, got[i]), jsonOf(t, jobs[i]); a != b {
			t.Errorf("job %d read back as\n%s\nwant\n%s\nfile:\n%s", i, a, b, written)
		}
	}
}

// Writing what was read gives the same bytes: an exported file is stable.
func TestWriteIsStable(t *testing.T) {
	var first, second bytes.Buffer
	if err := jobfile.Write(&first, exampleJobs()); err != nil {
		t.Fatal(err)
	}
	jobs, err := jobfile.Read("first.yaml", bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := jobfile.Write(&second, jobs); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("written again it differs:\n%s\nthen\n%s", first.String(), second.String())
	}
}

// Defaults are left out and small values are written on one line, as a
// person writes them.
func TestWriteLeavesOutDefaults(t *testing.T) {
	j := muster.NewJob()
	j.Name, j.Version = "hello", 7
	j.Targets = []string{"web1", "web2"}
	j.Steps = []muster.Step{{Name: "greet", Shell: "echo hello", Retry: &muster.Retry{Attempts: 3, Interval: muster.Duration(30 * time.Second)}}}
	j.Schedules = []muster.Schedule{{Name: "schedule-1", Weekly: &muster.WeeklyFrequency{Days: []string{"mon", "fri"}}, At: "06:00"}}
	var buf bytes.Buffer
	if err := jobfile.Write(&buf, []muster.Job{j}); err != nil {
		t.Fatal(err)
	}
	want := `jobs:
  - name: hello
    targets: [web1, web2]
    steps:
      - name: greet
        shell: echo hello
        retry: {attempts: 3, interval: 30s}
    schedules:
      - weekly: {days: [mon, fri]}
        at: "06:00"
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := jobfile.Write(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "jobs: []\n" {
		t.Errorf("no jobs: got %q, want %q", buf.String(), "jobs: []\n")
	}
	if jobs, err := jobfile.Read("empty.yaml", &buf); err != nil || len(jobs) != 0 {
		t.Errorf("reading jobs: [] back: %d jobs, %v; want none and no error", len(jobs), err)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// What WriteJSON writes, Read reads back as the same definitions, even
// with characters JSON writes as they are but YAML takes only escaped: DEL,
// the C1 controls (NEL among them) and U+FFFE, U+FFFF.
func TestWriteJSONReadsBack(t *testing.T) {
	jobs := exampleJobs()
	odd := "a\x7fb\u0080c\u0085d\u009fe\ufffef\uffffg\u2028h\x01i"
	jobs[0].Env["ODD"] = odd
	jobs[0].Steps[0].Shell = odd
	jobs[1].Description = odd
	for i := range jobs {
		jobs[i].Normalize()
	}
	var buf bytes.Buffer
	if err := jobfile.WriteJSON(&buf, jobs); err != nil {
		t.Fatal(err)
	}
	readsBack(t, "export.json", buf.Bytes(), jobs)
	var file struct{ Jobs []muster.Job }
	if err := json.Unmarshal(buf.Bytes(), &file); err != nil || len(file.Jobs) != len(jobs) || file.Jobs[1].Description != odd {
		t.Errorf("not the JSON of the jobs: %v, %d jobs", err, len(file.Jobs))
	}
}
