package sqlagent

import (
	"fmt"
	"slices"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// SQL Server's frequency types (sysschedules.freq_type).
const (
	freqOnce            = 1
	freqDaily           = 4
	freqWeekly          = 8
	freqMonthly         = 16
	freqMonthlyRelative = 32
	freqAgentStart      = 64
	freqIdle            = 128
)

// Units of freq_subday_type.
const (
	subdayAt      = 1
	subdaySeconds = 2
	subdayMinutes = 4
	subdayHours   = 8
)

// weekdayBits are freq_interval's bits for a weekly schedule, Sunday first;
// mondayFirst is the order people write a week in.
var (
	weekdayBits = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	mondayFirst = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
)

// relativeWeek and relativeDay read freq_relative_interval and
// freq_interval of a monthly relative schedule.
func relativeWeek(v int) (string, bool) {
	switch v {
	case 1:
		return "first", true
	case 2:
		return "second", true
	case 4:
		return "third", true
	case 8:
		return "fourth", true
	case 16:
		return "last", true
	}
	return "", false
}

func relativeDay(v int) (string, bool) {
	days := [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "day", "weekday", "weekend_day"}
	if v < 1 || v > len(days) {
		return "", false
	}
	return days[v-1], true
}

// secondsPerDay is the length of a day on the clock.
const secondsPerDay = 24 * 60 * 60

// mapped is what a SQL Server schedule becomes: muster schedules (two when
// a repeat window crosses midnight), a note on what changed, or, when it
// has no equivalent, why.
type mapped struct {
	schedules []muster.Schedule
	note      string
	leftOut   string
}

// toMuster maps s onto muster's frequency schedules, which mirror
// sysschedules. name is the muster name the schedule gets ("" for the
// default).
func (s *agentSchedule) toMuster(name string) mapped {
	if !s.enabled {
		return mapped{leftOut: "the schedule is disabled (@enabled = 0), and muster schedules have no enabled flag: add it back when it should fire"}
	}
	ms := muster.Schedule{Name: name}
	switch s.freqType {
	case freqAgentStart:
		ms.AtStart = true
		return s.check(mapped{schedules: []muster.Schedule{ms}})
	case freqIdle:
		return mapped{leftOut: `@freq_type 128 ("when the computer is idle") has no equivalent in muster`}
	case freqOnce:
		if s.startDate == 0 {
			return mapped{leftOut: "a one-time schedule (@freq_type 1) without @active_start_date ran on the day it was created; that day has passed"}
		}
		date, err := sqlDate(s.startDate, "@active_start_date")
		if err != "" {
			return mapped{leftOut: err}
		}
		at, err := sqlTime(s.startTime, "@active_start_time")
		if err != "" {
			return mapped{leftOut: err}
		}
		ms.Once = date + "T" + at
		return s.check(mapped{schedules: []muster.Schedule{ms}})
	case freqDaily:
		ms.Daily = &muster.DailyFrequency{Every: every(s.freqInterval)}
	case freqWeekly:
		if s.freqInterval < 1 || s.freqInterval > 127 {
			return mapped{leftOut: fmt.Sprintf("@freq_interval %d names no weekday (a weekly schedule's days add up 1 Sunday, 2 Monday, 4 Tuesday … 64 Saturday, to at most 127)", s.freqInterval)}
		}
		ms.Weekly = &muster.WeeklyFrequency{Every: every(s.recurrence), Days: weekdays(s.freqInterval)}
	case freqMonthly:
		if s.freqInterval < 1 || s.freqInterval > 31 {
			return mapped{leftOut: fmt.Sprintf("@freq_interval %d is not a day of the month (1 to 31)", s.freqInterval)}
		}
		ms.Monthly = &muster.MonthlyFrequency{Every: every(s.recurrence), Day: s.freqInterval}
	case freqMonthlyRelative:
		week, ok := relativeWeek(s.relativeInterval)
		if !ok {
			return mapped{leftOut: fmt.Sprintf("@freq_relative_interval %d is not 1 (first), 2 (second), 4 (third), 8 (fourth) or 16 (last)", s.relativeInterval)}
		}
		day, ok := relativeDay(s.freqInterval)
		if !ok {
			return mapped{leftOut: fmt.Sprintf("@freq_interval %d is not a day of a relative monthly schedule (1 Sunday … 7 Saturday, 8 day, 9 weekday, 10 weekend day)", s.freqInterval)}
		}
		ms.MonthlyRelative = &muster.MonthlyRelativeFrequency{Every: every(s.recurrence), Week: week, Day: day}
	default:
		return mapped{leftOut: fmt.Sprintf("@freq_type %d is not a SQL Server Agent frequency (1, 4, 8, 16, 32, 64 or 128)", s.freqType)}
	}

	var err string
	if s.startDate != 0 {
		if ms.StartDate, err = sqlDate(s.startDate, "@active_start_date"); err != "" {
			return mapped{leftOut: err}
		}
	}
	if s.endDate != 99991231 {
		if ms.EndDate, err = sqlDate(s.endDate, "@active_end_date"); err != "" {
			return mapped{leftOut: err}
		}
	}
	if s.startDate != 0 && ms.EndDate != "" && s.endDate < s.startDate {
		return mapped{leftOut: fmt.Sprintf("@active_end_date %d is before @active_start_date %d", s.endDate, s.startDate)}
	}
	switch s.subdayType {
	case 0, subdayAt:
		if s.startTime != 0 {
			if ms.At, err = sqlTime(s.startTime, "@active_start_time"); err != "" {
				return mapped{leftOut: err}
			}
		}
		return s.anchored(s.check(sundayFirstWeeks(mapped{schedules: []muster.Schedule{ms}})), ms)
	case subdaySeconds, subdayMinutes, subdayHours:
		return s.anchored(s.check(sundayFirstWeeks(s.repeat(ms))), ms)
	}
	return mapped{leftOut: fmt.Sprintf("@freq_subday_type %d is not 1 (at a time), 2 (seconds), 4 (minutes) or 8 (hours)", s.subdayType)}
}

// repeat maps a schedule that fires every few seconds, minutes or hours
// between @active_start_time and @active_end_time.
func (s *agentSchedule) repeat(ms muster.Schedule) mapped {
	unit := map[int]time.Duration{subdaySeconds: time.Second, subdayMinutes: time.Minute, subdayHours: time.Hour}[s.subdayType]
	if s.subdayInterval < 1 {
		return mapped{leftOut: fmt.Sprintf("@freq_subday_interval %d: a repeating schedule needs an interval of 1 or more", s.subdayInterval)}
	}
	interval := time.Duration(s.subdayInterval) * unit
	if interval > 24*time.Hour {
		return mapped{leftOut: fmt.Sprintf("@freq_subday_interval: every %s is longer than a day", muster.Duration(interval).Short())}
	}
	from, err := clockSeconds(s.startTime, "@active_start_time")
	if err != "" {
		return mapped{leftOut: err}
	}
	until, err := clockSeconds(s.endTime, "@active_end_time")
	if err != "" {
		return mapped{leftOut: err}
	}
	ms.Repeat = &muster.Repeat{Every: muster.Duration(interval), From: clock(from), Until: clock(until)}
	if from == 0 {
		ms.Repeat.From = ""
	}
	if until == secondsPerDay-1 {
		ms.Repeat.Until = ""
	}
	if from <= until {
		return s.check(mapped{schedules: []muster.Schedule{ms}})
	}
	return s.acrossMidnight(ms, from, until, int(interval/time.Second))
}

// acrossMidnight maps a repeat window that starts before midnight and ends
// after it. SQL Server Agent runs such a window from its start, through
// midnight, to its end the next morning; muster's windows stay within a
// day, so it becomes two schedules: the evening on the schedule's days, and
// the morning after, on the days that follow them, continuing the same
// count of intervals. Only daily and weekly schedules that fire every day
// or week have days that simply shift by one.
func (s *agentSchedule) acrossMidnight(evening muster.Schedule, from, until, every int) mapped {
	morning := evening
	switch {
	case evening.Daily != nil && evening.Daily.Every <= 1:
	case evening.Weekly != nil && evening.Weekly.Every <= 1:
		days := make([]string, 0, len(evening.Weekly.Days))
		for i, d := range weekdayBits {
			for _, e := range evening.Weekly.Days {
				if e == d {
					days = append(days, weekdayBits[(i+1)%7])
				}
			}
		}
		morning.Weekly = &muster.WeeklyFrequency{Days: sortWeekdays(days)}
	default:
		return mapped{leftOut: fmt.Sprintf("the repeat window %s to %s crosses midnight, which muster's windows do not; split it into an evening and a morning schedule by hand", clock(from), clock(until))}
	}
	evening.Repeat = &muster.Repeat{Every: evening.Repeat.Every, From: clock(from)}
	first := from + (secondsPerDay-from+every-1)/every*every - secondsPerDay
	out := []muster.Schedule{evening}
	note := fmt.Sprintf("the repeat window %s to %s crosses midnight, which muster's windows do not: it is two schedules, %s to 23:59:59 on the schedule's days", clock(from), clock(until), clock(from))
	if first <= until {
		morning.Repeat = &muster.Repeat{Every: evening.Repeat.Every, Until: clock(until)}
		if first > 0 {
			morning.Repeat.From = clock(first)
		}
		if morning.Name != "" {
			morning.Name = trimName(morning.Name[:min(len(morning.Name), muster.MaxNameLen-len("-morning"))]) + "-morning"
		}
		var err string
		if morning.StartDate != "" {
			if morning.StartDate, err = nextDay(morning.StartDate); err != "" {
				return mapped{leftOut: err}
			}
		}
		if morning.EndDate != "" {
			if morning.EndDate, err = nextDay(morning.EndDate); err != "" {
				return mapped{leftOut: err}
			}
		}
		out = append(out, morning)
		note += fmt.Sprintf(" and %s to %s on the days after them", clock(first), clock(until))
	}
	m := s.check(mapped{schedules: out})
	if m.leftOut == "" {
		m.note = note
	}
	return m
}

// sundayFirstWeeks maps the weeks of a schedule every few weeks as SQL
// Server Agent counts them, Sunday to Saturday from the week of
// @active_start_date, onto muster's, which run Monday to Sunday from the
// Monday of start_date's week. A Sunday is the first day of SQL Server's
// week and the last of muster's, so the Sundays become a schedule of their
// own, from the first Sunday SQL Server would fire on; and where the start
// date is a Sunday the other days start the day after it, so that muster's
// first week is SQL Server's. Every week is the same in both.
func sundayFirstWeeks(m mapped) mapped {
	if m.leftOut != "" || len(m.schedules) != 1 {
		return m
	}
	ms := m.schedules[0]
	if ms.Weekly == nil || ms.Weekly.Every < 2 {
		return m
	}
	every := ms.Weekly.Every
	sunday, others := ms, ms
	sunday.Weekly = &muster.WeeklyFrequency{Every: every, Days: []string{"sun"}}
	others.Weekly = &muster.WeeklyFrequency{Every: every, Days: slices.DeleteFunc(slices.Clone(ms.Weekly.Days), func(d string) bool { return d == "sun" })}
	// Without a start date muster counts from the week of Monday
	// 2000-01-03; SQL Server's week of it began on Sunday 2000-01-02.
	weekStart := time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)
	if ms.StartDate != "" {
		start, err := time.Parse(time.DateOnly, ms.StartDate)
		if err != nil {
			return mapped{leftOut: fmt.Sprintf("start_date %q is not a date", ms.StartDate)}
		}
		weekStart = start.AddDate(0, 0, -int(start.Weekday()))
		if start.Weekday() == time.Sunday {
			others.StartDate = start.AddDate(0, 0, 1).Format(time.DateOnly)
		} else {
			weekStart = weekStart.AddDate(0, 0, 7*every) // the start date passed its week's Sunday
		}
	}
	if !slices.Contains(ms.Weekly.Days, "sun") {
		return mapped{schedules: []muster.Schedule{others}, note: m.note}
	}
	// A schedule that starts and ends on the same Sunday fires on none of
	// the other days.
	noOthers := len(others.Weekly.Days) == 0 || others.EndDate != "" && others.EndDate < others.StartDate
	sunday.StartDate = weekStart.Format(time.DateOnly)
	if sunday.EndDate != "" && sunday.EndDate < sunday.StartDate {
		if noOthers {
			return mapped{leftOut: "the schedule ends before the first Sunday it would fire on"}
		}
		return mapped{schedules: []muster.Schedule{others}}
	}
	if ms.Name != "" {
		sunday.Name = trimName(ms.Name[:min(len(ms.Name), muster.MaxNameLen-len("-sunday"))]) + "-sunday"
	}
	if noOthers {
		sunday.Name = ms.Name
		return mapped{schedules: []muster.Schedule{sunday}}
	}
	m.schedules = []muster.Schedule{others, sunday}
	note := fmt.Sprintf("SQL Server counts every %d weeks from Sunday, muster from Monday: the Sundays are a schedule of their own", every)
	if ms.Name != "" {
		note += ", " + sunday.Name
	}
	m.note = note
	return m
}

// check compiles the schedules as a target will, so that a schedule that
// can never fire is reported here rather than refused by apply.
func (s *agentSchedule) check(m mapped) mapped {
	for _, ms := range m.schedules {
		if _, err := schedule.Compile(ms, time.UTC); err != nil {
			return mapped{leftOut: muster.ErrorMessage(err)}
		}
	}
	return m
}

// anchored adds to m a note when ms fires every few days, weeks or months
// and the script gave no @active_start_date: SQL Server then counts from
// the day the schedule was made, which a script does not record, where
// muster counts from a fixed day, so the days may differ.
func (s *agentSchedule) anchored(m mapped, ms muster.Schedule) mapped {
	every := 0
	switch {
	case ms.Daily != nil:
		every = ms.Daily.Every
	case ms.Weekly != nil:
		every = ms.Weekly.Every
	case ms.Monthly != nil:
		every = ms.Monthly.Every
	case ms.MonthlyRelative != nil:
		every = ms.MonthlyRelative.Every
	}
	if m.leftOut != "" || s.startDate != 0 || every < 2 {
		return m
	}
	note := fmt.Sprintf("without @active_start_date SQL Server counts every %d from the day the schedule was made, which the script does not say; "+
		"muster counts from 2000-01-01 (weeks from Monday 2000-01-03): set start_date to that day to keep the same days", every)
	if ms.Weekly != nil {
		// Weeks are not kept by a start date alone: SQL Server's start on
		// Sunday, and the import maps them (sundayFirstWeeks) from the
		// start date it is given.
		note = fmt.Sprintf("without @active_start_date SQL Server counts every %d weeks from the week the schedule was made, which the script does not say; "+
			"muster counts from the week of Monday 2000-01-03, and its weeks start on Monday, SQL Server's on Sunday: "+
			"add @active_start_date = that day to the script and import it again to keep the same days", every)
	}
	if m.note != "" {
		note = m.note + "; " + note
	}
	m.note = note
	return m
}

// every maps freq_interval or freq_recurrence_factor to muster's every,
// where 0 and 1 both mean every one (and are left out).
func every(n int) int {
	if n <= 1 {
		return 0
	}
	return n
}

// weekdays lists the days of a weekly freq_interval.
func weekdays(mask int) []string {
	var days []string
	for i, d := range weekdayBits {
		if mask&(1<<i) != 0 {
			days = append(days, d)
		}
	}
	return sortWeekdays(days)
}

// sortWeekdays orders days Monday first, as people write a week.
func sortWeekdays(days []string) []string {
	var out []string
	for _, d := range mondayFirst {
		for _, e := range days {
			if e == d {
				out = append(out, d)
			}
		}
	}
	return out
}

// sqlDate reads a YYYYMMDD integer as "2006-01-02".
func sqlDate(n int, field string) (string, string) {
	y, m, d := n/10000, n/100%100, n%100
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if n < 10000101 || n > 99991231 || t.Year() != y || int(t.Month()) != m || t.Day() != d {
		return "", fmt.Sprintf("%s %d is not a date written YYYYMMDD", field, n)
	}
	return t.Format(time.DateOnly), ""
}

// nextDay returns the day after a "2006-01-02" date.
func nextDay(date string) (string, string) {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil || date == "9999-12-31" {
		return "", fmt.Sprintf("%s has no day after it", date)
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly), ""
}

// clockSeconds reads an HHMMSS integer (23000 is 02:30:00) as seconds
// since midnight.
func clockSeconds(n int, field string) (int, string) {
	h, m, s := n/10000, n/100%100, n%100
	if n < 0 || h > 23 || m > 59 || s > 59 {
		return 0, fmt.Sprintf("%s %d is not a time of day written HHMMSS", field, n)
	}
	return h*3600 + m*60 + s, ""
}

// sqlTime reads an HHMMSS integer as muster writes a time of day.
func sqlTime(n int, field string) (string, string) {
	sec, err := clockSeconds(n, field)
	if err != "" {
		return "", err
	}
	return clock(sec), ""
}

// clock writes seconds since midnight as "15:04", or "15:04:05" when the
// seconds are not zero.
func clock(sec int) string {
	if sec%60 == 0 {
		return fmt.Sprintf("%02d:%02d", sec/3600, sec/60%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}
