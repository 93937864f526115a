package muster

// Job change actions: what an apply (or a change of a job's groups) did, or
// would do, to one job.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
	ActionStop      = "stop"
)

// JobChange is what a change did, or would do, to one job: its version
// after it, how its definition changed (one line per changed leaf), and the
// instructions it posted, e.g. "INSERT web1".
type JobChange struct {
	Job          string   `json:"job"`
	Action       string   `json:"action"`
	Version      int64    `json:"version"`
	Diff         []string `json:"diff,omitempty"`
	Instructions []string `json:"instructions,omitempty"`
	// Posted are the instructions the change posted, with their sequence
	// numbers, so a caller can follow each to its target (none on a dry
	// run, which posts nothing).
	Posted []Instruction `json:"posted,omitempty"`
	// LeftOut are the targets the job names that have left the fleet
	// (defected, or deleted): the job is applied without them. Warnings
	// say so, one line each, with when and how each left.
	LeftOut  []string `json:"left_out,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Notes say what else the change did, one line each: a stop, the
	// STARTs max_parallel_targets held back that it dropped and the
	// rollouts it cancelled.
	Notes []string `json:"notes,omitempty"`
}

// ApplyResult lists the changes of an apply, in request order, then pruned
// jobs.
type ApplyResult struct {
	DryRun  bool        `json:"dry_run"`
	Changes []JobChange `json:"changes"`
	Posted  int         `json:"posted"`
}
