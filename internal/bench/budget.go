package bench

import (
	"fmt"
	"strings"
)

// Verdict is the part of every scenario's report that holds its figures
// to their budget, so that a script reading `-o json` sees pass or fail
// without reading the table: the "budget" list has one Check per bound,
// and "met" is whether every one that applies at the measured size holds.
type Verdict struct {
	Budget []Check `json:"budget"`
	Met    bool    `json:"met"`
}

// verdictOf lets Run fill the Verdict embedded in a result.
func (v *Verdict) verdictOf() *Verdict { return v }

// Check is one bound of a budget and what was measured against it.
type Check struct {
	// Figure names the measured value by its place in the report, as
	// "start_to_running.p50_ms".
	Figure   string  `json:"figure"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	// AtMost says the figure must be at most Bound; otherwise at least.
	AtMost bool    `json:"at_most"`
	Bound  float64 `json:"bound"`
	// Floor is what the machine allows at best, measured in the same run,
	// where the budget is a multiple of it: Bound is FloorTimes × Floor,
	// and Ratio is Measured / Floor.
	Floor      float64 `json:"floor,omitempty"`
	FloorTimes float64 `json:"floor_times,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`
	Met        bool    `json:"met"`
	// For, when set, is the size the budget is set for, which this run
	// did not have: the check is reported but does not count.
	For string `json:"for,omitempty"`
}

// limit is one bound of a budget.
type limit struct {
	key    string  // the figure's place in the report: "lateness.p99_ms"
	what   string  // "p99", "RSS"
	got    float64 // measured
	bound  float64
	unit   string // "ms", "MiB", "runs/s"
	atMost bool   // the measure must be ≤ bound (else ≥)
	// floor and times: the bound is times × floor, a floor measured in the
	// same run.
	floor, times float64
	// scale, when set, is the size the budget is for, which the run did
	// not have.
	scale string
}

// atMost and atLeast make budget bounds; overFloor one that is a multiple
// of a floor measured in the same run.
func atMost(key, what string, got, bound float64, unit string) limit {
	return limit{key: key, what: what, got: got, bound: bound, unit: unit, atMost: true}
}
func atLeast(key, what string, got, bound float64, unit string) limit {
	return limit{key: key, what: what, got: got, bound: bound, unit: unit}
}
func overFloor(key, what string, got, floor, times float64, unit string) limit {
	return limit{key: key, what: what, got: got, bound: floor * times, unit: unit, atMost: true, floor: floor, times: times}
}

// at marks l as a budget for another size than the run's, when applies is
// false.
func (l limit) at(applies bool, scale string) limit {
	if !applies {
		l.scale = scale
	}
	return l
}

func (l limit) met() bool {
	if l.atMost {
		return l.got <= l.bound
	}
	return l.got >= l.bound
}

func (l limit) check() Check {
	c := Check{Figure: l.key, Measured: l.got, Unit: l.unit, AtMost: l.atMost, Bound: round3(l.bound), Met: l.met(), For: l.scale}
	if l.times > 0 {
		c.Floor, c.FloorTimes = l.floor, l.times
		if l.floor > 0 {
			c.Ratio = round3(l.got / l.floor)
		}
	}
	return c
}

// judge is the Verdict of limits.
func judge(limits []limit) Verdict {
	v := Verdict{Budget: []Check{}, Met: true}
	for _, l := range limits {
		c := l.check()
		v.Budget = append(v.Budget, c)
		if c.For == "" && !c.Met {
			v.Met = false
		}
	}
	return v
}

// verdict says whether every bound holds, and by how much each that does
// not is missed; a bound that is a multiple of a floor says the ratio
// either way.
func verdict(limits ...limit) string {
	var missed, ratios, other []string
	for _, l := range limits {
		if l.scale != "" {
			other = append(other, fmt.Sprintf("(%s: budget is for %s)", l.what, l.scale))
			continue
		}
		if l.times > 0 && l.floor > 0 {
			ratios = append(ratios, fmt.Sprintf("%s %.2f× floor (≤ %v×)", l.what, l.got/l.floor, l.times))
		}
		if l.met() {
			continue
		}
		if l.atMost {
			missed = append(missed, fmt.Sprintf("%s %s > %s %s (%.1f× over)", l.what, num(l.got), num(l.bound), l.unit, l.got/l.bound))
		} else {
			missed = append(missed, fmt.Sprintf("%s %s < %s %s (%.0f%% of it)", l.what, num(l.got), num(l.bound), l.unit, 100*l.got/l.bound))
		}
	}
	s := "met"
	if len(missed) > 0 {
		s = "MISSED: " + strings.Join(missed, "; ")
	}
	if len(other) == len(limits) && len(limits) > 0 {
		s = strings.Join(other, " ")
	} else if len(other) > 0 {
		s += " " + strings.Join(other, " ")
	}
	if len(ratios) > 0 {
		s += "; " + strings.Join(ratios, ", ")
	}
	return s
}

// round3 rounds to three decimals.
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
