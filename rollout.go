package muster

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// RolloutState is where a rollout is. A rollout starts running and ends
// once, in one of the other states:
//
//	running ──► done       every wave ran, whatever its runs' outcomes
//	   │  └───► halted     more runs failed than max_failures allows
//	   └──────► cancelled  the job was stopped (on all its targets)
type RolloutState string

// Rollout states (a closed set).
const (
	RolloutRunning   RolloutState = "running"
	RolloutDone      RolloutState = "done"
	RolloutHalted    RolloutState = "halted"
	RolloutCancelled RolloutState = "cancelled"
)

// RolloutSpec asks to start a job in waves: Batch targets at a time (a
// number, or a percentage of the targets such as "25%", rounded up), each
// wave once every run of the one before has ended, halting when more than
// MaxFailures runs have failed.
type RolloutSpec struct {
	Batch       string `json:"batch"`
	MaxFailures int    `json:"max_failures"`
}

// Validate checks the spec's fields, naming the one that breaks its rule
// with prefix (such as "rollout.").
func (s RolloutSpec) Validate(prefix string) error {
	if _, err := s.WaveSize(1); err != nil {
		return Errorf(EINVALID, "%sbatch: %s", prefix, ErrorMessage(err))
	}
	if s.MaxFailures < 0 {
		return Errorf(EINVALID, "%smax_failures: %d is negative; give 0 (halt at the first failure) or more", prefix, s.MaxFailures)
	}
	return nil
}

// WaveSize returns how many of n targets a wave holds: Batch, or Batch
// percent of n rounded up, at least one, and no more than n (a batch of
// more than there are targets, however large, is one wave of them all).
func (s RolloutSpec) WaveSize(n int) (int, error) {
	if pct, ok := strings.CutSuffix(s.Batch, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
			return 0, Errorf(EINVALID, "%q is not a percentage above 0%% and at most 100%%", s.Batch)
		}
		// p*n first: for a whole percentage the division is exact, where
		// p/100 is not (0.07*100 is 7.000000000000001, rounded up to 8).
		return max(1, int(math.Ceil(p*float64(n)/100))), nil
	}
	size, err := strconv.Atoi(s.Batch)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s.Batch, "-") {
		size, err = n, nil // more targets than any fleet has
	}
	if err != nil || size < 1 {
		return 0, Errorf(EINVALID, "%q is not a number of targets (1 or more) or a percentage such as 25%%", s.Batch)
	}
	return max(1, min(size, n)), nil
}

// Rollout is a job started in waves, as the master drives it: each wave's
// STARTs are posted once every run of the wave before has ended, so the
// rollout goes on whoever asked for it and whichever master serves.
type Rollout struct {
	ID          int64        `json:"id"`
	Job         string       `json:"job"`
	State       RolloutState `json:"state"`
	Reason      string       `json:"reason,omitempty"` // why it halted or was cancelled
	Wave        int          `json:"wave"`             // the last wave posted, from 1
	Waves       int          `json:"waves"`
	WaveSize    int          `json:"wave_size"`
	Batch       string       `json:"batch"`
	MaxFailures int          `json:"max_failures"`
	// Started counts the runs posted; Succeeded and Failed those ended
	// (a START a target refused or that expired unrun counts as failed).
	Started   int        `json:"started"`
	Succeeded int        `json:"succeeded"`
	Failed    int        `json:"failed"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Targets are the rollout's targets in the order they start, each
	// with its wave.
	Targets []RolloutTarget `json:"targets"`
}

// Active reports whether the rollout is still running.
func (r Rollout) Active() bool { return r.State == RolloutRunning }

// WaveTargets returns the targets of wave w (from 1).
func (r Rollout) WaveTargets(w int) []RolloutTarget {
	var out []RolloutTarget
	for _, t := range r.Targets {
		if t.Wave == w {
			out = append(out, t)
		}
	}
	return out
}

// Rollout target states, besides the run statuses a recorded run has.
const (
	RolloutWaiting = "waiting" // its wave is not posted yet
	RolloutPosted  = "posted"  // its START is posted (or queued), no run recorded yet
	RolloutNotRun  = "not_run" // its START was refused or expired without a run
)

// RolloutTarget is one target of a rollout: its wave, its run, and how that
// run stands.
type RolloutTarget struct {
	Target string `json:"target"`
	Wave   int    `json:"wave"`
	RunID  string `json:"run_id"`
	// Status is waiting, posted or not_run, or the run's status once the
	// run is recorded.
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	// Message is the run's message, or why it did not run.
	Message string `json:"message,omitempty"`
}

// Ended reports whether the target's run needs no more waiting.
func (t RolloutTarget) Ended() bool {
	return t.Status == RolloutNotRun || RunStatus(t.Status).Finished()
}

// Failed reports whether the target's run ended other than succeeded.
func (t RolloutTarget) Failed() bool {
	return t.Ended() && t.Status != string(RunSucceeded)
}
