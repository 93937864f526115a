package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// cronSpec is a parsed cron expression: one bit set per field, bit i meaning
// value i is allowed. Day-of-week uses bits 0-6 (Sunday = 0); a 7 in the
// expression is folded onto 0.
type cronSpec struct {
	second, minute, hour, dom, month, dow uint64
	// either is Vixie cron's day rule: when both day fields are restricted
	// (neither starts with "*"), a day matches if either field matches.
	// Otherwise both must match, which reduces to the restricted one.
	either bool
}

// cronField describes one field of an expression.
type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}
	weekdayNames = map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}
	cronFields = [6]cronField{
		{name: "second", min: 0, max: 59},
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day-of-month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: monthNames},
		{name: "day-of-week", min: 0, max: 7, names: weekdayNames},
	}
)

// descriptors are the "@" shorthands and the 5-field expressions they stand
// for.
var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// parseCron parses expr, which may start with "CRON_TZ=Zone " or "TZ=Zone ".
// It returns the zone named by the prefix (nil if none) and a message for the
// first rule broken, without the `cron "expr": ` prefix the caller adds.
func parseCron(expr string) (*cronSpec, *time.Location, string) {
	rest := strings.TrimSpace(expr)
	var loc *time.Location
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if !strings.HasPrefix(rest, prefix) {
			continue
		}
		name, after, _ := strings.Cut(rest[len(prefix):], " ")
		name, after = strings.TrimSpace(name), strings.TrimSpace(after)
		if i := strings.IndexAny(name, "\t\n\v\f\r"); i >= 0 {
			name, after = name[:i], strings.TrimSpace(name[i:]+" "+after)
		}
		if name == "" {
			return nil, nil, fmt.Sprintf("%s needs a zone name, such as %sEurope/Berlin", prefix, prefix)
		}
		if name == "Local" || strings.Contains(name, "=") {
			return nil, nil, fmt.Sprintf("%q is not a time zone; use an IANA name such as Europe/Berlin", name)
		}
		l, err := time.LoadLocation(name)
		if err != nil {
			return nil, nil, fmt.Sprintf("%q is not a known time zone; use an IANA name such as Europe/Berlin", name)
		}
		if after == "" {
			return nil, nil, fmt.Sprintf("nothing follows %s%s; add the cron fields", prefix, name)
		}
		loc, rest = l, after
		break
	}

	if strings.HasPrefix(rest, "@") {
		key := strings.ToLower(rest)
		if strings.HasPrefix(key, "@every") {
			return nil, nil, "@every is not supported; use a daily schedule with repeat.every instead"
		}
		d, ok := descriptors[key]
		if !ok {
			return nil, nil, fmt.Sprintf("%q is not a descriptor; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly", rest)
		}
		rest = d
	}

	fields := strings.Fields(rest)
	if len(fields) == 5 {
		fields = append([]string{"0"}, fields...)
	} else if len(fields) != 6 {
		return nil, nil, fmt.Sprintf("has %d fields; use 5 (minute hour day-of-month month day-of-week) or 6 (second first)", len(fields))
	}
	var sets [6]uint64
	for i, f := range fields {
		set, msg := parseField(cronFields[i], f)
		if msg != "" {
			return nil, nil, fmt.Sprintf("%s field %q: %s", cronFields[i].name, f, msg)
		}
		sets[i] = set
	}
	c := &cronSpec{
		second: sets[0], minute: sets[1], hour: sets[2], dom: sets[3], month: sets[4], dow: sets[5],
		either: !strings.HasPrefix(fields[3], "*") && !strings.HasPrefix(fields[5], "*"),
	}
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	if msg := c.impossible(); msg != "" {
		return nil, nil, "this schedule can never fire (" + msg + ")"
	}
	return c, loc, ""
}

// parseField parses one field: a comma list of "*", "a", "a-b", each with an
// optional "/step"; "a/step" runs from a to the field's maximum.
func parseField(f cronField, text string) (uint64, string) {
	var set uint64
	for _, part := range strings.Split(text, ",") {
		if part == "" {
			return 0, "an empty list item"
		}
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			switch {
			case err != nil || strings.HasPrefix(stepText, "+") || strings.HasPrefix(stepText, "-"):
				return 0, fmt.Sprintf("step %q is not a whole number", stepText)
			case n == 0:
				return 0, "step 0 is not allowed; use 1 or more"
			}
			// A step wider than any field selects only its first value;
			// capping it keeps the loop below from overflowing.
			step = min(n, 64)
		}
		var lo, hi int
		if rng == "*" {
			lo, hi = f.min, f.max
		} else {
			a, b, isRange := strings.Cut(rng, "-")
			var msg string
			if lo, msg = fieldValue(f, a); msg != "" {
				return 0, msg
			}
			hi = lo
			switch {
			case isRange:
				if hi, msg = fieldValue(f, b); msg != "" {
					return 0, msg
				}
				if lo > hi {
					return 0, fmt.Sprintf("range %s runs backwards; write the smaller value first", rng)
				}
			case hasStep:
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, ""
}

// fieldValue reads a number or, where the field has names, a name.
func fieldValue(f cronField, s string) (int, string) {
	if s == "" {
		return 0, "a value is missing"
	}
	if v, ok := f.names[strings.ToLower(s)]; ok {
		return v, ""
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			if f.names != nil {
				return 0, fmt.Sprintf("%q is neither a number nor a %s name", s, f.name)
			}
			return 0, fmt.Sprintf("%q is not a number", s)
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Sprintf("%s is out of range %d-%d", s, f.min, f.max)
	}
	return v, ""
}

// maxDays is the most days each month can have (February in a leap year).
var maxDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// impossible explains why c can never fire, or returns "". Only the day
// fields can conflict: when the day-of-month restricts alone (or together
// with a day-of-week that starts with "*"), its days may not exist in any
// chosen month. Any day that exists in some month falls on every weekday over
// the 400-year Gregorian cycle (February 29 included), so a day-of-week
// restriction cannot make an existing day impossible.
func (c *cronSpec) impossible() string {
	if c.either {
		return ""
	}
	var months []string
	for m := 1; m <= 12; m++ {
		if c.month&(1<<uint(m)) == 0 {
			continue
		}
		if c.dom&(1<<uint(maxDays[m]+1)-1) != 0 {
			return ""
		}
		months = append(months, strconv.Itoa(m))
	}
	var days []string
	for d := 1; d <= 31; d++ {
		if c.dom&(1<<uint(d)) != 0 {
			days = append(days, strconv.Itoa(d))
		}
	}
	dayWord, verb, monthWord := "day", "occurs", "month"
	if len(days) > 1 {
		dayWord, verb = "days", "occur"
	}
	if len(months) > 1 {
		monthWord = "months"
	}
	return fmt.Sprintf("%s %s never %s in %s %s", dayWord, strings.Join(days, ","), verb, monthWord, strings.Join(months, ","))
}

// nextBit returns the smallest value ≥ v in set.
func nextBit(set uint64, v int) (int, bool) {
	if v < 0 || v >= 64 {
		return 0, false
	}
	rest := set >> uint(v)
	if rest == 0 {
		return 0, false
	}
	return v + bits.TrailingZeros64(rest), true
}

// dayMatches applies the day rule to day d of a month, day number z.
func (c *cronSpec) dayMatches(d int, z int64) bool {
	domOK := c.dom&(1<<uint(d)) != 0
	dowOK := c.dow&(1<<uint(weekdayOf(z))) != 0
	if c.either {
		return domOK || dowOK
	}
	return domOK && dowOK
}

// next returns the first wall time ≥ w that the expression matches, up to
// the end of day last. It skips by field, so a yearly expression costs a few
// steps per year, not one per second.
func (c *cronSpec) next(w, last int64) (int64, bool) {
	z := floorDiv(w, secondsPerDay)
	sod := int(w - z*secondsPerDay)
	y, mo, d := civilFromDays(z)
	h, mi, s := sod/3600, sod/60%60, sod%60
	lastYear, _, _ := civilFromDays(last)

	for y <= lastYear {
		m2, ok := nextBit(c.month, mo)
		if !ok {
			y, mo, d, h, mi, s = y+1, 1, 1, 0, 0, 0
			continue
		}
		if m2 != mo {
			mo, d, h, mi, s = m2, 1, 0, 0, 0
		}

		dim := daysIn(y, mo)
		found := false
		for d <= dim {
			if !c.either {
				// Both fields must match: jump straight to the next
				// allowed day of the month.
				d2, ok := nextBit(c.dom, d)
				if !ok || d2 > dim {
					break
				}
				if d2 != d {
					d, h, mi, s = d2, 0, 0, 0
				}
			}
			if c.dayMatches(d, daysFromCivil(y, mo, d)) {
				found = true
				break
			}
			d, h, mi, s = d+1, 0, 0, 0
		}
		if !found {
			mo, d, h, mi, s = mo+1, 1, 0, 0, 0
			if mo > 12 {
				y, mo = y+1, 1
			}
			continue
		}

		h2, ok := nextBit(c.hour, h)
		if !ok {
			d, h, mi, s = d+1, 0, 0, 0
			continue
		}
		if h2 != h {
			h, mi, s = h2, 0, 0
		}
		m3, ok := nextBit(c.minute, mi)
		if !ok {
			h, mi, s = h+1, 0, 0
			continue
		}
		if m3 != mi {
			mi, s = m3, 0
		}
		s2, ok := nextBit(c.second, s)
		if !ok {
			mi, s = mi+1, 0
			continue
		}
		got := daysFromCivil(y, mo, d)*secondsPerDay + int64(h*3600+mi*60+s2)
		if got >= (last+1)*secondsPerDay {
			return 0, false
		}
		return got, true
	}
	return 0, false
}
