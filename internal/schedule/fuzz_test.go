package schedule

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// checkPlanProperties holds for every plan Compile accepts: Next never
// returns a time at or before its argument, successive calls fed their own
// result strictly increase, and each result is found again when asked from
// just before it.
func checkPlanProperties(t *testing.T, p *Plan, after time.Time) {
	prev := after
	for i := range 5 {
		next, ok := p.Next(prev)
		if !ok {
			return
		}
		if !next.After(prev) {
			t.Fatalf("call %d: Next(%s) = %s, not after it", i+1, prev.Format(time.RFC3339Nano), next.Format(time.RFC3339Nano))
		}
		if again, ok := p.Next(next.Add(-time.Nanosecond)); !ok || !again.Equal(next) {
			t.Fatalf("Next(%s - 1ns) = %s, %v; want %s", next.Format(time.RFC3339), again.Format(time.RFC3339), ok, next.Format(time.RFC3339))
		}
		prev = next
	}
}

// checkCompileError checks that a rejection is a *muster.Error with code
// EINVALID and a message.
func checkCompileError(t *testing.T, err error) {
	var e *muster.Error
	if !errors.As(err, &e) || e.Code != muster.EINVALID || e.Message == "" {
		t.Fatalf("Compile error %#v is not a *muster.Error with code EINVALID and a message", err)
	}
}

// FuzzCompile compiles cron expressions in a zone with daylight saving and
// checks the plan properties from an arbitrary instant.
func FuzzCompile(f *testing.F) {
	for _, expr := range []string{
		"TZ=", "TZ=0", "TZ=TZ=TZ=", "15/0 * * * * *", "0 0 30 2 *", "0 0 31 4 *",
		"CRON_TZ=America/New_York 30 2 * * *", "@daily", "* * * * * *", "0 0 29 2 *",
	} {
		f.Add(expr, int64(1710050400)) // 2024-03-10T01:00:00-05:00
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, expr string, after int64) {
		if Describe(muster.Schedule{Cron: expr}) == "" {
			t.Fatalf("Describe(%q) is empty", expr)
		}
		p, err := Compile(muster.Schedule{Cron: expr}, ny)
		if err != nil {
			checkCompileError(t, err)
			return
		}
		checkPlanProperties(t, p, time.Unix(after, 0))
	})
}

// FuzzCompileSpec does the same for whole schedules decoded from JSON, so the
// frequency kinds, repeat and date windows get fuzzed too.
func FuzzCompileSpec(f *testing.F) {
	for _, doc := range []string{
		`{"daily":{"every":3},"at":"02:30"}`,
		`{"weekly":{"every":2,"days":["mon","fri"]},"repeat":{"every":"15m","from":"00:30","until":"03:00"}}`,
		`{"monthly":{"every":12,"day":29},"start_date":"2023-02-01"}`,
		`{"monthly_relative":{"week":"last","day":"weekend_day"},"at":"01:30","end_date":"2030-01-01"}`,
		`{"once":"2024-11-03T01:30:00"}`,
		`{"at_start":true}`,
		`{"cron":"TZ=Europe/Berlin */10 2 * * *","start_date":"2024-03-01","end_date":"2024-04-01"}`,
	} {
		f.Add(doc, int64(1710050400))
		f.Add(doc, int64(1730613600)) // 2024-11-03T02:00:00-04:00
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc string, after int64) {
		var s muster.Schedule
		if json.Unmarshal([]byte(doc), &s) != nil {
			return
		}
		if Describe(s) == "" {
			t.Fatalf("Describe(%s) is empty", doc)
		}
		p, err := Compile(s, ny)
		if err != nil {
			checkCompileError(t, err)
			return
		}
		checkPlanProperties(t, p, time.Unix(after, 0))
	})
}
