package agentproto

import (
	"time"

	"github.com/musterhq/muster"
)

// Run is a run as a target reports it, without its output (which travels
// in chunks, see RunReport).
type Run struct {
	Job        string           `json:"job"`
	Target     string           `json:"target"`
	RunID      string           `json:"run_id"`
	Status     muster.RunStatus `json:"status"`
	Trigger    string           `json:"trigger"`
	Message    string           `json:"message,omitempty"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt *time.Time       `json:"finished_at"`
	DurationMS int64            `json:"duration_ms"`
	Steps      []StepAttempt    `json:"steps"`
}

// StepAttempt is one attempt of one step of a Run, without its output.
type StepAttempt struct {
	Name       string               `json:"name"`
	Attempt    int                  `json:"attempt"`
	Status     muster.AttemptStatus `json:"status"`
	ExitCode   *int                 `json:"exit_code"`
	Message    string               `json:"message,omitempty"`
	StartedAt  time.Time            `json:"started_at"`
	DurationMS int64                `json:"duration_ms"`
}

// OutputChunk is a piece of one attempt's output: Data follows the first
// Offset bytes of the output of Run.Steps[Attempt]. A target never changes
// output it has reported, only appends to it.
type OutputChunk struct {
	Attempt int    `json:"attempt"`
	Offset  int64  `json:"offset"`
	Data    string `json:"data"`
}

// RunFromDomain returns r as a target reports it; the attempts' output is
// left out.
func RunFromDomain(r muster.Run) Run {
	w := Run{Job: r.Job, Target: r.Target, RunID: r.RunID, Status: r.Status, Trigger: r.Trigger, Message: r.Message,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DurationMS: r.DurationMS, Steps: make([]StepAttempt, len(r.Steps))}
	for i, a := range r.Steps {
		w.Steps[i] = StepAttempt{Name: a.Name, Attempt: a.Attempt, Status: a.Status, ExitCode: a.ExitCode,
			Message: a.Message, StartedAt: a.StartedAt, DurationMS: a.DurationMS}
	}
	return w
}

// Domain returns the run as the domain knows it, its attempts without
// output.
func (r Run) Domain() muster.Run {
	d := muster.Run{Job: r.Job, Target: r.Target, RunID: r.RunID, Status: r.Status, Trigger: r.Trigger, Message: r.Message,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DurationMS: r.DurationMS, Steps: make([]muster.StepAttempt, len(r.Steps))}
	for i, a := range r.Steps {
		d.Steps[i] = muster.StepAttempt{Name: a.Name, Attempt: a.Attempt, Status: a.Status, ExitCode: a.ExitCode,
			Message: a.Message, StartedAt: a.StartedAt, DurationMS: a.DurationMS}
	}
	return d
}
