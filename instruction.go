package muster

import "time"

// Operation is what an instruction asks a target to do. The names are SQL
// Server Agent's sysdownloadlist operations.
type Operation string

// Operations.
const (
	OpInsert   Operation = "INSERT"    // add or replace a whole job at a version
	OpUpdate   Operation = "UPDATE"    // change a job's header (enabled, description)
	OpDelete   Operation = "DELETE"    // remove a job, or every job when Job is ""
	OpStart    Operation = "START"     // run a job now
	OpStop     Operation = "STOP"      // cancel a job's running run
	OpReEnlist Operation = "RE-ENLIST" // send enlistment details again
	OpDefect   Operation = "DEFECT"    // leave the master
	OpSyncTime Operation = "SYNC-TIME" // measure (and report) clock offset
	OpSetPoll  Operation = "SET-POLL"  // change the poll interval
)

// Valid reports whether op is one of the defined operations.
func (op Operation) Valid() bool {
	switch op {
	case OpInsert, OpUpdate, OpDelete, OpStart, OpStop, OpReEnlist, OpDefect, OpSyncTime, OpSetPoll:
		return true
	}
	return false
}

// JobOperation reports whether op acts on a job (as opposed to the target).
func (op Operation) JobOperation() bool {
	switch op {
	case OpInsert, OpUpdate, OpDelete, OpStart, OpStop:
		return true
	}
	return false
}

// InstructionStatus is where an instruction is in its life.
//
//	pending ──ack ok──▶ downloaded
//	   │ └───ack error──▶ failed ──newer INSERT/DELETE of the job──▶ superseded
//	   │                    └──────operator retry or delete─────────▶ deleted
//	   └──newer INSERT/DELETE of the job before delivery──▶ superseded
//	   └──operator delete──▶ deleted
type InstructionStatus string

// Instruction statuses.
const (
	InstructionPending    InstructionStatus = "pending"
	InstructionDownloaded InstructionStatus = "downloaded"
	InstructionFailed     InstructionStatus = "failed"
	InstructionSuperseded InstructionStatus = "superseded"
	InstructionDeleted    InstructionStatus = "deleted"
)

// Instruction is one entry of a target's download list.
type Instruction struct {
	Seq          int64             `json:"seq"`
	Target       string            `json:"target"`
	Operation    Operation         `json:"operation"`
	Job          string            `json:"job"`
	PostedAt     time.Time         `json:"posted_at"`
	DownloadedAt *time.Time        `json:"downloaded_at"`
	Status       InstructionStatus `json:"status"`
	Error        string            `json:"error"`
	// RunID is, in the reply of a START posted or retried, the id of the
	// run it starts: the one to follow in the job's history.
	RunID string `json:"run_id,omitempty"`
	// Queued is set, in the reply of a START posted or retried, when the
	// job's max_parallel_targets holds it back: it is posted, under a
	// sequence number then given (Seq is 0 until then), when a slot frees.
	Queued bool `json:"queued,omitempty"`
}

// DefaultStartExpiry is how long a START instruction stays valid: a target
// that receives it later records the run as skipped instead of running it.
const DefaultStartExpiry = 10 * time.Minute
