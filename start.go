package muster

import "time"

// StartedRun is the run a START will create on one target.
type StartedRun struct {
	Target string `json:"target"`
	Seq    int64  `json:"seq"` // 0 while queued
	RunID  string `json:"run_id"`
	// Queued is set when the job's max_parallel_targets holds the START
	// back; it is posted when a run of the job ends.
	Queued bool `json:"queued,omitempty"`
}

// RunRef names one run: its run id on its target. A run id alone does not
// name a run: another target may have uploaded a run under the same id.
type RunRef struct {
	Target string `json:"target"`
	RunID  string `json:"run_id"`
}

// String is TARGET:RUN_ID, as the API takes it.
func (r RunRef) String() string { return r.Target + ":" + r.RunID }

// StartResult answers a request to start a job.
type StartResult struct {
	Job       string       `json:"job"`
	Runs      []StartedRun `json:"runs"`
	ExpiresAt time.Time    `json:"expires_at"`
	// Rollout is the rollout the start began, when it asked for waves:
	// Runs then holds the first wave's runs only.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Replayed is true when the idempotency key matched an earlier request
	// and nothing new was posted.
	Replayed bool `json:"replayed"`
}

// Refs names the runs a start created.
func (s StartResult) Refs() []RunRef {
	out := make([]RunRef, len(s.Runs))
	for i, r := range s.Runs {
		out[i] = RunRef{Target: r.Target, RunID: r.RunID}
	}
	return out
}

// PurgeResult says how many runs a purge of the history deleted.
type PurgeResult struct {
	Deleted int64 `json:"deleted"`
}

// Fire is one upcoming fire of a schedule on a target.
type Fire struct {
	Schedule string    `json:"schedule"`
	At       time.Time `json:"at"` // in the zone the schedule fires in, jitter included
}

// TargetFires is the next fires of a job on one of its targets.
type TargetFires struct {
	Target   string `json:"target"`
	TimeZone string `json:"time_zone"` // the zone the job's schedules fire in there
	Fires    []Fire `json:"fires"`
	// Disabled says the job is disabled there (the job's enabled, or an
	// override's): its schedules do not fire, and Fires is empty.
	Disabled bool `json:"disabled,omitempty"`
}
