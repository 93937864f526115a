// Package v1 holds the wire types of version 1 of the agent protocol,
// frozen: what a target of protocol 1 sends and decodes, byte for byte. A
// master reads protocol-1 requests with them, and tests drive a master with
// a target that speaks nothing else. Nothing here may change; golden JSON
// (../testdata/v1) checks that nothing does.
//
// Version 1 put the domain's types on the wire (muster.Job in an INSERT,
// muster.Run in a run report); their form as of version 1 is copied here,
// with durations as the strings they were ("90s") and enumerations as
// strings.
package v1

import (
	"encoding/json"
	"time"
)

// Version is this package's protocol version.
const Version = 1

// EnlistRequest asks to join the master.
type EnlistRequest struct {
	Token        string    `json:"token"`
	Name         string    `json:"name"`
	Location     string    `json:"location"`
	CSR          []byte    `json:"csr"`
	TimeZone     string    `json:"time_zone"`
	LocalTime    time.Time `json:"local_time"`
	PollInterval int       `json:"poll_interval"`
	Version      string    `json:"version"`
	Protocol     int       `json:"protocol"`
	EnlistedBy   string    `json:"enlisted_by"`
}

// EnlistResponse carries the target's certificate.
type EnlistResponse struct {
	Name         string `json:"name"`
	UID          string `json:"uid"`
	Cert         []byte `json:"cert"`
	CA           []byte `json:"ca"`
	Epoch        string `json:"epoch"`
	PollInterval int    `json:"poll_interval"`
	Master       string `json:"master"`
}

// PollResponse answers a poll.
type PollResponse struct {
	Epoch          string        `json:"epoch"`
	Protocol       int           `json:"protocol"`
	ServerTime     time.Time     `json:"server_time"`
	ResyncRequired bool          `json:"resync_required,omitempty"`
	Paused         bool          `json:"paused"`
	Instructions   []Instruction `json:"instructions"`
}

// Instruction is one download-list entry as delivered.
type Instruction struct {
	Seq       int64           `json:"seq"`
	Operation string          `json:"operation"`
	Job       string          `json:"job,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// Job is an INSERT's payload: muster.Job as of version 1, master-only
// fields included (a master sent them empty).
type Job struct {
	Name               string                       `json:"name"`
	Description        string                       `json:"description,omitempty"`
	Enabled            bool                         `json:"enabled"`
	Targets            []string                     `json:"targets,omitempty"`
	Groups             []string                     `json:"groups,omitempty"`
	Steps              []Step                       `json:"steps"`
	Schedules          []Schedule                   `json:"schedules,omitempty"`
	TimeZone           string                       `json:"time_zone,omitempty"`
	Timeout            string                       `json:"timeout,omitempty"`
	Env                map[string]string            `json:"env,omitempty"`
	Misfire            string                       `json:"misfire,omitempty"`
	TargetEnv          map[string]map[string]string `json:"target_env,omitempty"`
	MaxParallelTargets int                          `json:"max_parallel_targets,omitempty"`
	Version            int64                        `json:"version,omitempty"`
}

// Step is muster.Step as of version 1.
type Step struct {
	Name       string            `json:"name"`
	Shell      string            `json:"shell,omitempty"`
	Command    []string          `json:"command,omitempty"`
	SQL        string            `json:"sql,omitempty"`
	Connection string            `json:"connection,omitempty"`
	Params     []string          `json:"params,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Timeout    string            `json:"timeout,omitempty"`
	Retry      *Retry            `json:"retry,omitempty"`
	OnSuccess  string            `json:"on_success,omitempty"`
	OnFailure  string            `json:"on_failure,omitempty"`
	RunAs      string            `json:"run_as,omitempty"`
}

// Retry is muster.Retry as of version 1.
type Retry struct {
	Attempts int    `json:"attempts"`
	Interval string `json:"interval,omitempty"`
}

// Schedule is muster.Schedule as of version 1.
type Schedule struct {
	Name            string                    `json:"name,omitempty"`
	Cron            string                    `json:"cron,omitempty"`
	Once            string                    `json:"once,omitempty"`
	Daily           *DailyFrequency           `json:"daily,omitempty"`
	Weekly          *WeeklyFrequency          `json:"weekly,omitempty"`
	Monthly         *MonthlyFrequency         `json:"monthly,omitempty"`
	MonthlyRelative *MonthlyRelativeFrequency `json:"monthly_relative,omitempty"`
	AtStart         bool                      `json:"at_start,omitempty"`
	At              string                    `json:"at,omitempty"`
	Repeat          *Repeat                   `json:"repeat,omitempty"`
	StartDate       string                    `json:"start_date,omitempty"`
	EndDate         string                    `json:"end_date,omitempty"`
	Jitter          string                    `json:"jitter,omitempty"`
}

// DailyFrequency is muster.DailyFrequency as of version 1.
type DailyFrequency struct {
	Every int `json:"every,omitempty"`
}

// WeeklyFrequency is muster.WeeklyFrequency as of version 1.
type WeeklyFrequency struct {
	Every int      `json:"every,omitempty"`
	Days  []string `json:"days"`
}

// MonthlyFrequency is muster.MonthlyFrequency as of version 1.
type MonthlyFrequency struct {
	Every int `json:"every,omitempty"`
	Day   int `json:"day"`
}

// MonthlyRelativeFrequency is muster.MonthlyRelativeFrequency as of
// version 1.
type MonthlyRelativeFrequency struct {
	Every int    `json:"every,omitempty"`
	Week  string `json:"week"`
	Day   string `json:"day"`
}

// Repeat is muster.Repeat as of version 1.
type Repeat struct {
	Every string `json:"every"`
	From  string `json:"from,omitempty"`
	Until string `json:"until,omitempty"`
}

// UpdatePayload is an UPDATE's payload.
type UpdatePayload struct {
	Version     int64  `json:"version"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description"`
}

// StartPayload is a START's payload.
type StartPayload struct {
	RunID       string            `json:"run_id"`
	ExpiresAt   time.Time         `json:"expires_at"`
	RequestedBy string            `json:"requested_by,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Step        string            `json:"step,omitempty"`
}

// SetPollPayload is a SET-POLL's payload.
type SetPollPayload struct {
	PollInterval int `json:"poll_interval"`
}

// Ack reports the outcome of applying one instruction.
type Ack struct {
	Seq   int64  `json:"seq"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// AckRequest carries acks in sequence order.
type AckRequest struct {
	Acks []Ack `json:"acks"`
}

// Run is muster.Run as of version 1, whole outputs included.
type Run struct {
	Job           string        `json:"job"`
	Target        string        `json:"target"`
	RunID         string        `json:"run_id"`
	Status        string        `json:"status"`
	Trigger       string        `json:"trigger"`
	Message       string        `json:"message,omitempty"`
	StartedAt     time.Time     `json:"started_at"`
	FinishedAt    *time.Time    `json:"finished_at"`
	DurationMS    int64         `json:"duration_ms"`
	Steps         []StepAttempt `json:"steps"`
	TargetOffline bool          `json:"target_offline,omitempty"`
}

// StepAttempt is muster.StepAttempt as of version 1. Output is the whole
// output kept so far, sent again with every revision.
type StepAttempt struct {
	Name       string    `json:"name"`
	Attempt    int       `json:"attempt"`
	Status     string    `json:"status"`
	ExitCode   *int      `json:"exit_code"`
	Output     string    `json:"output"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
}

// RunReport is a run at a revision.
type RunReport struct {
	Revision int64 `json:"revision"`
	Run      Run   `json:"run"`
}

// RunsRequest uploads a batch of runs.
type RunsRequest struct {
	Runs []RunReport `json:"runs"`
}

// RunResult is the master's answer for one uploaded run.
type RunResult struct {
	RunID string `json:"run_id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// RunsResponse answers a RunsRequest.
type RunsResponse struct {
	Results []RunResult `json:"results"`
}

// ResyncRequest asks the master to re-post everything.
type ResyncRequest struct {
	After int64 `json:"after"`
}

// ResyncResponse tells the target where the re-posted instructions start.
type ResyncResponse struct {
	Epoch string `json:"epoch"`
	After int64  `json:"after"`
}

// TimeResponse answers GET /agent/v1/time.
type TimeResponse struct {
	ServerTime time.Time `json:"server_time"`
}

// ReEnlistRequest sends the target's enlistment details again.
type ReEnlistRequest struct {
	Location     string    `json:"location"`
	TimeZone     string    `json:"time_zone"`
	LocalTime    time.Time `json:"local_time"`
	PollInterval int       `json:"poll_interval"`
	Version      string    `json:"version"`
}

// RenewRequest asks for a new certificate.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// RenewExpiredRequest asks for a new certificate after expiry.
type RenewExpiredRequest struct {
	Cert      []byte `json:"cert"`
	CSR       []byte `json:"csr"`
	Signature []byte `json:"signature"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Cert []byte `json:"cert"`
}

// Event is an event a target raised, as it forwards it.
type Event struct {
	ID       int64     `json:"id"`
	Name     string    `json:"event"`
	Severity int       `json:"severity"`
	Job      string    `json:"job,omitempty"`
	RunID    string    `json:"run_id,omitempty"`
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}

// EventsRequest forwards a batch of events.
type EventsRequest struct {
	Events []Event `json:"events"`
}

// EventResult is the master's answer for one forwarded event.
type EventResult struct {
	ID    int64  `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// EventsResponse answers an EventsRequest.
type EventsResponse struct {
	Results []EventResult `json:"results"`
}

// Poll query parameters of version 1.
const (
	QueryAfter        = "after"
	QueryWait         = "wait"
	QueryLocalTime    = "local_time"
	QueryTimeZone     = "tz"
	QueryPollInterval = "poll_interval"
	QueryVersion      = "version"
	QuerySpoolDepth   = "spool"
	QuerySpoolDropped = "spool_dropped"
	QueryClockOffset  = "clock_offset"
	QueryPaused       = "paused"
)
