package bench

import (
	"math"
	"slices"
	"time"
)

// Summary is a latency distribution: nearest-rank percentiles of the
// samples, in milliseconds.
type Summary struct {
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Count int     `json:"count"`
}

// Summarize computes the distribution of samples.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return msOf(s[max(i, 0)])
	}
	return Summary{P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: msOf(s[len(s)-1]), Count: len(s)}
}

// msOf converts a duration to milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
