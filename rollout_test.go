package muster_test

import (
	"testing"

	"github.com/musterhq/muster"
)

// A percentage batch is that share of the targets rounded up, and exact
// when it divides them: 7% of 100 targets is 7, not 8.
func TestRolloutWaveSize(t *testing.T) {
	for _, tc := range []struct {
		batch   string
		targets int
		want    int
	}{
		{"7%", 100, 7},
		{"14%", 100, 14},
		{"28%", 100, 28},
		{"57%", 100, 57},
		{"10%", 10, 1},
		{"12.5%", 8, 1},
		{"50%", 1, 1},
		{"34%", 3, 2},
		{"33%", 3, 1},
		{"100%", 3, 3},
		{"0.1%", 5, 1},
		{"25%", 0, 1},
		{"5", 3, 3},
		{"5", 0, 1},
		{"9223372036854775807", 3, 3},
		{"99999999999999999999", 3, 3},
	} {
		got, err := muster.RolloutSpec{Batch: tc.batch}.WaveSize(tc.targets)
		if err != nil || got != tc.want {
			t.Errorf("%s of %d targets: %d %v, want %d", tc.batch, tc.targets, got, err, tc.want)
		}
	}
}
