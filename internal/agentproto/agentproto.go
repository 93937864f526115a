// Package agentproto holds the wire types of the protocol between a master
// and its targets, the protocol version, and the endpoints. It has no logic.
//
// All endpoints are under /agent/v1/ on the master's single TLS listener.
// Every request carries the Muster-Protocol header with the sender's protocol
// version. Every endpoint except Enlist requires a client certificate issued
// by the master's CA; the target's identity is taken from it and nothing else.
//
// The target drives the conversation:
//
//  1. Enlist (once): POST /agent/v1/enlist with a single-use token and a CSR;
//     the master answers with a client certificate and the CA.
//  2. Poll (forever): GET /agent/v1/instructions?after=SEQ&wait=S&<heartbeat>.
//     The master answers at once with the pending instructions after SEQ, or
//     holds the request until some are posted (they are committed first) or
//     until min(S, 55 s) passes, then answers with none. The heartbeat fields
//     in the query update the target's row. Every reply carries the catalog
//     epoch and the master's protocol version.
//  3. Apply each instruction in sequence order, then Ack: POST /agent/v1/acks
//     with (seq, ok | error) for each. Acks are idempotent.
//  4. Report runs: POST /agent/v1/runs with a batch of runs at revisions; the
//     master keeps the highest revision of each run and answers per run. A
//     report carries only the output the master does not hold yet, in
//     chunks it appends.
//  5. Renew the certificate at two thirds of its life: POST /agent/v1/renew
//     with a CSR for a new key. A certificate that expired while the master
//     was unreachable renews by proof of possession at
//     /agent/v1/renew-expired, as long as the target is still enlisted.
//  6. Defect: POST /agent/v1/defect when the target leaves (muster defect,
//     or a DEFECT instruction). A target deleted on the master is a
//     tombstone: its certificate serves only to poll for the DEFECT, ack it,
//     and defect.
//  7. Forward events: POST /agent/v1/events with a batch of events the
//     target raised (a failed instruction, a full spool, a skewed clock, an
//     error of the daemon, a failed certificate renewal), each with the id
//     the target gave it; the master keeps each (target, id) once and
//     answers per event.
//  8. When a reply's epoch differs from the one the target holds, or the
//     reply says ResyncRequired, the target asks for a resync: POST
//     /agent/v1/resync; the master drops the target's queue and posts
//     DELETE of every job followed by an INSERT of each job it should hold.
//
// Every message is a type of this package, never a domain type: a field
// added to muster.Job must not change what a target of an older protocol
// receives. Jobs and runs cross with conversions (JobFromDomain, Job.Domain,
// RunFromDomain, Run.Domain). The wire form of every type is checked
// against golden JSON per version (testdata/vN), so that it cannot change
// without a new Version. The types of version 1 are kept, frozen, in
// package v1.
package agentproto

import (
	"encoding/json"
	"time"

	"github.com/musterhq/muster"
)

// Version is the protocol version this build speaks.
//
// Change log (newest first; a master accepts targets of its own version and
// the two before it):
//
//	2, amended (2026-12-06): the optional heartbeat field spool_oldest
//	  (QuerySpoolOldest). A master that does not know it ignores it, as
//	  it ignores any query field it does not read; a target that does not
//	  send it leaves the master not knowing, never wrong.
//	2 (2026-12-05): the protocol's own types for jobs (INSERT) and runs
//	  instead of the domain's; run output uploaded incrementally, as chunks
//	  the master appends (RunReport.Output; StepAttempt has no output);
//	  heartbeat flags disk_full and process_tracking; the target's epoch in
//	  the poll (a master of another epoch answers at once); the masters of
//	  a group in EnlistResponse.Masters and PollResponse.Masters.
//	1 (2026-11-25): enlist, long-poll instructions, acks, run reports, resync,
//	  certificate renewal (also after expiry), defect, pause in poll replies,
//	  time (SYNC-TIME), re-enlist, forwarded events.
const Version = 2

// MinVersion is the oldest target protocol a master of this build accepts.
const MinVersion = max(1, Version-2)

// HeaderProtocol carries the sender's protocol version on every request and
// reply.
const HeaderProtocol = "Muster-Protocol"

// Endpoint paths.
const (
	PathEnlist       = "/agent/v1/enlist"
	PathInstructions = "/agent/v1/instructions"
	PathAcks         = "/agent/v1/acks"
	PathRuns         = "/agent/v1/runs"
	PathResync       = "/agent/v1/resync"
	PathRenew        = "/agent/v1/renew"
	PathRenewExpired = "/agent/v1/renew-expired"
	PathDefect       = "/agent/v1/defect"
	PathTime         = "/agent/v1/time"
	PathReEnlist     = "/agent/v1/reenlist"
	PathEvents       = "/agent/v1/events"
)

// Poll query parameters. The heartbeat rides on every poll.
const (
	QueryAfter        = "after"         // last sequence number applied
	QueryWait         = "wait"          // longest hold wanted, in seconds
	QueryLocalTime    = "local_time"    // target clock, RFC 3339 with offset
	QueryTimeZone     = "tz"            // IANA zone name
	QueryPollInterval = "poll_interval" // seconds
	QueryVersion      = "version"       // muster release
	QuerySpoolDepth   = "spool"         // runs waiting to be acknowledged
	QuerySpoolDropped = "spool_dropped" // runs dropped because the spool was full
	QueryClockOffset  = "clock_offset"  // ms, measured at the last SYNC-TIME
	QueryPaused       = "paused"        // whether the target believes it is paused
	// QuerySpoolOldest is how long, in seconds (decimals allowed), the oldest run
	// waiting in the spool has waited to be uploaded (0 when none waits).
	// Optional: a target that does not send it leaves it unknown.
	QuerySpoolOldest = "spool_oldest"
	// QueryEpoch is the catalog epoch the target holds: a master of
	// another epoch answers at once, so the target resyncs without waiting
	// out a held poll.
	QueryEpoch = "epoch"
	// QueryDiskFull is true while the target's data directory is full: a
	// run's outcome, output or fire waits in its memory to be recorded.
	QueryDiskFull = "disk_full"
	// QueryProcessTracking says how the target finds and kills a step's
	// processes: ProcessTrackingCgroup or ProcessTrackingEnvironment.
	QueryProcessTracking = "process_tracking"
	// QuerySentAt, on a run upload, is the target's clock when it sent
	// it (RFC 3339): a target whose clock moved ahead since its last poll
	// is held to its clock now, not to the skew that poll showed.
	QuerySentAt = "sent_at"
)

// Process tracking, as a target reports it.
const (
	// ProcessTrackingCgroup: each run has a cgroup of its own, killed
	// whole (cgroup.kill), which no process of the run can leave.
	ProcessTrackingCgroup = "cgroup"
	// ProcessTrackingEnvironment: a step's processes are its process group
	// and the processes whose environment carries its run id.
	ProcessTrackingEnvironment = "environment"
)

// EnlistRequest asks to join the master. It is the only request made without
// a client certificate; the token authorises it.
type EnlistRequest struct {
	Token        string    `json:"token"`
	Name         string    `json:"name"`
	Location     string    `json:"location"`
	CSR          []byte    `json:"csr"` // DER
	TimeZone     string    `json:"time_zone"`
	LocalTime    time.Time `json:"local_time"`
	PollInterval int       `json:"poll_interval"`
	Version      string    `json:"version"`
	Protocol     int       `json:"protocol"`
	EnlistedBy   string    `json:"enlisted_by"` // OS user who ran `muster enlist`
}

// EnlistResponse carries the target's certificate and what it must remember.
type EnlistResponse struct {
	Name         string `json:"name"`
	UID          string `json:"uid"`  // enlistment id; part of every run id
	Cert         []byte `json:"cert"` // PEM
	CA           []byte `json:"ca"`   // PEM
	Epoch        string `json:"epoch"`
	PollInterval int    `json:"poll_interval"`
	Master       string `json:"master"` // the master's name
	// Masters are the advertised URLs of every live master of the group
	// that shares the catalog; none from a master alone.
	Masters []string `json:"masters,omitempty"`
}

// PollResponse answers a poll.
type PollResponse struct {
	Epoch          string    `json:"epoch"`
	Protocol       int       `json:"protocol"`
	ServerTime     time.Time `json:"server_time"`
	ResyncRequired bool      `json:"resync_required,omitempty"`
	// Paused tells the target whether it is paused: it then fires no
	// schedules and records STARTs as skipped, until a reply says not.
	Paused       bool          `json:"paused"`
	Instructions []Instruction `json:"instructions"`
	// Masters are the advertised URLs of every live master of the group;
	// a target polls the others when its master stops answering. A master
	// alone (or of protocol 1) sends none, and the target keeps its list.
	Masters []string `json:"masters,omitempty"`
}

// Bounds on a poll reply. A master stops adding instructions to a reply
// once the next one would take their payloads past MaxPollBytes, and
// always sends at least one, so a job larger than that alone still goes;
// the rest go in the next poll, after the cursor the target acknowledged
// (as they do past the 500 instructions a reply carries at most). One
// instruction's payload is at most MaxInstructionBytes: the largest job
// definition the API takes, a 16 MiB apply body, grows at most six times
// when it is encoded again (JSON writes <, > and & as \u003c and the like).
// A target reads at most MaxReplyBytes of any reply, which holds both and
// the rest of the reply with a margin, and refuses a longer one unread: a
// broken master, or one that is not a master, cannot make it read without
// end.
const (
	MaxPollBytes        = 32 << 20
	MaxInstructionBytes = 6 * 16 << 20
	MaxReplyBytes       = MaxPollBytes + MaxInstructionBytes + 16<<20
)

// Instruction is one download-list entry as delivered. Payload depends on
// Operation (see the payload types below) and is decoded strictly: a field
// the target does not know is an error, never dropped.
type Instruction struct {
	Seq       int64            `json:"seq"`
	Operation muster.Operation `json:"operation"`
	Job       string           `json:"job,omitempty"`
	Payload   json.RawMessage  `json:"payload,omitempty"`
}

// InsertPayload is an INSERT's payload: the whole job at a version.
type InsertPayload = Job

// UpdatePayload is an UPDATE's payload: a job's header at a version.
type UpdatePayload struct {
	Version     int64  `json:"version"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description"`
}

// StartPayload is a START's payload.
type StartPayload struct {
	RunID       string    `json:"run_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	RequestedBy string    `json:"requested_by,omitempty"`
	// Env overrides the job's and steps' environment for this run.
	Env map[string]string `json:"env,omitempty"`
	// Step is the step to begin at (default: the first).
	Step string `json:"step,omitempty"`
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

// RunReport is a run at a revision. A target raises the revision with every
// change to the run; the master ignores a report not newer than what it has.
// Output is the run's output the master does not hold yet (possibly none),
// oldest first; the master appends each chunk it has not seen, whatever the
// revision, so a repeated upload stores nothing twice.
type RunReport struct {
	Revision int64         `json:"revision"`
	Run      Run           `json:"run"`
	Output   []OutputChunk `json:"output,omitempty"`
}

// Limits of a run upload: the largest body a master takes, and the largest
// run report in it, as sent (JSON's escapes included). A master refuses an
// upload over either with 413, naming the report; a target that cuts a
// run's output to fit sizes the run by its encoded length.
const (
	MaxRunsBody  = 64 << 20
	MaxRunReport = 8 << 20
)

// RunsRequest uploads a batch of runs.
type RunsRequest struct {
	Runs []RunReport `json:"runs"`
}

// RunResult is the master's answer for one uploaded run. OK means the master
// holds this revision (or a newer one) and the target may forget it. An
// error is permanent: resending the same run will not help.
type RunResult struct {
	RunID string `json:"run_id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// RunsResponse answers a RunsRequest, one result per run in order.
type RunsResponse struct {
	Results []RunResult `json:"results"`
}

// ResyncRequest asks the master to re-post everything the target should hold.
type ResyncRequest struct {
	After int64 `json:"after"` // the target's cursor
}

// ResyncResponse tells the target where the re-posted instructions start.
type ResyncResponse struct {
	Epoch string `json:"epoch"`
	After int64  `json:"after"` // poll after this sequence number from now on
}

// TimeResponse answers GET /agent/v1/time, with which a target measures
// its clock's offset from the master's (SYNC-TIME).
type TimeResponse struct {
	ServerTime time.Time `json:"server_time"`
}

// ReEnlistRequest sends the target's enlistment details again (RE-ENLIST).
type ReEnlistRequest struct {
	Location     string    `json:"location"`
	TimeZone     string    `json:"time_zone"`
	LocalTime    time.Time `json:"local_time"`
	PollInterval int       `json:"poll_interval"`
	Version      string    `json:"version"`
}

// RenewRequest asks for a new certificate for a new key, over a connection
// authenticated by the current, still valid certificate.
type RenewRequest struct {
	CSR []byte `json:"csr"` // DER
}

// RenewExpiredRequest asks for a new certificate when the current one has
// expired (a master outage longer than its remaining life). It is sent
// without a client certificate; the target proves it holds the expired
// certificate's key by signing pki.RenewalDigest(CSR) with it. Only the
// newest certificate of an active target can renew this way.
type RenewExpiredRequest struct {
	Cert      []byte `json:"cert"` // DER of the expired certificate
	CSR       []byte `json:"csr"`  // DER
	Signature []byte `json:"signature"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Cert []byte `json:"cert"` // PEM
}

// Event is an event a target raised, as it forwards it. ID is the target's
// own number for it, unique within its enlistment: a forward that is
// repeated (its reply was lost) is recorded once.
type Event struct {
	ID       int64            `json:"id"`
	Name     muster.EventName `json:"event"`
	Severity muster.Severity  `json:"severity"`
	Job      string           `json:"job,omitempty"`
	RunID    string           `json:"run_id,omitempty"`
	Message  string           `json:"message"`
	At       time.Time        `json:"at"` // target clock
}

// EventsRequest forwards a batch of events, oldest first.
type EventsRequest struct {
	Events []Event `json:"events"`
}

// EventResult is the master's answer for one forwarded event. OK means the
// master holds it; an error is permanent (the event is not one a target
// may raise, or breaks a limit) and resending it will not help. Either
// way the target may forget it.
type EventResult struct {
	ID    int64  `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// EventsResponse answers an EventsRequest, one result per event in order.
type EventsResponse struct {
	Results []EventResult `json:"results"`
}
