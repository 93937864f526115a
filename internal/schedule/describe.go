package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// Describe says in words when a schedule fires, the way SQL Server Agent
// describes its schedules ("Occurs every day at 02:30:00"), for people
// reading a job: "every day at 02:30", "every weekday, every 30 minutes
// between 08:00 and 17:00, from 2026-12-01", "on the last Friday of every
// month at 22:00". Common cron shapes are described the same way; any other
// expression is shown as itself, `cron "…"`. Times are local to the
// schedule's zone, which the job gives (a CRON_TZ= prefix is named). A
// schedule Compile would refuse is described as well as it can be.
func Describe(s muster.Schedule) string {
	var what string
	switch s.Kind() {
	case "cron":
		what = describeCron(s.Cron)
	case "once":
		what = "once, on " + strings.Replace(s.Once, "T", " at ", 1)
		if w, ok := parseDateTime(s.Once); ok {
			z := floorDiv(w, secondsPerDay)
			what = fmt.Sprintf("once, on %s at %s", formatDay(z), clockText(w-z*secondsPerDay))
		}
	case "at_start":
		return "each time the target daemon starts"
	case "":
		return "never (no kind is set)"
	default:
		what = describeFrequency(s)
	}
	switch {
	case s.StartDate != "" && s.EndDate != "":
		what += fmt.Sprintf(", from %s to %s", s.StartDate, s.EndDate)
	case s.StartDate != "":
		what += ", from " + s.StartDate
	case s.EndDate != "":
		what += ", until " + s.EndDate
	}
	if s.Jitter > 0 {
		what += fmt.Sprintf(", each target delayed by a fixed amount under %s", s.Jitter.Short())
	}
	return what
}

// describeFrequency describes the daily, weekly, monthly and
// monthly_relative kinds: the days, then the time of day.
func describeFrequency(s muster.Schedule) string {
	var days string
	switch {
	case s.Daily != nil:
		days = "every day"
		if n := s.Daily.Every; n > 1 {
			days = fmt.Sprintf("every %d days", n)
		}
	case s.Weekly != nil:
		var mask uint8
		for _, d := range s.Weekly.Days {
			if wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]; ok {
				mask |= 1 << uint(wd)
			}
		}
		days = weekdayText(mask)
		if n := s.Weekly.Every; n > 1 {
			days = fmt.Sprintf("every %d weeks, on %s", n, strings.TrimPrefix(pluralDays(mask), "every "))
		}
	case s.Monthly != nil:
		days = fmt.Sprintf("on day %d of every month", s.Monthly.Day)
		if n := s.Monthly.Every; n > 1 {
			days = fmt.Sprintf("on day %d of every %d months", s.Monthly.Day, n)
		}
	case s.MonthlyRelative != nil:
		f := s.MonthlyRelative
		day := strings.ToLower(strings.TrimSpace(f.Day))
		switch day {
		case "weekend_day":
			day = "weekend day"
		case "day", "weekday":
		default:
			if wd, ok := weekdays[day]; ok {
				day = wd.String()
			}
		}
		days = fmt.Sprintf("on the %s %s of every month", strings.ToLower(f.Week), day)
		if n := f.Every; n > 1 {
			days = fmt.Sprintf("on the %s %s of every %d months", strings.ToLower(f.Week), day, n)
		}
	}
	if s.Repeat != nil {
		return days + ", " + repeatText(s.Repeat)
	}
	at := int64(0)
	if s.At != "" {
		if v, ok := parseClock(s.At); ok {
			at = v
		}
	}
	return days + " at " + clockText(at)
}

// repeatText describes a repeat within the day: "every 30 minutes between
// 08:00 and 17:00", or "every 15 minutes" all day.
func repeatText(r *muster.Repeat) string {
	text := "every " + strings.TrimPrefix(everyText(r.Every.Std()), "1 ")
	from, until := int64(0), int64(secondsPerDay-1)
	if v, ok := parseClock(r.From); ok {
		from = v
	}
	if v, ok := parseClock(r.Until); ok {
		until = v
	}
	switch {
	case from == 0 && until == secondsPerDay-1:
		return text
	case until == secondsPerDay-1:
		return fmt.Sprintf("%s from %s to the end of the day", text, clockText(from))
	}
	return fmt.Sprintf("%s between %s and %s", text, clockText(from), clockText(until))
}

// everyText renders an interval as a count of its largest whole unit:
// "30 minutes", "2 hours", "1 hour", "90 seconds"; else as a duration.
func everyText(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d >= u.d && d%u.d == 0 {
			return plural(int(d/u.d), u.name)
		}
	}
	return muster.Duration(d).Short()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// clockText renders seconds since midnight as "02:30", or "02:30:15" when
// the seconds matter.
func clockText(sod int64) string {
	if sod%60 == 0 {
		return fmt.Sprintf("%02d:%02d", sod/3600, sod/60%60)
	}
	return formatClock(sod)
}

// weekdayText names a set of weekdays (bit i = time.Weekday i) as the days a
// schedule runs: "every day", "every weekday", "every Monday and Thursday".
func weekdayText(mask uint8) string {
	switch mask {
	case 0x7f:
		return "every day"
	case 0x3e:
		return "every weekday"
	}
	return "every " + joinAnd(dayNames(mask))
}

// pluralDays names a set of weekdays for "every 2 weeks, on …".
func pluralDays(mask uint8) string {
	switch mask {
	case 0x7f:
		return "every day"
	case 0x3e:
		return "weekdays"
	}
	return joinAnd(dayNames(mask))
}

// dayNames lists the weekdays of a mask from Monday to Sunday.
func dayNames(mask uint8) []string {
	var names []string
	for _, wd := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		if mask&(1<<uint(wd)) != 0 {
			names = append(names, wd.String())
		}
	}
	return names
}

// The bits a cron field allows when it is "*".
const (
	allSeconds = 1<<60 - 1
	allHours   = 1<<24 - 1
	allDoms    = (1<<32 - 1) &^ 1
	allMonths  = (1<<13 - 1) &^ 1
	allDows    = 1<<7 - 1
)

// describeCron describes the common shapes of cron expressions: the days
// (every day, some weekdays, some days of the month, in some months) and
// the times (a few fixed times, or every N seconds, minutes or hours,
// possibly within a range of hours). Anything else is shown as itself.
func describeCron(expr string) string {
	literal := fmt.Sprintf("cron %q", expr)
	c, loc, msg := parseCron(expr)
	if msg != "" || c.either {
		return literal
	}
	days, ok := cronDays(c)
	if !ok {
		return literal
	}
	times, interval, ok := cronTimes(c)
	if !ok {
		return literal
	}
	var what string
	switch {
	case !interval:
		what = days + " at " + times
	case days == "every day":
		what = times
	default:
		what = days + ", " + times
	}
	if loc != nil {
		what += " (" + loc.String() + " time)"
	}
	return what
}

// setBits lists the values a field allows, in order.
func setBits(set uint64) []int {
	var out []int
	for set != 0 {
		v := bits.TrailingZeros64(set)
		out = append(out, v)
		set &^= 1 << uint(v)
	}
	return out
}

// stepOf reports the step k when set is exactly 0, k, 2k, … up to max and k
// divides max+1 evenly (so the interval holds across the wrap too).
func stepOf(set uint64, max int) (int, bool) {
	vals := setBits(set)
	if len(vals) < 2 || vals[0] != 0 {
		return 0, false
	}
	k := vals[1]
	if (max+1)%k != 0 || len(vals) != (max+1)/k {
		return 0, false
	}
	for i, v := range vals {
		if v != i*k {
			return 0, false
		}
	}
	return k, true
}

// hourRange reports the first and last hour when set is one contiguous run.
func hourRange(set uint64) (int, int, bool) {
	vals := setBits(set)
	if len(vals) == 0 || vals[len(vals)-1]-vals[0] != len(vals)-1 {
		return 0, 0, false
	}
	return vals[0], vals[len(vals)-1], true
}

// cronTimes describes the times of day an expression fires at. interval
// is false for a list of fixed times ("02:30", "08:00 and 17:00").
func cronTimes(c *cronSpec) (text string, interval bool, ok bool) {
	secs, mins, hours := setBits(c.second), setBits(c.minute), setBits(c.hour)
	if n := len(secs) * len(mins) * len(hours); n <= 6 {
		var at []string
		for _, h := range hours {
			for _, m := range mins {
				for _, s := range secs {
					at = append(at, clockText(int64(h*3600+m*60+s)))
				}
			}
		}
		return joinAnd(at), false, true
	}
	onSecond0 := c.second == 1
	allDay := c.hour == allHours
	within := func(text string, lastMinute int) (string, bool, bool) {
		if allDay {
			return text, true, true
		}
		first, last, ok := hourRange(c.hour)
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%s between %s and %s", text, clockText(int64(first*3600)), clockText(int64(last*3600+lastMinute*60))), true, true
	}
	switch {
	case c.second == allSeconds && c.minute == allSeconds && allDay:
		return "every second", true, true
	case !onSecond0 && c.minute == allSeconds && allDay:
		if k, ok := stepOf(c.second, 59); ok {
			return fmt.Sprintf("every %d seconds", k), true, true
		}
	case onSecond0 && c.minute == allSeconds:
		return within("every minute", 59)
	case onSecond0:
		if k, ok := stepOf(c.minute, 59); ok {
			return within(fmt.Sprintf("every %d minutes", k), 60-k)
		}
		if len(mins) != 1 {
			break
		}
		m := mins[0]
		if allDay {
			if m == 0 {
				return "every hour, on the hour", true, true
			}
			return fmt.Sprintf("every hour at %d minutes past", m), true, true
		}
		if k, ok := stepOf(c.hour, 23); ok {
			return fmt.Sprintf("every %d hours from %s", k, clockText(int64(m*60))), true, true
		}
		if first, last, ok := hourRange(c.hour); ok {
			return fmt.Sprintf("every hour from %s to %s", clockText(int64(first*3600+m*60)), clockText(int64(last*3600+m*60))), true, true
		}
	}
	return "", false, false
}

// cronDays describes the days an expression fires on.
func cronDays(c *cronSpec) (string, bool) {
	var days string
	domAll, dowAll := c.dom == allDoms, c.dow == allDows
	switch {
	case domAll && dowAll:
		days = "every day"
	case domAll:
		days = weekdayText(uint8(c.dow))
	case dowAll:
		var nums []string
		for _, d := range setBits(c.dom) {
			nums = append(nums, strconv.Itoa(d))
		}
		if len(nums) > 4 {
			return "", false
		}
		word := "day"
		if len(nums) > 1 {
			word = "days"
		}
		days = fmt.Sprintf("on %s %s of every month", word, joinAnd(nums))
	default:
		return "", false
	}
	if c.month == allMonths {
		return days, true
	}
	var months []string
	for _, m := range setBits(c.month) {
		months = append(months, time.Month(m).String())
	}
	if strings.HasSuffix(days, " of every month") {
		return strings.TrimSuffix(days, "every month") + joinAnd(months), true
	}
	return days + " in " + joinAnd(months), true
}
