package schedule

import (
	"strconv"
	"strings"
	"time"
)

// The package computes on the local calendar first and turns a local
// ("wall") time into an instant only at the end, in dst.go. A wall time is an
// int64 count of seconds since 1970-01-01T00:00:00 on the local calendar, with
// no zone; a day is an int64 count of days since 1970-01-01. Both use the
// proleptic Gregorian calendar, so arithmetic on them never meets a daylight
// saving transition and never depends on time.Date's normalization.

const secondsPerDay = 86400

// The supported calendar runs from 0001-01-01 to 9999-12-31: the dates a
// schedule can name. Next reports false rather than search past the end.
var (
	firstDay = daysFromCivil(1, 1, 1)
	lastDay  = daysFromCivil(9999, 12, 31)
)

// floorDiv divides rounding toward negative infinity, so days before 1970
// and weeks before an anchor are counted the same way as those after.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// floorMod is the remainder that goes with floorDiv; it is never negative
// for a positive b.
func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// daysFromCivil returns the day number of y-m-d (Howard Hinnant's algorithm,
// exact for every int64 year that does not overflow).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (int64(m) + 9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// weekdayOf returns the day of the week of day number z; 1970-01-01 was a
// Thursday.
func weekdayOf(z int64) time.Weekday { return time.Weekday(floorMod(z+4, 7)) }

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// daysIn returns the number of days in month m of year y.
func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// monthIndex numbers months consecutively (year*12 + month-1), so "every N
// months" is plain modular arithmetic.
func monthIndex(y int64, m int) int64 { return y*12 + int64(m) - 1 }

// monthFromIndex is the inverse of monthIndex.
func monthFromIndex(i int64) (y int64, m int) { return floorDiv(i, 12), int(floorMod(i, 12)) + 1 }

// formatWall renders a wall time the way the user wrote it, for messages.
func formatWall(w int64) string {
	z := floorDiv(w, secondsPerDay)
	return formatDay(z) + "T" + formatClock(w-z*secondsPerDay)
}

// formatDay renders a day number as "2006-01-02".
func formatDay(z int64) string {
	y, m, d := civilFromDays(z)
	return time.Date(int(y), time.Month(m), d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// formatClock renders seconds since midnight as "15:04:05".
func formatClock(sod int64) string {
	return time.Date(2000, 1, 1, 0, 0, int(sod), 0, time.UTC).Format(time.TimeOnly)
}

// parseClock reads a time of day, "15:04" or "15:04:05" (the hour may have
// one digit), and returns seconds since midnight.
func parseClock(s string) (int64, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return 0, false
	}
	limits := [3]int64{23, 59, 59}
	var sod int64
	for i, p := range parts {
		if len(p) == 0 || len(p) > 2 || (i > 0 && len(p) != 2) {
			return 0, false
		}
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || int64(n) > limits[i] {
			return 0, false
		}
		sod = sod*60 + int64(n)
	}
	if len(parts) == 2 {
		sod *= 60
	}
	return sod, true
}

// parseDate reads "2006-01-02" and returns its day number.
func parseDate(s string) (int64, bool) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, false
	}
	return daysFromCivil(int64(t.Year()), int(t.Month()), t.Day()), true
}

// onceLayouts are the forms a once date-time may take, most specific first.
var onceLayouts = []string{
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
}

// parseDateTime reads a local date-time in one of onceLayouts and returns its
// wall time. time.Parse rejects impossible dates such as February 30.
func parseDateTime(s string) (int64, bool) {
	for _, layout := range onceLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		z := daysFromCivil(int64(t.Year()), int(t.Month()), t.Day())
		return z*secondsPerDay + int64(t.Hour()*3600+t.Minute()*60+t.Second()), true
	}
	return 0, false
}
