package muster

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// RunStatus is the state of a run. A run is created running and ends in one
// of the other states; only a newer revision from its target changes it,
// but for what no target will report: the master records a START never run
// skipped, and a run left running by a target that left abandoned.
type RunStatus string

// Run statuses (a closed set).
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunTimedOut  RunStatus = "timed_out"
	RunCanceled  RunStatus = "canceled"
	RunAbandoned RunStatus = "abandoned" // its target died mid-run
	RunSkipped   RunStatus = "skipped"   // not run: expired, refused or withdrawn START, already running
)

// Valid reports whether s is one of the run statuses.
func (s RunStatus) Valid() bool {
	switch s {
	case RunRunning, RunSucceeded, RunFailed, RunTimedOut, RunCanceled, RunAbandoned, RunSkipped:
		return true
	}
	return false
}

// Finished reports whether s is a terminal status.
func (s RunStatus) Finished() bool { return s.Valid() && s != RunRunning }

// AttemptStatus is the outcome of one attempt of one step.
type AttemptStatus string

// Step attempt statuses (a closed set). Retry marks a failed attempt that
// will be tried again.
const (
	AttemptSucceeded AttemptStatus = "succeeded"
	AttemptFailed    AttemptStatus = "failed"
	AttemptRetry     AttemptStatus = "retry"
	AttemptTimedOut  AttemptStatus = "timed_out"
	AttemptCanceled  AttemptStatus = "canceled"
	// AttemptRunning is the status of an attempt still in progress; it is
	// replaced by one of the above when the attempt ends.
	AttemptRunning AttemptStatus = "running"
)

// Valid reports whether s is one of the attempt statuses.
func (s AttemptStatus) Valid() bool {
	switch s {
	case AttemptSucceeded, AttemptFailed, AttemptRetry, AttemptTimedOut, AttemptCanceled, AttemptRunning:
		return true
	}
	return false
}

// Triggers: what started a run.
const (
	TriggerOperator = "operator"
	TriggerSchedule = "schedule" // written "schedule:NAME"
	TriggerStartup  = "startup"
)

// Run is one execution of a job on one target, with a row per step attempt
// (SQL Server's sysjobhistory).
type Run struct {
	Job        string        `json:"job"`
	Target     string        `json:"target"`
	RunID      string        `json:"run_id"`
	Status     RunStatus     `json:"status"`
	Trigger    string        `json:"trigger"`
	Message    string        `json:"message,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at"`
	DurationMS int64         `json:"duration_ms"`
	Steps      []StepAttempt `json:"steps"`
	// TargetOffline is set, when the run is read, on a run last reported
	// running whose target is now suspected offline: its real outcome
	// arrives from the target's spool when the target returns.
	TargetOffline bool `json:"target_offline,omitempty"`
}

// Ref names the run: its id on its target.
func (r Run) Ref() RunRef { return RunRef{Target: r.Target, RunID: r.RunID} }

// StepAttempt is one attempt of one step of a run.
type StepAttempt struct {
	Name       string        `json:"name"`
	Attempt    int           `json:"attempt"`
	Status     AttemptStatus `json:"status"`
	ExitCode   *int          `json:"exit_code"`
	Output     string        `json:"output"`
	Message    string        `json:"message,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	DurationMS int64         `json:"duration_ms"`
}

// NewRunID returns a new run id (a UUID, version 7: the time in
// milliseconds, then 74 random bits), for the run a START creates. It is
// made by the master and carried in the START, so a replayed START names
// the same run; its random bits make it one no other target can guess.
// Ids made later sort after those made earlier, so the catalog's index of
// STARTs by run id grows at its end, a few pages for a whole fan-out,
// rather than a page for each target.
func NewRunID() string {
	return newRunIDAt(time.Now())
}

// newRunIDAt is NewRunID for a run made at t.
func newRunIDAt(t time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return uuidString(b)
}

// ScheduledRunID is the id of the run a schedule fires for the given
// scheduled time, so that a restart or a replay never runs one fire twice.
func ScheduledRunID(targetUID, job, schedule string, at time.Time) string {
	return deriveRunID("schedule", targetUID, job, schedule, strconv.FormatInt(at.UnixNano(), 10))
}

// deriveRunID hashes its parts into a UUID (version 8, RFC 9562), which
// reads like any other run id but is reproducible.
func deriveRunID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return uuidString(b)
}

func uuidString(b [16]byte) string {
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
