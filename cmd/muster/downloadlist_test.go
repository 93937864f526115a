package main

import (
	"testing"

	"github.com/musterhq/muster"
)

// A retry says what it posted, and for a START the run to follow: posted
// now, or held back by the job's max_parallel_targets.
func TestRetriedLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   muster.Instruction
		want string
	}{
		{"insert", muster.Instruction{Seq: 57, Target: "db1", Operation: muster.OpInsert, Job: "backup"},
			"reposted instruction 42 as INSERT backup 57 on db1"},
		{"start", muster.Instruction{Seq: 57, Target: "db1", Operation: muster.OpStart, Job: "backup", RunID: "r-1"},
			"reposted instruction 42 as START backup 57 on db1: run r-1"},
		{"start queued", muster.Instruction{Target: "db1", Operation: muster.OpStart, Job: "backup", RunID: "r-1", Queued: true},
			"reposted instruction 42 as START backup on db1, queued by max_parallel_targets: run r-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retriedLine(42, tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
