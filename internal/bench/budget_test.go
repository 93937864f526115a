package bench

import (
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	tests := []struct {
		name   string
		limits []limit
		met    bool
		ratio  float64 // of the first check
		say    string  // in the table's verdict
	}{
		{"within the floor's multiple", []limit{overFloor("x.p50_ms", "p50", 2.2, 2, 1.25, "ms")}, true, 1.1, "p50 1.10× floor (≤ 1.25×)"},
		{"over the floor's multiple", []limit{overFloor("x.p50_ms", "p50", 3, 2, 1.25, "ms")}, false, 1.5, "MISSED: p50 3 > 2.50 ms"},
		{"absolute, missed", []limit{atMost("x.p99_ms", "p99", 12, 10, "ms")}, false, 0, "MISSED: p99 12 > 10 ms (1.2× over)"},
		{"at least, met", []limit{atLeast("runs_per_s", "ingest", 31000, 30000, "runs/s")}, true, 0, "met"},
		{"for another size: reported, not counted", []limit{atMost("x", "max", 2000, 1000, "ms").at(false, "1,000 targets")}, true, 0, "(max: budget is for 1,000 targets)"},
		{"one missed of two", []limit{atMost("a", "p50", 1, 2, "ms"), atMost("b", "p99", 3, 2, "ms")}, false, 0, "MISSED: p99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.limits)
			if v.Met != tt.met {
				t.Errorf("met = %v, want %v", v.Met, tt.met)
			}
			if len(v.Budget) != len(tt.limits) {
				t.Fatalf("%d checks, want %d", len(v.Budget), len(tt.limits))
			}
			if got := v.Budget[0].Ratio; got != tt.ratio {
				t.Errorf("ratio = %v, want %v", got, tt.ratio)
			}
			if got := verdict(tt.limits...); !strings.Contains(got, tt.say) {
				t.Errorf("verdict %q, want it to say %q", got, tt.say)
			}
		})
	}
}
