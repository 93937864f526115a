package jobfile

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// docTable returns the rows of the markdown table that follows heading in
// doc, keyed by each key named in the row's first cell ("`start_date`,
// `end_date`" names two), with the whole row.
func docTable(t *testing.T, doc, heading string) map[string]string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/jobs.md has no %q section", heading)
	}
	rows := map[string]string{}
	inTable := false
	for _, line := range strings.Split(doc[i+len(heading)+2:], "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cells[1], -1) {
			rows[m[1]] = line
		}
	}
	return rows
}

// keysOf returns the keys a struct is written with in a job file.
func keysOf(v any) []string {
	t := reflect.TypeOf(v)
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// docs/jobs.md lists every key a job, a step and a schedule take, and
// nothing else, and each row of a key whose value is a mapping names that
// mapping's keys: the tables are checked against the types the decoder
// reads, so they cannot drift.
func TestDocumentedKeysMatchTheDecoder(t *testing.T) {
	b, err := os.ReadFile("../../docs/jobs.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, tc := range []struct {
		heading string
		typ     any
		nested  map[string]any
	}{
		{"## Job keys", muster.Job{}, map[string]any{"overrides": muster.Override{}}},
		{"## Overrides: one job, different per target", muster.Override{}, map[string]any{"steps": muster.StepOverride{}}},
		{"### Step keys", muster.Step{}, map[string]any{"retry": muster.Retry{}}},
		{"## Schedules", muster.Schedule{}, map[string]any{
			"daily": muster.DailyFrequency{}, "weekly": muster.WeeklyFrequency{}, "monthly": muster.MonthlyFrequency{},
			"monthly_relative": muster.MonthlyRelativeFrequency{}, "repeat": muster.Repeat{},
		}},
	} {
		rows := docTable(t, doc, tc.heading)
		want := keysOf(tc.typ)
		var documented []string
		for k := range rows {
			documented = append(documented, k)
		}
		slices.Sort(documented)
		slices.Sort(want)
		for _, k := range want {
			if _, ok := rows[k]; !ok {
				t.Errorf("%s: the decoder reads %q, which the table does not list", tc.heading, k)
			}
		}
		for _, k := range documented {
			if !slices.Contains(want, k) {
				t.Errorf("%s: the table lists %q, which the decoder does not read", tc.heading, k)
			}
		}
		for key, typ := range tc.nested {
			for _, sub := range keysOf(typ) {
				if !strings.Contains(rows[key], sub+":") {
					t.Errorf("%s: the row of %q does not show its key %q", tc.heading, key, sub)
				}
			}
		}
	}
}
