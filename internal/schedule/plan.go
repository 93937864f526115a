package schedule

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/musterhq/muster"
)

// Plan is a compiled, valid schedule. It is immutable, so one Plan may be
// shared by any number of goroutines.
type Plan struct {
	loc     *time.Location
	atStart bool

	// Exactly one of these describes the fires.
	cron    *cronSpec
	once    int64 // a wall time; valid when hasOnce
	hasOnce bool
	days    dayRule // with at or repeat

	at     int64 // seconds since midnight, for days without repeat
	repeat *repeatRule

	// start and end are the first and last days (inclusive) on which the
	// plan may fire: start_date and end_date, else the supported calendar.
	start, end int64
}

// repeatRule fires every `every` seconds from `from` to `until` (seconds
// since midnight) on each active day.
type repeatRule struct{ every, from, until int64 }

// Compile validates s and returns its Plan. loc is the zone the schedule's
// local times are in (the job's zone, else the target's); nil means UTC. A
// "CRON_TZ=Zone " prefix in s.Cron wins over loc.
//
// Every error is a *muster.Error with code muster.EINVALID whose message names
// the field and the rule, e.g. `weekly.days: "fun" is not a day; use mon,
// tue, wed, thu, fri, sat or sun`. A schedule that can never fire is an error
// too (February 30, a start_date after its end_date, a window with no active
// day), but a once in the past is not: it was valid when it was written.
func Compile(s muster.Schedule, loc *time.Location) (*Plan, error) {
	if loc == nil {
		loc = time.UTC
	}
	kinds := describeKinds(s)
	switch {
	case len(kinds) == 0:
		return nil, muster.Errorf(muster.EINVALID, "schedule sets no kind; set one of cron, once, daily, weekly, monthly, monthly_relative or at_start")
	case len(kinds) > 1:
		return nil, muster.Errorf(muster.EINVALID, "schedule sets %s; set exactly one kind", joinAnd(kinds))
	}
	kind := kinds[0]
	if s.Jitter < 0 {
		return nil, muster.Errorf(muster.EINVALID, "jitter: %s is negative", s.Jitter)
	}

	if s.AtStart {
		if s.At != "" || s.Repeat != nil || s.StartDate != "" || s.EndDate != "" {
			return nil, muster.Errorf(muster.EINVALID, "at_start: fires each time the target starts, so it takes no at, repeat, start_date or end_date")
		}
		return &Plan{loc: loc, atStart: true}, nil
	}
	if kind == "cron" || kind == "once" {
		if s.At != "" {
			return nil, muster.Errorf(muster.EINVALID, "at: not allowed with %s, which gives its own time of day", kind)
		}
		if s.Repeat != nil {
			return nil, muster.Errorf(muster.EINVALID, "repeat: not allowed with %s; use a daily, weekly or monthly schedule", kind)
		}
	}

	p := &Plan{loc: loc, start: firstDay, end: lastDay}
	hasStart, err := p.compileDates(s)
	if err != nil {
		return nil, err
	}

	switch kind {
	case "cron":
		c, zone, msg := parseCron(s.Cron)
		if msg != "" {
			return nil, muster.Errorf(muster.EINVALID, "cron %q: %s", s.Cron, msg)
		}
		p.cron = c
		if zone != nil {
			p.loc = zone
		}
	case "once":
		w, ok := parseDateTime(s.Once)
		if !ok {
			return nil, muster.Errorf(muster.EINVALID, "once: %q is not a local date-time; use \"2006-01-02T15:04:05\"", s.Once)
		}
		z := floorDiv(w, secondsPerDay)
		if z < p.start || z > p.end {
			return nil, muster.Errorf(muster.EINVALID, "once: %s is outside %s", formatWall(w), p.describeWindow())
		}
		p.once, p.hasOnce = w, true
	default:
		if p.days, err = compileDays(s, p.start, hasStart); err != nil {
			return nil, err
		}
		if err := p.compileTimeOfDay(s); err != nil {
			return nil, err
		}
	}

	if _, ok := p.nextWall(p.start * secondsPerDay); !ok {
		return nil, muster.Errorf(muster.EINVALID, "%s: this schedule never fires within %s", kind, p.describeWindow())
	}
	return p, nil
}

// compileDates reads start_date and end_date into p and reports whether a
// start_date was given (it anchors "every N").
func (p *Plan) compileDates(s muster.Schedule) (hasStart bool, err error) {
	if s.StartDate != "" {
		z, ok := parseDate(s.StartDate)
		if !ok {
			return false, muster.Errorf(muster.EINVALID, "start_date: %q is not a date; use \"2006-01-02\"", s.StartDate)
		}
		p.start, hasStart = max(z, firstDay), true
	}
	if s.EndDate != "" {
		z, ok := parseDate(s.EndDate)
		if !ok {
			return false, muster.Errorf(muster.EINVALID, "end_date: %q is not a date; use \"2006-01-02\"", s.EndDate)
		}
		p.end = max(z, firstDay)
	}
	if p.start > p.end {
		return false, muster.Errorf(muster.EINVALID, "start_date %s is after end_date %s", s.StartDate, s.EndDate)
	}
	return hasStart, nil
}

// compileTimeOfDay reads at or repeat for a frequency schedule.
func (p *Plan) compileTimeOfDay(s muster.Schedule) error {
	if s.At != "" && s.Repeat != nil {
		return muster.Errorf(muster.EINVALID, "at and repeat: set one or the other, not both")
	}
	if s.At != "" {
		at, ok := parseClock(s.At)
		if !ok {
			return muster.Errorf(muster.EINVALID, "at: %q is not a time of day; use \"15:04\" or \"15:04:05\"", s.At)
		}
		p.at = at
		return nil
	}
	if s.Repeat == nil {
		return nil // at midnight
	}
	r := s.Repeat
	interval := r.Every.Std()
	switch {
	case interval < time.Second:
		return muster.Errorf(muster.EINVALID, "repeat.every: %q is too short; use at least 1s", r.Every)
	case interval > 24*time.Hour:
		return muster.Errorf(muster.EINVALID, "repeat.every: %q is longer than 24h; use a daily schedule with every instead", r.Every)
	case interval%time.Second != 0:
		return muster.Errorf(muster.EINVALID, "repeat.every: %q is not a whole number of seconds", r.Every)
	}
	rule := &repeatRule{every: int64(interval / time.Second), from: 0, until: secondsPerDay - 1}
	var ok bool
	if r.From != "" {
		if rule.from, ok = parseClock(r.From); !ok {
			return muster.Errorf(muster.EINVALID, "repeat.from: %q is not a time of day; use \"15:04\" or \"15:04:05\"", r.From)
		}
	}
	if r.Until != "" {
		if rule.until, ok = parseClock(r.Until); !ok {
			return muster.Errorf(muster.EINVALID, "repeat.until: %q is not a time of day; use \"15:04\" or \"15:04:05\"", r.Until)
		}
	}
	if rule.from > rule.until {
		return muster.Errorf(muster.EINVALID, "repeat: from %s is after until %s; a repeat window cannot cross midnight",
			formatClock(rule.from), formatClock(rule.until))
	}
	p.repeat = rule
	return nil
}

// describeWindow names the days a plan may fire on, for messages.
func (p *Plan) describeWindow() string {
	switch {
	case p.start != firstDay && p.end != lastDay:
		return fmt.Sprintf("start_date %s to end_date %s", formatDay(p.start), formatDay(p.end))
	case p.start != firstDay:
		return fmt.Sprintf("start_date %s to %s", formatDay(p.start), formatDay(lastDay))
	case p.end != lastDay:
		return fmt.Sprintf("%s to end_date %s", formatDay(firstDay), formatDay(p.end))
	}
	return fmt.Sprintf("%s to %s", formatDay(firstDay), formatDay(lastDay))
}

// AtStart reports whether the plan fires when the target daemon starts,
// rather than at times Next can compute.
func (p *Plan) AtStart() bool { return p.atStart }

// Location returns the zone the plan computes in: the CRON_TZ zone if the
// expression named one, else the zone given to Compile.
func (p *Plan) Location() *time.Location { return p.loc }

// Bounds of the instants Next works on: the supported calendar, with two days
// of slack for zone offsets.
var (
	minUnix = (firstDay - 2) * secondsPerDay
	maxUnix = (lastDay + 2) * secondsPerDay
)

// Next returns the first fire time strictly after `after`, in the plan's
// location, and false if the plan will never fire again: a once in the past,
// a date past end_date or 9999-12-31, or an at_start plan. The result carries
// no jitter; add JitterFor's delay to it.
//
// Fed its own result, Next walks the fires in strictly increasing order, each
// daylight saving rule of dst.go applied once.
func (p *Plan) Next(after time.Time) (time.Time, bool) {
	if p.atStart {
		return time.Time{}, false
	}
	u := after.Unix()
	if u >= maxUnix {
		return time.Time{}, false
	}
	a := max(u+1, minUnix) // fires are whole seconds: > after means ≥ a

	var got int64
	var ok bool
	if p.repeat != nil {
		got, ok = p.nextRepeat(a)
	} else {
		got, ok = p.nextFixed(a)
	}
	if !ok {
		return time.Time{}, false
	}
	t := time.Unix(got, 0).In(p.loc)
	if !t.After(after) {
		// Only a Time whose seconds overflow int64 compares this way.
		return time.Time{}, false
	}
	return t, true
}

// nextFixed finds the first fire at or after instant a for plans whose fires
// are fixed wall times: it finds the first candidate wall time on the local
// calendar and converts it. The loop runs once in practice; it only repeats if
// a candidate's instant falls before a, which lowerWall rules out.
func (p *Plan) nextFixed(a int64) (int64, bool) {
	w := lowerWall(p.loc, a)
	for {
		cand, ok := p.nextWall(w)
		if !ok {
			return 0, false
		}
		if first, _ := resolve(p.loc, cand); first >= a {
			return first, true
		}
		w = cand + 1
	}
}

// nextWall returns the first wall time ≥ w at which a fixed-time plan fires,
// within its window. For repeat plans it gives the first active day's from,
// which is all Compile needs to know the plan can fire.
func (p *Plan) nextWall(w int64) (int64, bool) {
	w = max(w, p.start*secondsPerDay)
	switch {
	case p.cron != nil:
		return p.cron.next(w, p.end)
	case p.hasOnce:
		return p.once, p.once >= w
	}
	tod := p.at
	if p.repeat != nil {
		tod = p.repeat.from
	}
	z := floorDiv(w, secondsPerDay)
	if w-z*secondsPerDay > tod {
		z++
	}
	if z > p.end {
		return 0, false
	}
	day, ok := p.days.next(z, p.end)
	return day*secondsPerDay + tod, ok
}

// nextRepeat finds the first fire at or after instant a for a repeat plan.
// A day's fires are from + k*every in elapsed time from the instant of
// `from`, up to the last instant of `until`: across a fall-back the repeated
// hour gets its fires, across a spring-forward the lost hour costs none of
// the elapsed-time fires. The search starts a day before a's wall date, since
// the previous day's window may reach past midnight in elapsed time.
func (p *Plan) nextRepeat(a int64) (int64, bool) {
	r := p.repeat
	z := floorDiv(lowerWall(p.loc, a), secondsPerDay) - 1
	for {
		day, ok := p.days.next(max(z, p.start), p.end)
		if !ok {
			return 0, false
		}
		from, _ := resolve(p.loc, day*secondsPerDay+r.from)
		_, until := resolve(p.loc, day*secondsPerDay+r.until)
		if from >= a {
			return from, true
		}
		if until >= a {
			k := (a - from + r.every - 1) / r.every
			if t := from + k*r.every; t <= until {
				return t, true
			}
		}
		z = day + 1
	}
}

// JitterFor returns a fixed delay in [0, max) derived from seed, which should
// name the target, the job and the schedule. The delay comes from SHA-256, so
// it is the same on every run and every machine, and a fleet of targets with
// similar names spreads evenly over the interval. A max of 0 or less gives 0.
func JitterFor(seed string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(seed))
	return time.Duration(binary.BigEndian.Uint64(sum[:8]) % uint64(max))
}

// TargetJitter is the fixed delay a target adds to every fire of one
// schedule of one job, so that a fleet's fires spread out. The master uses
// it too, to preview fire times per target.
func TargetJitter(target, job, schedule string, max time.Duration) time.Duration {
	return JitterFor(target+"/"+job+"/"+schedule, max)
}

// ValidateAll compiles each of a job's schedules in loc (nil means UTC) and
// checks that their names, given or default, are unique. It returns the first
// error, as a *muster.Error with code muster.EINVALID prefixed with the
// schedule's position and name: `schedules[1] "nightly": ...`.
func ValidateAll(scheds []muster.Schedule, loc *time.Location) error {
	seen := make(map[string]int, len(scheds))
	for i, s := range scheds {
		name := s.Name
		if name == "" {
			name = muster.DefaultScheduleName(i)
		}
		if j, dup := seen[name]; dup {
			return muster.Errorf(muster.EINVALID, "schedules[%d] %q: the name is already used by schedules[%d]; schedule names must be unique within a job", i, name, j)
		}
		seen[name] = i
		if _, err := Compile(s, loc); err != nil {
			return muster.Errorf(muster.EINVALID, "schedules[%d] %q: %s", i, name, muster.ErrorMessage(err))
		}
	}
	return nil
}
