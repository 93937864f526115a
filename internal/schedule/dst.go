package schedule

import (
	"math"
	"time"

	// Embed the zone database so CRON_TZ and job zones work in a CGO-free
	// binary on machines without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// This file turns wall times into instants. The rules, applied to every fixed
// local time (cron fields, once, at, and each repeat's from and until):
//
//   - A wall time that occurs once is that instant.
//   - A wall time in a spring-forward gap does not exist; it fires at the
//     first instant after the gap (the transition itself, 03:00 local when
//     02:00 jumps to 03:00). Every wall time in the same gap maps to that one
//     instant, so they collapse into a single fire.
//   - A wall time that occurs twice in a fall-back overlap fires at its first
//     occurrence only. Wall times of the second pass are never fired, so a
//     cron covering every minute does not fire the repeated hour twice.
//
// With these rules the map from wall time to instant never decreases, which is
// what lets Next search on the local calendar and convert at the end.

// transitionMargin is how far from a zone transition a wall time must be for
// the fast path of resolve. It exceeds the largest offset change on record
// (Samoa skipped a whole day in 2011).
const transitionMargin = 2 * secondsPerDay

// zoneOffset returns the offset in seconds east of UTC in effect at instant u.
func zoneOffset(loc *time.Location, u int64) int64 {
	_, off := time.Unix(u, 0).In(loc).Zone()
	return int64(off)
}

// resolve returns the instants (Unix seconds) at which wall time w occurs in
// loc: first and last are equal unless w falls in a fall-back overlap, and
// both are the end of the gap if w falls in a spring-forward gap.
func resolve(loc *time.Location, w int64) (first, last int64) {
	// Fast path: guess the offset, and accept it when the instant it gives
	// has that offset and sits well inside one zone period, so no other
	// period can also claim the wall time.
	off := zoneOffset(loc, w)
	c := w - off
	t := time.Unix(c, 0).In(loc)
	if _, coff := t.Zone(); int64(coff) == off {
		start, end := t.ZoneBounds()
		if (start.IsZero() || c-start.Unix() > transitionMargin) && (end.IsZero() || end.Unix()-c > transitionMargin) {
			return c, c
		}
	}
	return resolveNearTransition(loc, w)
}

// period is one stretch of a zone with a constant offset, [start, end) in
// Unix seconds.
type period struct{ off, start, end int64 }

// resolveNearTransition is resolve's exact path: it lists the zone periods
// around w and tries each one's offset, rather than trust time.Date, which
// does not promise which instant it picks for a missing or repeated time.
func resolveNearTransition(loc *time.Location, w int64) (first, last int64) {
	var buf [8]period
	ps := buf[:0]
	t := time.Unix(w-3*secondsPerDay, 0).In(loc)
	for len(ps) < len(buf) {
		_, off := t.Zone()
		start, end := t.ZoneBounds()
		p := period{off: int64(off), start: math.MinInt64, end: math.MaxInt64}
		if !start.IsZero() {
			p.start = start.Unix()
		}
		if !end.IsZero() {
			p.end = end.Unix()
		}
		ps = append(ps, p)
		if end.IsZero() || p.end > w+3*secondsPerDay {
			break
		}
		t = end
	}

	found := false
	for _, p := range ps {
		c := w - p.off
		if c < p.start || c >= p.end {
			continue
		}
		if !found || c < first {
			first = c
		}
		if !found || c > last {
			last = c
		}
		found = true
	}
	if found {
		return first, last
	}
	// No period holds w: it lies in the gap at the start of some period that
	// moved the clock forward past it.
	for i := 1; i < len(ps); i++ {
		prev, p := ps[i-1], ps[i]
		if prev.off < p.off && p.start+prev.off <= w && w < p.start+p.off {
			return p.start, p.start
		}
	}
	// Not reached for any zone in the database; fall back on the standard
	// library rather than fail.
	y, m, d := civilFromDays(floorDiv(w, secondsPerDay))
	sod := floorMod(w, secondsPerDay)
	u := time.Date(int(y), time.Month(m), d, 0, 0, int(sod), 0, loc).Unix()
	return u, u
}

// lowerWall returns the earliest wall time whose first instant (as resolve
// gives it) is at or after instant a. Usually that is a's own wall clock; the
// two exceptions come from the rules above: during the second pass of a
// fall-back overlap every repeated wall time already fired at its first
// occurrence, so the search starts where the overlap ends; and at the very
// instant a gap ends, the wall times inside the gap map to a and still count.
func lowerWall(loc *time.Location, a int64) int64 {
	t := time.Unix(a, 0).In(loc)
	_, o := t.Zone()
	off := int64(o)
	w := a + off
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return w
	}
	s := start.Unix()
	if a-s > transitionMargin {
		return w
	}
	prev := zoneOffset(loc, s-1)
	switch {
	case prev > off && a < s+prev-off:
		return s + prev // the end of the repeated range of wall times
	case prev < off && a == s:
		return s + prev // the start of the gap
	}
	return w
}
