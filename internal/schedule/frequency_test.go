package schedule

import (
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestFrequencyErrors(t *testing.T) {
	daily := &muster.DailyFrequency{}
	hour := muster.Duration(time.Hour)
	tests := []struct {
		name string
		s    muster.Schedule
		want string
	}{
		{"daily every negative", muster.Schedule{Daily: &muster.DailyFrequency{Every: -1}},
			"daily.every: -1 is negative; use 1 or more (0 or unset means 1)"},
		{"daily every too big", muster.Schedule{Daily: &muster.DailyFrequency{Every: 5000}},
			"daily.every: 5000 is more than the limit of 1000"},
		{"weekly every too big", muster.Schedule{Weekly: &muster.WeeklyFrequency{Every: 1001, Days: []string{"mon"}}},
			"weekly.every: 1001 is more than the limit of 1000"},
		{"monthly every too big", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 121, Day: 1}},
			"monthly.every: 121 is more than the limit of 120"},
		{"weekly bad day", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"mon", "fun"}}},
			`weekly.days: "fun" is not a day; use mon, tue, wed, thu, fri, sat or sun`},
		{"weekly no days", muster.Schedule{Weekly: &muster.WeeklyFrequency{}},
			"weekly.days: name at least one day, such as [mon, thu]"},
		{"weekly duplicate", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"mon", "Monday"}}},
			"weekly.days: mon is listed twice"},
		{"monthly day 0", muster.Schedule{Monthly: &muster.MonthlyFrequency{}},
			"monthly.day: 0 is not a day of the month; use 1 to 31"},
		{"monthly day 32", muster.Schedule{Monthly: &muster.MonthlyFrequency{Day: 32}},
			"monthly.day: 32 is not a day of the month; use 1 to 31"},
		{"monthly only februaries", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 12, Day: 30}, StartDate: "2025-02-01"},
			"monthly: this schedule can never fire (day 30 never occurs in the months it visits: every 12 months from 2025-02)"},
		{"monthly only common years", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 24, Day: 29}, StartDate: "2001-02-01"},
			"monthly: this schedule can never fire (day 29 never occurs in the months it visits: every 24 months from 2001-02)"},
		{"relative bad week", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "fifth", Day: "mon"}},
			`monthly_relative.week: "fifth" is not a week; use first, second, third, fourth or last`},
		{"relative bad day", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "first", Day: "funday"}},
			`monthly_relative.day: "funday" is not a day; use monday..sunday (or mon..sun), day, weekday or weekend_day`},
		{"relative negative every", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Every: -2, Week: "first", Day: "mon"}},
			"monthly_relative.every: -2 is negative; use 1 or more (0 or unset means 1)"},
		{"at out of range", muster.Schedule{Daily: daily, At: "25:00"}, `at: "25:00" is not a time of day; use "15:04" or "15:04:05"`},
		{"at minutes", muster.Schedule{Daily: daily, At: "12:60"}, `at: "12:60" is not a time of day; use "15:04" or "15:04:05"`},
		{"at bare hour", muster.Schedule{Daily: daily, At: "7"}, `at: "7" is not a time of day; use "15:04" or "15:04:05"`},
		{"at and repeat", muster.Schedule{Daily: daily, At: "07:00", Repeat: &muster.Repeat{Every: hour}},
			"at and repeat: set one or the other, not both"},
		{"repeat every missing", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{}},
			`repeat.every: "0s" is too short; use at least 1s`},
		{"repeat every sub-second", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: muster.Duration(500 * time.Millisecond)}},
			`repeat.every: "500ms" is too short; use at least 1s`},
		{"repeat every fractional", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: muster.Duration(1500 * time.Millisecond)}},
			`repeat.every: "1.5s" is not a whole number of seconds`},
		{"repeat every too long", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: muster.Duration(25 * time.Hour)}},
			`repeat.every: "25h0m0s" is longer than 24h; use a daily schedule with every instead`},
		{"repeat bad from", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: hour, From: "8am"}},
			`repeat.from: "8am" is not a time of day; use "15:04" or "15:04:05"`},
		{"repeat bad until", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: hour, Until: "24:00"}},
			`repeat.until: "24:00" is not a time of day; use "15:04" or "15:04:05"`},
		{"repeat backwards", muster.Schedule{Daily: daily, Repeat: &muster.Repeat{Every: hour, From: "18:00", Until: "08:00"}},
			"repeat: from 18:00:00 is after until 08:00:00; a repeat window cannot cross midnight"},
		{"bad start_date", muster.Schedule{Daily: daily, StartDate: "2024-02-30"}, `start_date: "2024-02-30" is not a date; use "2006-01-02"`},
		{"bad end_date", muster.Schedule{Daily: daily, EndDate: "tomorrow"}, `end_date: "tomorrow" is not a date; use "2006-01-02"`},
		{"start after end", muster.Schedule{Daily: daily, StartDate: "2024-03-01", EndDate: "2024-02-01"},
			"start_date 2024-03-01 is after end_date 2024-02-01"},
		{"empty window", muster.Schedule{Monthly: &muster.MonthlyFrequency{Day: 31}, StartDate: "2025-04-01", EndDate: "2025-04-30"},
			"monthly: this schedule never fires within start_date 2025-04-01 to end_date 2025-04-30"},
		{"weekly empty window", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"sat"}}, StartDate: "2024-09-02", EndDate: "2024-09-06"},
			"weekly: this schedule never fires within start_date 2024-09-02 to end_date 2024-09-06"},
		{"once bad", muster.Schedule{Once: "2025-02-30T10:00:00"}, `once: "2025-02-30T10:00:00" is not a local date-time; use "2006-01-02T15:04:05"`},
		{"once date only", muster.Schedule{Once: "2025-02-03"}, `once: "2025-02-03" is not a local date-time; use "2006-01-02T15:04:05"`},
		{"once outside window", muster.Schedule{Once: "2025-01-01T10:00:00", StartDate: "2025-02-01"},
			"once: 2025-01-01T10:00:00 is outside start_date 2025-02-01 to 9999-12-31"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt.s, nil, tt.want) })
	}
}

func TestFrequencyNext(t *testing.T) {
	rel := func(every int, week, day string) *muster.MonthlyRelativeFrequency {
		return &muster.MonthlyRelativeFrequency{Every: every, Week: week, Day: day}
	}
	weekly := func(every int, days ...string) *muster.WeeklyFrequency {
		return &muster.WeeklyFrequency{Every: every, Days: days}
	}
	tests := []struct {
		name  string
		s     muster.Schedule
		after string
		want  []string
	}{
		{"daily at midnight by default", muster.Schedule{Daily: &muster.DailyFrequency{}}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"}},
		{"daily at", muster.Schedule{Daily: &muster.DailyFrequency{Every: 1}, At: "09:30"}, "2024-01-01T09:30:00Z",
			[]string{"2024-01-02T09:30:00Z", "2024-01-03T09:30:00Z"}},
		{"daily at with seconds", muster.Schedule{Daily: &muster.DailyFrequency{}, At: "7:05:09"}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-01T07:05:09Z", "2024-01-02T07:05:09Z"}},
		// 2024-01-01 is 8766 days, a multiple of 3, after the 2000-01-01 anchor.
		{"every 3 days from the epoch", muster.Schedule{Daily: &muster.DailyFrequency{Every: 3}}, "2023-12-30T12:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z", "2024-01-07T00:00:00Z"}},
		{"every 3 days from start_date", muster.Schedule{Daily: &muster.DailyFrequency{Every: 3}, StartDate: "2024-01-02"}, "2023-06-01T00:00:00Z",
			[]string{"2024-01-02T00:00:00Z", "2024-01-05T00:00:00Z", "2024-01-08T00:00:00Z"}},
		{"end_date", muster.Schedule{Daily: &muster.DailyFrequency{}, At: "10:00", StartDate: "2024-01-01", EndDate: "2024-01-03"}, "2023-01-01T00:00:00Z",
			[]string{"2024-01-01T10:00:00Z", "2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z", never}},
		{"past end_date", muster.Schedule{Daily: &muster.DailyFrequency{}, EndDate: "2024-01-03"}, "2024-01-03T00:00:00Z",
			[]string{never}},
		{"weekly", muster.Schedule{Weekly: weekly(1, "tue", "Thursday"), At: "08:00"}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-02T08:00:00Z", "2024-01-04T08:00:00Z", "2024-01-09T08:00:00Z"}},
		// 2024-01-01 is a Monday 1252 weeks, an even number, after 2000-01-03.
		{"every 2 weeks from the epoch", muster.Schedule{Weekly: weekly(2, "mon", "fri"), At: "08:00"}, "2023-12-31T00:00:00Z",
			[]string{"2024-01-01T08:00:00Z", "2024-01-05T08:00:00Z", "2024-01-15T08:00:00Z", "2024-01-19T08:00:00Z"}},
		// start_date is a Wednesday; weeks count from that week's Monday, and
		// nothing fires before start_date.
		{"every 2 weeks from start_date", muster.Schedule{Weekly: weekly(2, "mon", "thu"), StartDate: "2024-01-10"}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-11T00:00:00Z", "2024-01-22T00:00:00Z", "2024-01-25T00:00:00Z", "2024-02-05T00:00:00Z"}},
		// 1252 is not a multiple of 3: the next active week starts 2024-01-15.
		{"every 3 weeks sunday", muster.Schedule{Weekly: weekly(3, "sun")}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-21T00:00:00Z", "2024-02-11T00:00:00Z", "2024-03-03T00:00:00Z"}},
		{"monthly 31st skips short months", muster.Schedule{Monthly: &muster.MonthlyFrequency{Day: 31}}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z"}},
		{"every 3 months from start_date", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 3, Day: 15}, StartDate: "2024-02-10"}, "2024-01-01T00:00:00Z",
			[]string{"2024-02-15T00:00:00Z", "2024-05-15T00:00:00Z", "2024-08-15T00:00:00Z", "2024-11-15T00:00:00Z"}},
		{"every 2 months from the epoch", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 2, Day: 1}}, "2024-02-01T00:00:00Z",
			[]string{"2024-03-01T00:00:00Z", "2024-05-01T00:00:00Z"}},
		{"yearly leap day", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 12, Day: 29}, StartDate: "2023-02-01"}, "2023-01-01T00:00:00Z",
			[]string{"2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"}},
		{"last friday", muster.Schedule{MonthlyRelative: rel(1, "last", "friday"), At: "17:00"}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-26T17:00:00Z", "2024-02-23T17:00:00Z", "2024-03-29T17:00:00Z"}},
		{"third wed", muster.Schedule{MonthlyRelative: rel(0, "third", "Wed")}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-17T00:00:00Z", "2024-02-21T00:00:00Z"}},
		{"first weekday", muster.Schedule{MonthlyRelative: rel(1, "first", "weekday")}, "2024-05-31T00:00:00Z",
			[]string{"2024-06-03T00:00:00Z", "2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z", "2024-09-02T00:00:00Z"}},
		{"last weekend_day", muster.Schedule{MonthlyRelative: rel(1, "last", "weekend_day")}, "2024-05-01T00:00:00Z",
			[]string{"2024-05-26T00:00:00Z", "2024-06-30T00:00:00Z", "2024-07-28T00:00:00Z", "2024-08-31T00:00:00Z"}},
		{"second day", muster.Schedule{MonthlyRelative: rel(1, "second", "day")}, "2024-05-01T00:00:00Z",
			[]string{"2024-05-02T00:00:00Z", "2024-06-02T00:00:00Z"}},
		{"last day", muster.Schedule{MonthlyRelative: rel(1, "last", "day")}, "2024-01-31T00:00:00Z",
			[]string{"2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"}},
		{"fourth weekend_day", muster.Schedule{MonthlyRelative: rel(1, "fourth", "weekend_day")}, "2024-09-01T00:00:00Z",
			[]string{"2024-09-14T00:00:00Z", "2024-10-13T00:00:00Z"}},
		{"every 2 months last monday", muster.Schedule{MonthlyRelative: rel(2, "last", "mon"), StartDate: "2024-01-01"}, "2024-01-01T00:00:00Z",
			[]string{"2024-01-29T00:00:00Z", "2024-03-25T00:00:00Z", "2024-05-27T00:00:00Z"}},
		{"repeat", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: &muster.Repeat{Every: muster.Duration(90 * time.Minute), From: "08:00", Until: "12:00"}},
			"2024-01-01T07:00:00Z",
			[]string{"2024-01-01T08:00:00Z", "2024-01-01T09:30:00Z", "2024-01-01T11:00:00Z", "2024-01-02T08:00:00Z"}},
		{"repeat until is inclusive", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: &muster.Repeat{Every: muster.Duration(time.Hour), From: "08:00", Until: "10:00"}},
			"2024-01-01T08:30:00Z",
			[]string{"2024-01-01T09:00:00Z", "2024-01-01T10:00:00Z", "2024-01-02T08:00:00Z"}},
		{"repeat whole day", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: &muster.Repeat{Every: muster.Duration(7 * time.Second)}},
			"2024-01-01T23:59:50Z",
			[]string{"2024-01-01T23:59:54Z", "2024-01-02T00:00:00Z", "2024-01-02T00:00:07Z"}},
		{"repeat on weekdays", muster.Schedule{Weekly: weekly(1, "mon", "tue", "wed", "thu", "fri"), Repeat: &muster.Repeat{Every: muster.Duration(4 * time.Hour), From: "09:00", Until: "17:00"}},
			"2024-01-05T16:00:00Z",
			[]string{"2024-01-05T17:00:00Z", "2024-01-08T09:00:00Z", "2024-01-08T13:00:00Z"}},
		{"repeat within window", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: &muster.Repeat{Every: muster.Duration(12 * time.Hour)}, StartDate: "2024-01-01", EndDate: "2024-01-01"},
			"2023-01-01T00:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2024-01-01T12:00:00Z", never}},
		{"once", muster.Schedule{Once: "2030-05-06T07:08:09"}, "2024-01-01T00:00:00Z", []string{"2030-05-06T07:08:09Z", never}},
		{"once with a space", muster.Schedule{Once: "2030-05-06 07:08"}, "2024-01-01T00:00:00Z", []string{"2030-05-06T07:08:00Z", never}},
		{"once in the past", muster.Schedule{Once: "2020-05-06T07:08:09"}, "2024-01-01T00:00:00Z", []string{never}},
		{"once at the instant", muster.Schedule{Once: "2030-05-06T07:08:09"}, "2030-05-06T07:08:09Z", []string{never}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.s, time.UTC)
			checkFires(t, p, mustTime(t, tt.after, time.UTC), tt.want)
		})
	}
}

// TestAnchorIndependentOfCompileTime checks that every-N schedules pick the
// same days whenever they are compiled or asked: asking from two points a
// year apart gives fires on the same grid.
func TestAnchorIndependentOfCompileTime(t *testing.T) {
	specs := []muster.Schedule{
		{Daily: &muster.DailyFrequency{Every: 7}},
		{Weekly: &muster.WeeklyFrequency{Every: 3, Days: []string{"wed"}}},
		{Monthly: &muster.MonthlyFrequency{Every: 5, Day: 10}},
	}
	for _, s := range specs {
		p := mustCompile(t, s, time.UTC)
		early := fires(t, p, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), 200)
		late := fires(t, p, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 5)
		found := false
		for i, f := range early {
			if f == late[0] {
				found = i+5 <= len(early) && equal(early[i:i+5], late)
				break
			}
		}
		if !found {
			t.Errorf("%s: fires asked from 2024 %v are not on the grid asked from 2023", s.Kind(), late)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
