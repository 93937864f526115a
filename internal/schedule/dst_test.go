package schedule

import (
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// The 2024 transitions these tests cross:
//
//	America/New_York  Mar 10 02:00 EST → 03:00 EDT   Nov 3 02:00 EDT → 01:00 EST
//	Europe/Berlin     Mar 31 02:00 CET → 03:00 CEST  Oct 27 03:00 CEST → 02:00 CET
//	Australia/Sydney  Oct 6 02:00 AEST → 03:00 AEDT  Apr 7 03:00 AEDT → 02:00 AEST

func TestDSTFixedTimes(t *testing.T) {
	daily := &muster.DailyFrequency{}
	tests := []struct {
		name  string
		zone  string
		s     muster.Schedule
		after string // local to zone unless it carries an offset
		want  []string
	}{
		// Spring forward: a missing time fires once, at the end of the gap.
		{"NY missing time", "America/New_York", muster.Schedule{Cron: "30 2 * * *"}, "2024-03-09T12:00:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"}},
		{"NY missing times collapse", "America/New_York", muster.Schedule{Cron: "*/15 2 * * *"}, "2024-03-10T00:00:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00"}},
		{"NY gap end collapses with 03:00", "America/New_York", muster.Schedule{Cron: "0,30 2,3 * * *"}, "2024-03-10T00:00:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00", "2024-03-11T02:00:00-04:00"}},
		{"NY hourly spring", "America/New_York", muster.Schedule{Cron: "0 * * * *"}, "2024-03-10T00:30:00",
			[]string{"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"}},
		{"NY just before the gap", "America/New_York", muster.Schedule{Cron: "30 2 * * *"}, "2024-03-10T01:59:59-05:00",
			[]string{"2024-03-10T03:00:00-04:00"}},
		{"NY a fraction before the gap ends", "America/New_York", muster.Schedule{Cron: "30 2 * * *"}, "2024-03-10T06:59:59.5Z",
			[]string{"2024-03-10T03:00:00-04:00"}},
		{"NY at the gap end", "America/New_York", muster.Schedule{Cron: "30 2 * * *"}, "2024-03-10T03:00:00-04:00",
			[]string{"2024-03-11T02:30:00-04:00"}},
		{"NY at missing", "America/New_York", muster.Schedule{Daily: daily, At: "02:30"}, "2024-03-09T12:00:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"}},
		{"NY once missing", "America/New_York", muster.Schedule{Once: "2024-03-10T02:30:00"}, "2024-03-01T00:00:00",
			[]string{"2024-03-10T03:00:00-04:00", never}},

		// Fall back: a repeated time fires at its first occurrence only.
		{"NY repeated time", "America/New_York", muster.Schedule{Cron: "30 1 * * *"}, "2024-11-02T12:00:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"NY hourly fall", "America/New_York", muster.Schedule{Cron: "0 * * * *"}, "2024-11-03T00:30:00-04:00",
			[]string{"2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-03T03:00:00-05:00"}},
		{"NY asked in the second pass", "America/New_York", muster.Schedule{Cron: "30 1 * * *"}, "2024-11-03T01:10:00-05:00",
			[]string{"2024-11-04T01:30:00-05:00"}},
		{"NY asked in the second pass, next hour", "America/New_York", muster.Schedule{Cron: "0 2 * * *"}, "2024-11-03T01:10:00-05:00",
			[]string{"2024-11-03T02:00:00-05:00"}},
		{"NY seconds do not refire the hour", "America/New_York", muster.Schedule{Cron: "*/20 * 1 * * *"}, "2024-11-03T01:59:20-04:00",
			[]string{"2024-11-03T01:59:40-04:00", "2024-11-04T01:00:00-05:00"}},
		{"NY at repeated", "America/New_York", muster.Schedule{Daily: daily, At: "01:30"}, "2024-11-02T12:00:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"NY once repeated", "America/New_York", muster.Schedule{Once: "2024-11-03T01:30:00"}, "2024-11-01T00:00:00",
			[]string{"2024-11-03T01:30:00-04:00", never}},
		{"NY once asked in the second pass", "America/New_York", muster.Schedule{Once: "2024-11-03T01:30:00"}, "2024-11-03T01:00:00-05:00",
			[]string{never}},

		{"Berlin missing time", "Europe/Berlin", muster.Schedule{Cron: "30 2 * * *"}, "2024-03-30T12:00:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"Berlin repeated time", "Europe/Berlin", muster.Schedule{Cron: "30 2 * * *"}, "2024-10-26T12:00:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"Berlin half-hourly fall", "Europe/Berlin", muster.Schedule{Cron: "*/30 * * * *"}, "2024-10-27T01:45:00+02:00",
			[]string{"2024-10-27T02:00:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-27T03:00:00+01:00"}},
		{"Berlin weekly missing", "Europe/Berlin", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"sun"}}, At: "02:15"}, "2024-03-25T00:00:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-07T02:15:00+02:00"}},

		{"Sydney missing time", "Australia/Sydney", muster.Schedule{Cron: "30 2 * * *"}, "2024-10-05T12:00:00",
			[]string{"2024-10-06T03:00:00+11:00", "2024-10-07T02:30:00+11:00"}},
		{"Sydney repeated time", "Australia/Sydney", muster.Schedule{Cron: "30 2 * * *"}, "2024-04-06T12:00:00",
			[]string{"2024-04-07T02:30:00+11:00", "2024-04-08T02:30:00+10:00"}},
		{"Sydney monthly repeated", "Australia/Sydney", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "first", Day: "sun"}, At: "02:30"}, "2024-03-15T00:00:00",
			[]string{"2024-04-07T02:30:00+11:00", "2024-05-05T02:30:00+10:00"}},

		// Samoa skipped 2011-12-30 entirely: every time that day is missing.
		{"Apia skipped day", "Pacific/Apia", muster.Schedule{Cron: "0 9,17 * * *"}, "2011-12-29T12:00:00",
			[]string{"2011-12-29T17:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			p := mustCompile(t, tt.s, loc)
			checkFires(t, p, mustTime(t, tt.after, loc), tt.want)
		})
	}
}

func TestDSTRepeat(t *testing.T) {
	every := func(d time.Duration, from, until string) muster.Schedule {
		return muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: &muster.Repeat{Every: muster.Duration(d), From: from, Until: until}}
	}
	tests := []struct {
		name  string
		zone  string
		s     muster.Schedule
		day   string // the local day whose fires are listed
		count int    // how many fires that day
		want  []string
	}{
		// Elapsed time: the repeated hour gets its own fires.
		{"NY fall 15m", "America/New_York", every(15*time.Minute, "00:00", "04:00"), "2024-11-03", 21, []string{
			"2024-11-03T00:00:00-04:00", "2024-11-03T00:15:00-04:00", "2024-11-03T00:30:00-04:00", "2024-11-03T00:45:00-04:00",
			"2024-11-03T01:00:00-04:00", "2024-11-03T01:15:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T01:45:00-04:00",
			"2024-11-03T01:00:00-05:00", "2024-11-03T01:15:00-05:00", "2024-11-03T01:30:00-05:00", "2024-11-03T01:45:00-05:00",
			"2024-11-03T02:00:00-05:00"}},
		{"NY fall hourly", "America/New_York", every(time.Hour, "", ""), "2024-11-03", 25, []string{
			"2024-11-03T00:00:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"}},
		// Elapsed time: the lost hour costs no interval.
		{"NY spring hourly", "America/New_York", every(time.Hour, "", ""), "2024-03-10", 23, []string{
			"2024-03-10T00:00:00-05:00", "2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"}},
		{"NY spring 45m", "America/New_York", every(45*time.Minute, "00:00", "06:00"), "2024-03-10", 7, []string{
			"2024-03-10T00:00:00-05:00", "2024-03-10T00:45:00-05:00", "2024-03-10T01:30:00-05:00", "2024-03-10T03:15:00-04:00",
			"2024-03-10T04:00:00-04:00", "2024-03-10T04:45:00-04:00", "2024-03-10T05:30:00-04:00"}},
		// A window inside the gap fires once, at the end of the gap.
		{"NY window in the gap", "America/New_York", every(15*time.Minute, "02:00", "02:45"), "2024-03-10", 1, []string{
			"2024-03-10T03:00:00-04:00"}},
		// until 03:00 occurs once in Berlin (02:00-02:59 repeat), from 02:00
		// starts at its first occurrence.
		{"Berlin fall 30m", "Europe/Berlin", every(30*time.Minute, "02:00", "03:00"), "2024-10-27", 5, []string{
			"2024-10-27T02:00:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T02:30:00+01:00",
			"2024-10-27T03:00:00+01:00"}},
		{"Berlin spring hourly", "Europe/Berlin", every(time.Hour, "", ""), "2024-03-31", 23, nil},
		{"Sydney fall hourly", "Australia/Sydney", every(time.Hour, "", ""), "2024-04-07", 25, nil},
		{"Sydney spring hourly", "Australia/Sydney", every(time.Hour, "", ""), "2024-10-06", 23, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			p := mustCompile(t, tt.s, loc)
			start := mustTime(t, tt.day+"T00:00:00", loc).Add(-time.Second)
			var got []string
			var prev time.Time
			for at := start; ; {
				next, ok := p.Next(at)
				if !ok || next.Format(time.DateOnly) != tt.day {
					break
				}
				if !prev.IsZero() && next.Sub(prev) != tt.s.Repeat.Every.Std() {
					t.Errorf("%s follows %s: %s apart, want %s", next, prev, next.Sub(prev), tt.s.Repeat.Every)
				}
				got = append(got, next.Format(time.RFC3339))
				prev, at = next, next
			}
			if len(got) != tt.count {
				t.Errorf("%d fires on %s, want %d: %v", len(got), tt.day, tt.count, got)
			}
			for i, w := range tt.want {
				if i >= len(got) || got[i] != w {
					t.Fatalf("fires on %s:\n got %v\nwant %v", tt.day, got, tt.want)
				}
			}
		})
	}
}

// TestDSTYear walks a whole year of fires in zones with daylight saving and
// checks the rules on every one: strictly increasing, never the same wall
// time twice, each fire at a time the schedule names or at the end of a gap
// that swallowed one, and found again when asked from just before it.
func TestDSTYear(t *testing.T) {
	tests := []struct {
		zone  string
		expr  string
		count int // fires in 2024; 0 to skip the check
	}{
		{"America/New_York", "*/15 2 * * *", 366*4 - 3},
		{"America/New_York", "* 1 * * *", 366 * 60},
		{"America/New_York", "0 * * * *", 366*24 - 1},
		{"Europe/Berlin", "*/15 2 * * *", 366*4 - 3},
		{"Europe/Berlin", "*/10 * 2 * * *", 366*360 - 359},
		{"Australia/Sydney", "*/15 2 * * *", 366*4 - 3},
		// 02:30 is missing on the spring day but fires at 03:00, which is not
		// a time this schedule names, so nothing collapses.
		{"Australia/Sydney", "30 * * * *", 366 * 24},
		// Lord Howe moves its clocks by half an hour, from 02:00 to 02:30.
		{"Australia/Lord_Howe", "*/15 2 * * *", 366*4 - 2},
		{"Australia/Lord_Howe", "*/10 1,2 * * *", 0},
		{"UTC", "0 0 * * *", 366},
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.expr, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			p := mustCompile(t, muster.Schedule{Cron: tt.expr}, loc)
			c, _, _ := parseCron(tt.expr)
			end := time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
			walls := make(map[string]bool)
			n := 0
			for at := time.Date(2024, 1, 1, 0, 0, 0, 0, loc).Add(-time.Second); ; n++ {
				next, ok := p.Next(at)
				if !ok {
					t.Fatalf("Next(%s) = false", at)
				}
				if !next.After(at) {
					t.Fatalf("Next(%s) = %s, not after it", at, next)
				}
				if !next.Before(end) {
					break
				}
				wall := next.Format("2006-01-02T15:04:05")
				if walls[wall] {
					t.Errorf("wall time %s fires twice (again at %s)", wall, next.Format(time.RFC3339))
				}
				walls[wall] = true
				if !cronMatches(c, next) && !isGapEnd(next) {
					t.Errorf("%s is neither a time the schedule names nor the end of a gap", next.Format(time.RFC3339))
				}
				if again, _ := p.Next(next.Add(-time.Nanosecond)); !again.Equal(next) {
					t.Errorf("Next(%s - 1ns) = %s, want %s", next.Format(time.RFC3339), again.Format(time.RFC3339), next.Format(time.RFC3339))
				}
				at = next
			}
			if tt.count != 0 && n != tt.count {
				t.Errorf("%d fires in 2024, want %d", n, tt.count)
			}
		})
	}
}

// isGapEnd reports whether t is the instant a zone moved its clock forward.
func isGapEnd(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if !start.Equal(t) {
		return false
	}
	_, before := t.Add(-time.Second).Zone()
	_, after := t.Zone()
	return before < after
}

func TestResolve(t *testing.T) {
	tests := []struct {
		zone        string
		wall        string
		first, last string
	}{
		{"America/New_York", "2024-06-01T12:00:00", "2024-06-01T16:00:00Z", "2024-06-01T16:00:00Z"},
		{"America/New_York", "2024-03-10T02:30:00", "2024-03-10T07:00:00Z", "2024-03-10T07:00:00Z"},
		{"America/New_York", "2024-03-10T03:00:00", "2024-03-10T07:00:00Z", "2024-03-10T07:00:00Z"},
		{"America/New_York", "2024-03-10T01:59:59", "2024-03-10T06:59:59Z", "2024-03-10T06:59:59Z"},
		{"America/New_York", "2024-11-03T01:30:00", "2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z"},
		{"America/New_York", "2024-11-03T02:00:00", "2024-11-03T07:00:00Z", "2024-11-03T07:00:00Z"},
		{"Europe/Berlin", "2024-10-27T02:00:00", "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z"},
		{"Pacific/Apia", "2011-12-30T12:00:00", "2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z"},
		{"UTC", "2024-03-10T02:30:00", "2024-03-10T02:30:00Z", "2024-03-10T02:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.wall, func(t *testing.T) {
			loc := mustLoad(t, tt.zone)
			w, ok := parseDateTime(tt.wall)
			if !ok {
				t.Fatal("bad wall")
			}
			first, last := resolve(loc, w)
			gotFirst := time.Unix(first, 0).UTC().Format(time.RFC3339)
			gotLast := time.Unix(last, 0).UTC().Format(time.RFC3339)
			if gotFirst != tt.first || gotLast != tt.last {
				t.Errorf("resolve = %s, %s; want %s, %s", gotFirst, gotLast, tt.first, tt.last)
			}
		})
	}
}
