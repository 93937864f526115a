package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// This file holds SQL Server Agent's frequency kinds: daily (freq_type 4),
// weekly (8), monthly (16) and monthly_relative (32). Each becomes a dayRule
// that picks the active days; the plan then fires on each active day at At,
// or every Repeat.Every between Repeat.From and Repeat.Until.
//
// "Every N" counts from an anchor, so the same schedule gives the same days
// no matter when it was compiled or asked:
//
//   - daily: start_date if given, else 2000-01-01; active days are the anchor
//     plus a multiple of N days (before the anchor too).
//   - weekly: the Monday of start_date's week if given, else 2000-01-03 (a
//     Monday); active weeks are the anchor week plus a multiple of N weeks,
//     weeks running Monday to Sunday.
//   - monthly and monthly_relative: start_date's month if given, else
//     2000-01; active months are the anchor plus a multiple of N months.

// Limits on "every": SQL Server allows up to 100 weeks and 99 months; these
// leave room while keeping the never-fire checks and searches short.
const (
	maxEveryDays   = 1000
	maxEveryWeeks  = 1000
	maxEveryMonths = 120
)

// Default anchors when a schedule has no start_date.
var (
	epochDay    = daysFromCivil(2000, 1, 1)
	epochMonday = daysFromCivil(2000, 1, 3)
	epochMonth  = monthIndex(2000, 1)
)

// dayRule picks the active days of a frequency schedule. next returns the
// first active day ≥ z and ≤ last.
type dayRule interface {
	next(z, last int64) (int64, bool)
}

// dailyRule is every n days from anchor.
type dailyRule struct{ anchor, n int64 }

func (r dailyRule) next(z, last int64) (int64, bool) {
	if k := floorMod(z-r.anchor, r.n); k != 0 {
		z += r.n - k
	}
	return z, z <= last
}

// weeklyRule is the days in mask (bit i = time.Weekday i) of every n-th week
// counted from the week starting on the Monday anchor.
type weeklyRule struct {
	anchor, n int64
	mask      uint8
}

func (r weeklyRule) next(z, last int64) (int64, bool) {
	for z <= last {
		week := floorDiv(z-r.anchor, 7)
		if k := floorMod(week, r.n); k != 0 {
			z = r.anchor + 7*(week+r.n-k)
			continue
		}
		for end := r.anchor + 7*week + 6; z <= end; z++ {
			if r.mask&(1<<uint(weekdayOf(z))) != 0 {
				return z, z <= last
			}
		}
	}
	return 0, false
}

// monthlyRule is day pick(year, month) of every n-th month from anchor (a
// monthIndex). pick returns 0 when the month has no such day.
type monthlyRule struct {
	anchor, n int64
	pick      func(y int64, m int) int
}

func (r monthlyRule) next(z, last int64) (int64, bool) {
	y, m, _ := civilFromDays(z)
	i := monthIndex(y, m)
	if k := floorMod(i-r.anchor, r.n); k != 0 {
		i += r.n - k
	}
	for ; ; i += r.n {
		y, m := monthFromIndex(i)
		if daysFromCivil(y, m, 1) > last {
			return 0, false
		}
		d := r.pick(y, m)
		if d == 0 {
			continue
		}
		if c := daysFromCivil(y, m, d); c >= z {
			return c, c <= last
		}
	}
}

// dayOfMonth picks day d, or nothing in a month too short to have it: a
// monthly schedule on the 31st does not fire at all in April, so "day 31"
// always means the 31st. For the last day of every month, use
// monthly_relative with week "last" and day "day".
func dayOfMonth(d int) func(int64, int) int {
	return func(y int64, m int) int {
		if d > daysIn(y, m) {
			return 0
		}
		return d
	}
}

// relativeDay picks the week-th (1-4, or 0 for last) day of the month for
// which match holds, as SQL Server's freq_relative_interval does: "first
// weekday" is the first Monday-Friday, "last weekend_day" the last Saturday or
// Sunday, "second day" the 2nd. Every month has at least four of each kind.
func relativeDay(week int, match func(time.Weekday) bool) func(int64, int) int {
	return func(y int64, m int) int {
		first := daysFromCivil(y, m, 1)
		n := daysIn(y, m)
		if week == 0 {
			for d := n; d >= 1; d-- {
				if match(weekdayOf(first + int64(d-1))) {
					return d
				}
			}
			return 0
		}
		count := 0
		for d := 1; d <= n; d++ {
			if match(weekdayOf(first + int64(d-1))) {
				if count++; count == week {
					return d
				}
			}
		}
		return 0
	}
}

// weekdays maps the accepted day names, short and long, to time.Weekday.
var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// relativeWeeks maps monthly_relative.week to relativeDay's week.
var relativeWeeks = map[string]int{"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 0}

// every checks and defaults an "every" field: 0 means 1.
func every(field string, n, max int) (int64, error) {
	switch {
	case n < 0:
		return 0, muster.Errorf(muster.EINVALID, "%s: %d is negative; use 1 or more (0 or unset means 1)", field, n)
	case n > max:
		return 0, muster.Errorf(muster.EINVALID, "%s: %d is more than the limit of %d", field, n, max)
	case n == 0:
		return 1, nil
	}
	return int64(n), nil
}

// compileDays builds the dayRule of a frequency schedule. start is the
// start_date day number, or ok=false if none was given.
func compileDays(s muster.Schedule, start int64, hasStart bool) (dayRule, error) {
	switch {
	case s.Daily != nil:
		n, err := every("daily.every", s.Daily.Every, maxEveryDays)
		if err != nil {
			return nil, err
		}
		anchor := epochDay
		if hasStart {
			anchor = start
		}
		return dailyRule{anchor: anchor, n: n}, nil

	case s.Weekly != nil:
		n, err := every("weekly.every", s.Weekly.Every, maxEveryWeeks)
		if err != nil {
			return nil, err
		}
		if len(s.Weekly.Days) == 0 {
			return nil, muster.Errorf(muster.EINVALID, "weekly.days: name at least one day, such as [mon, thu]")
		}
		var mask uint8
		for _, name := range s.Weekly.Days {
			wd, ok := weekdays[strings.ToLower(strings.TrimSpace(name))]
			if !ok {
				return nil, muster.Errorf(muster.EINVALID, "weekly.days: %q is not a day; use mon, tue, wed, thu, fri, sat or sun", name)
			}
			if mask&(1<<uint(wd)) != 0 {
				return nil, muster.Errorf(muster.EINVALID, "weekly.days: %s is listed twice", strings.ToLower(wd.String()[:3]))
			}
			mask |= 1 << uint(wd)
		}
		anchor := epochMonday
		if hasStart {
			anchor = start - floorMod(int64(weekdayOf(start))-1, 7)
		}
		return weeklyRule{anchor: anchor, n: n, mask: mask}, nil

	case s.Monthly != nil:
		n, err := every("monthly.every", s.Monthly.Every, maxEveryMonths)
		if err != nil {
			return nil, err
		}
		day := s.Monthly.Day
		if day < 1 || day > 31 {
			return nil, muster.Errorf(muster.EINVALID, "monthly.day: %d is not a day of the month; use 1 to 31", day)
		}
		r := monthlyRule{anchor: anchorMonth(start, hasStart), n: n, pick: dayOfMonth(day)}
		if !r.visitsDay(day) {
			y, m := monthFromIndex(r.anchor)
			return nil, muster.Errorf(muster.EINVALID,
				"monthly: this schedule can never fire (day %d never occurs in the months it visits: every %d months from %04d-%02d)", day, n, y, m)
		}
		return r, nil

	case s.MonthlyRelative != nil:
		f := s.MonthlyRelative
		n, err := every("monthly_relative.every", f.Every, maxEveryMonths)
		if err != nil {
			return nil, err
		}
		week, ok := relativeWeeks[strings.ToLower(strings.TrimSpace(f.Week))]
		if !ok {
			return nil, muster.Errorf(muster.EINVALID, "monthly_relative.week: %q is not a week; use first, second, third, fourth or last", f.Week)
		}
		match, ok := relativeMatch(strings.ToLower(strings.TrimSpace(f.Day)))
		if !ok {
			return nil, muster.Errorf(muster.EINVALID, "monthly_relative.day: %q is not a day; use monday..sunday (or mon..sun), day, weekday or weekend_day", f.Day)
		}
		return monthlyRule{anchor: anchorMonth(start, hasStart), n: n, pick: relativeDay(week, match)}, nil
	}
	panic("schedule: compileDays called without a frequency kind")
}

// relativeMatch returns the test for monthly_relative.day.
func relativeMatch(day string) (func(time.Weekday) bool, bool) {
	switch day {
	case "day":
		return func(time.Weekday) bool { return true }, true
	case "weekday":
		return func(wd time.Weekday) bool { return wd != time.Saturday && wd != time.Sunday }, true
	case "weekend_day":
		return func(wd time.Weekday) bool { return wd == time.Saturday || wd == time.Sunday }, true
	}
	want, ok := weekdays[day]
	return func(wd time.Weekday) bool { return wd == want }, ok
}

// anchorMonth returns the month "every N months" counts from.
func anchorMonth(start int64, hasStart bool) int64 {
	if !hasStart {
		return epochMonth
	}
	y, m, _ := civilFromDays(start)
	return monthIndex(y, m)
}

// visitsDay reports whether some month the rule visits has day d. Month
// lengths repeat every 4800 months (the 400-year Gregorian cycle), so 4800
// visits see every case; only days 29-31 can miss.
func (r monthlyRule) visitsDay(d int) bool {
	if d <= 28 {
		return true
	}
	for k := int64(0); k < 4800; k++ {
		y, m := monthFromIndex(r.anchor + k*r.n)
		if d <= daysIn(y, m) {
			return true
		}
	}
	return false
}

// describeKinds lists the kinds set in s, for the "exactly one" error.
func describeKinds(s muster.Schedule) []string {
	var kinds []string
	add := func(set bool, name string) {
		if set {
			kinds = append(kinds, name)
		}
	}
	add(s.Cron != "", "cron")
	add(s.Once != "", "once")
	add(s.Daily != nil, "daily")
	add(s.Weekly != nil, "weekly")
	add(s.Monthly != nil, "monthly")
	add(s.MonthlyRelative != nil, "monthly_relative")
	add(s.AtStart, "at_start")
	return kinds
}

// joinAnd renders ["a", "b", "c"] as "a, b and c".
func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return fmt.Sprintf("%s and %s", strings.Join(items[:len(items)-1], ", "), items[len(items)-1])
}
