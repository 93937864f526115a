package catalog

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/musterhq/muster"
)

// The catalog's logic (posting, supersession, idempotent starts, group
// reconcile, event detection) is written once, here, against the Store
// below. Each database engine implements it with its own SQL and nothing
// else: internal/catalog/sqlitestore (the embedded default) and
// internal/catalog/pgstore (several masters on one PostgreSQL), both on the
// statements they share in internal/catalog/sqlstore.
//
// Every invariant the logic relies on is a constraint or a row lock, never
// the fact that SQLite has a single writer:
//
//   - a target's sequence numbers come from a counter on its row, incremented
//     in the posting transaction, whose row lock is held to commit: commit
//     order is sequence order (NextSeqs);
//   - idempotency keys, run ids per target, event keys and names are unique
//     constraints; a change that loses a race for one is retried or refused;
//   - a run upload is guarded by its revision per (target, run id);
//   - a read that decides a write takes the rows it decides on (LockJobs,
//     LockTarget, LockGroup and ShareGroups), or the write is guarded by what it read (a job's version,
//     an instruction's or a token's state) and the transaction is retried when
//     the guard fails.

// ErrRetry is returned, wrapped, by a store or by the logic when a
// transaction lost a race (a deadlock, a serialization failure, a guarded
// update that found the row changed): running the whole transaction again
// is correct and will see the winner's changes.
var ErrRetry = errors.New("catalog: transaction must be retried")

// ErrDuplicate is returned, wrapped, when a write breaks a unique
// constraint: the name, key or id is taken.
var ErrDuplicate = errors.New("catalog: duplicate")

// ErrNotLeader says that this master does not hold the singleton duties:
// the database ended its lease's session (the master froze or was cut off
// from it) and another master may run them now.
var ErrNotLeader = &muster.Error{Code: muster.EPRECONDITION,
	Message: "this master does not hold the catalog's singleton duties: its lease on them ended, and another master may run them"}

// noRows reports whether err says a query for one row found none.
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

//go:generate go run ./internal/timedgen

// Store is a catalog database.
type Store interface {
	Reads
	// Update runs fn in a write transaction and commits it if fn returns
	// nil. The store documents the transaction's isolation level.
	Update(ctx context.Context, fn func(Tx) error) error
	// DryRun runs fn in a write transaction and rolls it back whatever
	// happens.
	DryRun(ctx context.Context, fn func(Tx) error) error
	// Shared reports whether several masters may use the store at once.
	Shared() bool
	// Listen delivers, until ctx ends, what other masters' transactions
	// committed (see Tx.Notify). After a break in delivery it calls fn with
	// missed set, since notifications may have been lost. A store that is not
	// shared returns at once.
	Listen(ctx context.Context, fn func(c Commit, missed bool))
	// SetPeers tells the store whether other masters serve the catalog
	// with this one, as their records in it say; until told, it assumes
	// they do. With none, a commit tells no one (Tx.Notify): the
	// notification would reach only this master's own listener, which
	// ignores it, and costs the commit the time to deliver it.
	SetPeers(others bool)
	// Lead calls held(true) when this master takes the singleton duties and
	// held(false) when it loses them, until ctx ends. A store that is not
	// shared holds them at once.
	Lead(ctx context.Context, held func(bool))
	// HoldsDuties asks the database whether this master holds the
	// singleton duties now: nil when it does, ErrNotLeader when it does not
	// (its lease's session ended: another master may run them), another
	// error when the database does not answer. A master calls it before
	// each act of a duty that must not be done twice (a notification sent),
	// since it hears of losing the duties only at Lead's next check. A store
	// that is not shared always holds them.
	HoldsDuties(ctx context.Context) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Describe names the database for a person, without secrets.
	Describe() string
	Close() error
}

// Reads are the queries, usable in a transaction or outside one. A query
// for one row that finds none returns an error wrapping sql.ErrNoRows.
type Reads interface {
	Meta(ctx context.Context, key string) (string, bool, error)
	LastSeqs(ctx context.Context) (map[int64]int64, error)
	FindTargets(ctx context.Context, f TargetQuery) ([]TargetRow, error)
	// FindPresence returns what DetectPresence judges of every active
	// target, by name.
	FindPresence(ctx context.Context) ([]PresenceRow, error)
	FindTargetByName(ctx context.Context, name string) (TargetRow, error)
	// FindGoneTargets returns, of names, those no live target holds but a
	// target that left did: the last to hold each.
	FindGoneTargets(ctx context.Context, names []string) (map[string]TargetRow, error)
	// DepartedWithRuns returns the targets that left the fleet (defected,
	// or deleted and waiting to collect their DEFECT) and still have a run
	// recorded running, a START held back by max_parallel_targets, or a
	// START pending whose run is not recorded: what a catalog of a release
	// that did not end them at departure holds, or, for a START, of one
	// that posted it to a target as it left.
	DepartedWithRuns(ctx context.Context) ([]TargetRow, error)
	TargetIDs(ctx context.Context, names []string) (map[string]int64, error)
	ActiveTargets(ctx context.Context) (map[string]int64, error)
	// PollState returns what a poll needs of its target's row.
	PollState(ctx context.Context, id int64) (lastSeq int64, paused bool, err error)
	FindCert(ctx context.Context, serial string) (CertRow, error)
	// FindCerts returns the certificates of the serials that exist, with
	// their targets, in no particular order.
	FindCerts(ctx context.Context, serials []string) ([]CertRow, error)
	NewestCert(ctx context.Context, targetID int64) (CertRow, error)
	FindEnlistToken(ctx context.Context, hash string) (EnlistTokenRow, error)
	// FindEnlistTokens returns every enlistment token kept, in any state,
	// oldest first.
	FindEnlistTokens(ctx context.Context) ([]EnlistTokenRow, error)
	CountAPITokens(ctx context.Context) (int, error)
	// FindAPIKey returns the key with the hash, whatever its state.
	FindAPIKey(ctx context.Context, hash string) (APIKeyRow, error)
	// FindAPIKeys returns the keys by name (the one named, unless name is
	// ""), whatever their state.
	FindAPIKeys(ctx context.Context, name string) ([]APIKeyRow, error)
	// FindConsoleLink and FindConsoleSession return a login link or a
	// console session by the hash of its secret, with its key.
	FindConsoleLink(ctx context.Context, hash string) (ConsoleTokenRow, error)
	FindConsoleSession(ctx context.Context, hash string) (ConsoleTokenRow, error)
	// FindOutcomes returns every job's last outcome on each of its
	// targets, in no order: the job × target matrix, read lean.
	FindOutcomes(ctx context.Context) ([]OutcomeRow, error)
	// FindAudit returns audit entries, newest first.
	FindAudit(ctx context.Context, f AuditFilter) ([]muster.AuditEntry, error)
	FindJobs(ctx context.Context, f JobQuery) ([]JobRow, error)
	GroupTargets(ctx context.Context, jobID int64) (map[string]Member, error)
	FindGroups(ctx context.Context) ([]muster.Group, error)
	GroupIDs(ctx context.Context, names []string) (map[string]int64, error)
	GroupMembers(ctx context.Context, groupID int64) (map[string]int64, error)
	JobsNamingGroup(ctx context.Context, groupID int64) ([]string, error)
	PendingInstructions(ctx context.Context, targetID, after int64, limit int) ([]InstructionRow, error)
	// PollPending is PollState and PendingInstructions in one statement,
	// of one snapshot.
	PollPending(ctx context.Context, targetID, after int64, limit int) (lastSeq int64, paused bool, ins []InstructionRow, err error)
	// PollPendingOf is PollPending for several targets at once, in one
	// statement: after maps each to its cursor. A target without a row
	// has no entry.
	PollPendingOf(ctx context.Context, after map[int64]int64, limit int) (map[int64]PollRow, error)
	// PendingInstructionsOf is PendingInstructions for several targets at
	// once, in one statement: after maps each to its cursor.
	PendingInstructionsOf(ctx context.Context, after map[int64]int64, limit int) (map[int64][]InstructionRow, error)
	FindInstructions(ctx context.Context, f InstructionFilter) ([]StoredInstruction, error)
	InstructionsBySeq(ctx context.Context, target string, seq int64) ([]InstructionRow, error)
	WasSent(ctx context.Context, targetID int64, job string) (bool, error)
	FindStart(ctx context.Context, key string) (request, response string, ok bool, err error)
	ActiveStarts(ctx context.Context, job string, now time.Time) (int, error)
	QueuedStarts(ctx context.Context, jobID int64, limit int) ([]QueuedStartRow, error)
	JobsWithQueuedStarts(ctx context.Context) ([]string, error)
	// FindRollouts returns rollouts, newest first.
	FindRollouts(ctx context.Context, q RolloutQuery) ([]RolloutRow, error)
	// RolloutTargets returns the targets of the rollouts named, in order,
	// each with its run and its START as they stand.
	RolloutTargets(ctx context.Context, rolloutIDs []int64) ([]RolloutTargetRow, error)
	// JobsWithRunningRollouts returns the jobs that have a running rollout.
	JobsWithRunningRollouts(ctx context.Context) ([]string, error)
	// JobsAwaitingRuns returns, in one statement, the jobs with held-back
	// STARTs and those with a running rollout: a run of theirs that ends
	// may release a START or a wave.
	JobsAwaitingRuns(ctx context.Context) (queued, rolling []string, err error)
	FindRuns(ctx context.Context, f RunFilter) ([]RunRow, error)
	// RunKey returns a run's row.
	RunKey(ctx context.Context, targetID int64, runID string) (int64, error)
	// RunOutputs returns the output chunks of runs (by row), in order.
	RunOutputs(ctx context.Context, runs []int64) ([]OutputRow, error)
	// OutputEnd returns where the chunks held of an attempt's output end.
	OutputEnd(ctx context.Context, run int64, attempt int) (int64, error)
	FindEvents(ctx context.Context, f EventFilter) ([]muster.Event, error)
	EventExists(ctx context.Context, key string) (bool, error)
	UndispatchedEvents(ctx context.Context, limit int) ([]muster.Event, error)
	NoSuccessWatches(ctx context.Context, job, target string) ([]NoSuccessRow, error)
	FindOperators(ctx context.Context, name string) ([]OperatorRow, error)
	AlertsNotifying(ctx context.Context, operatorID int64) ([]string, error)
	FindAlerts(ctx context.Context, name string) ([]muster.Alert, error)
	AlertRoutes(ctx context.Context) ([]AlertRoute, error)
	// DueDeliveries returns pending deliveries due by now, the earliest
	// first: at most perAddress to each (channel, address), limit in all.
	DueDeliveries(ctx context.Context, now time.Time, perAddress, limit int) ([]PendingDelivery, error)
	// PendingDeliveries returns those of the deliveries uids that are
	// still pending, as they are now (address, operator's secret), in no
	// order.
	PendingDeliveries(ctx context.Context, uids []string) ([]PendingDelivery, error)
	// NextDeliveryAt returns when the earliest pending delivery due after
	// after is due.
	NextDeliveryAt(ctx context.Context, after time.Time) (time.Time, bool, error)
	FindDeliveries(ctx context.Context, f DeliveryFilter) ([]StoredDelivery, error)
	FindMasters(ctx context.Context, seenSince time.Time) ([]MasterRow, error)
	// GaugeRows reads what the master's metrics show as gauges, in a few
	// statements whatever the size of the fleet.
	GaugeRows(ctx context.Context) (GaugeRows, error)
	// StartsPosted returns when the STARTs of a target's runs named were
	// posted, for those that came from a START.
	StartsPosted(ctx context.Context, targetID int64, runIDs []string) (map[string]time.Time, error)
	// StartsWithoutRun returns the STARTs q selects whose run is not
	// recorded, by target then sequence number.
	StartsWithoutRun(ctx context.Context, q StartQuery) ([]StartRow, error)
}

// Tx is a write transaction: the reads, and the writes.
type Tx interface {
	Reads

	// Notify tells the other masters, when the transaction commits, what it
	// changed. A store that is not shared does nothing.
	Notify(ctx context.Context, c Commit) error
	SetMeta(ctx context.Context, key, value string) error
	// InsertMeta sets key unless it is set, and reports whether it did.
	InsertMeta(ctx context.Context, key, value string) (bool, error)

	// LockTarget takes the target's row until commit (a no-op where a
	// transaction is alone anyway).
	LockTarget(ctx context.Context, id int64) error
	// NextSeqs increments each target's sequence counter by the count
	// given and returns the new values; the rows stay locked to commit. A
	// target no longer active (its departure committed after the
	// transaction read it) takes no number: ErrRetry, so that nothing is
	// posted to a target that will never collect it.
	NextSeqs(ctx context.Context, counts map[int64]int) (map[int64]int64, error)
	// RaiseSeq moves a target's counter to at least atLeast and returns it.
	RaiseSeq(ctx context.Context, id, atLeast int64) (int64, error)
	InsertTarget(ctx context.Context, t TargetRow) (int64, error)
	SetTargetState(ctx context.Context, id int64, state string, d Departure) error
	SetTargetDetails(ctx context.Context, id int64, location, description string) error
	SetPaused(ctx context.Context, ids []int64, paused bool) error
	// SetSeenOffline records the offline detector's view of a target and
	// reports whether it changed it.
	SetSeenOffline(ctx context.Context, id int64, offline bool) (bool, error)
	// ClearTarget drops a leaving target's open instructions and removes it
	// from every job, group and start queue.
	ClearTarget(ctx context.Context, id int64) error
	// LiftTombstone marks a deleted target defected once it has collected
	// its DEFECT, and reports whether it did.
	LiftTombstone(ctx context.Context, id int64, at time.Time) (bool, error)
	FlushHeartbeats(ctx context.Context, beats map[int64]Heartbeat) error

	InsertCert(ctx context.Context, c CertRow) error
	ReplaceCert(ctx context.Context, serial string, at time.Time) error
	DeleteReplacedCerts(ctx context.Context, targetID int64, expiredBefore time.Time) error
	InsertEnlistToken(ctx context.Context, t EnlistTokenRow) error
	DeleteEnlistTokens(ctx context.Context, expiredBefore time.Time) error
	// UseEnlistToken marks a token used, unless it was used or revoked,
	// and reports whether it did.
	UseEnlistToken(ctx context.Context, id int64, at time.Time) (bool, error)
	// RevokeEnlistToken marks a token revoked, unless it was used or
	// revoked, and reports whether it did.
	RevokeEnlistToken(ctx context.Context, id int64, at time.Time, by string) (bool, error)
	// LockAPIKeys returns every API key, taken until commit: a revocation
	// decides on the others (the last admin key stays).
	LockAPIKeys(ctx context.Context) ([]APIKeyRow, error)
	InsertAPIKey(ctx context.Context, k APIKeyRow, hash string) error
	// ResetAPIKey gives the named key the hash, role and scopes of k, with
	// no expiry, not revoked, creating it if needed, and ends the console
	// sessions and login links of its old secret.
	ResetAPIKey(ctx context.Context, k APIKeyRow, hash string) error
	// DeleteAPIKey deletes a key with its console sessions and login links.
	DeleteAPIKey(ctx context.Context, id int64) error
	// SetAPIKeyScopes replaces a key's scopes.
	SetAPIKeyScopes(ctx context.Context, id int64, scopes []string) error
	// RevokeAPIKey marks an unrevoked key revoked and reports whether it did.
	RevokeAPIKey(ctx context.Context, id int64, at time.Time, by string) (bool, error)
	// SetKeysUsed moves each key's last use forward to the time given (never
	// back: several masters write it).
	SetKeysUsed(ctx context.Context, used map[int64]time.Time) error
	InsertConsoleLink(ctx context.Context, t ConsoleTokenRow, hash string) error
	// UseConsoleLink marks an unused link used and reports whether it did.
	UseConsoleLink(ctx context.Context, id int64, at time.Time) (bool, error)
	InsertConsoleSession(ctx context.Context, t ConsoleTokenRow, hash, source string) error
	DeleteConsoleSession(ctx context.Context, hash string) error
	// DeleteConsoleTokens deletes the links and sessions that expired
	// before a time.
	DeleteConsoleTokens(ctx context.Context, expiredBefore time.Time) error
	// InsertAudit appends entries to the audit log.
	InsertAudit(ctx context.Context, entries []muster.AuditEntry) error
	// PruneAudit deletes the entries made before a time.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)

	// ShareGroups takes every group's row, shared, until commit: a write of
	// jobs, which reads the groups they name and their members, against a
	// change of a group's members or name (LockGroup). Groups are taken
	// before jobs.
	ShareGroups(ctx context.Context) error
	// LockGroup takes a group's row, exclusively, until commit: a change of
	// its members or name, before it reads the jobs naming it.
	LockGroup(ctx context.Context, id int64) error
	// LockJobs takes the named jobs' rows (every job's when names is nil)
	// until commit.
	LockJobs(ctx context.Context, names []string) error
	InsertJob(ctx context.Context, j JobRow) (int64, error)
	// UpdateJob stores a new definition if the job is still at version
	// from, and reports whether it was.
	UpdateJob(ctx context.Context, j JobRow, from int64) (bool, error)
	DeleteJob(ctx context.Context, id int64) error
	SetJobGroups(ctx context.Context, jobID int64, groupIDs []int64) error
	InsertJobTarget(ctx context.Context, jobID, targetID int64, explicit bool) error
	DeleteJobTarget(ctx context.Context, jobID, targetID int64) error
	SetJobTargetExplicit(ctx context.Context, jobID, targetID int64, explicit bool) error

	InsertGroup(ctx context.Context, name string, at time.Time) error
	RenameGroup(ctx context.Context, name, newName string) (bool, error)
	DeleteGroup(ctx context.Context, id int64) error
	AddGroupMember(ctx context.Context, groupID, targetID int64) error
	RemoveGroupMember(ctx context.Context, groupID, targetID int64) (bool, error)

	// Supersede marks superseded the failed instructions of job on the
	// targets, and the pending ones whose operation is in moot. job ""
	// means every job's.
	Supersede(ctx context.Context, targetIDs []int64, job string, moot []muster.Operation) error
	InsertInstructions(ctx context.Context, ins []InstructionRow) error
	MarkSent(ctx context.Context, targetIDs []int64, job string) error
	// AckInstructions records the outcomes of pending instructions, and
	// returns the operation and outcome of each it changed.
	AckInstructions(ctx context.Context, targetID int64, acks []AckRow, at time.Time) ([]Acked, error)
	// SetInstructionStatus moves an instruction from one of the statuses
	// in from to status, and reports whether it did.
	SetInstructionStatus(ctx context.Context, targetID, seq int64, from []muster.InstructionStatus, status muster.InstructionStatus) (bool, error)
	// CloseInstructions moves every instruction of the target in one of
	// the statuses from to status.
	CloseInstructions(ctx context.Context, targetID int64, from []muster.InstructionStatus, status muster.InstructionStatus) error
	PruneDownloaded(ctx context.Context, keep int) (int64, error)

	// ClaimStart makes the reads a start request begins with, in one round
	// trip where the store can (see StartClaim): it records the request's
	// idempotency key, unless the key is taken and not forgotten (a
	// concurrent claim of the same key waits for the first to commit or
	// roll back); it reads the job as FindJobs with Posting does; and it
	// may take the next sequence number of the one target the START goes
	// to, as NextSeqs does.
	ClaimStart(ctx context.Context, c StartClaim) (ClaimedStart, error)
	SetStartResponse(ctx context.Context, key, response string) error
	// DeleteStarts forgets the idempotency keys recorded before a time,
	// and returns how many.
	DeleteStarts(ctx context.Context, before time.Time) (int64, error)
	InsertQueuedStart(ctx context.Context, q QueuedStartRow) error
	// DeleteQueuedStart removes a queue entry and reports whether it was
	// there: whoever removes it posts its START.
	DeleteQueuedStart(ctx context.Context, id int64) (bool, error)
	// DeleteQueuedStarts drops the STARTs held back for a job (any job
	// when jobID is 0) on the targets (any target when targetIDs is nil),
	// and returns those it dropped, each with its job's name.
	DeleteQueuedStarts(ctx context.Context, jobID int64, targetIDs []int64) ([]QueuedStartRow, error)
	InsertRollout(ctx context.Context, r RolloutRow) (int64, error)
	// PruneRollouts deletes the rollouts, of one job or every job, that
	// ended before a time, with their targets, and returns how many.
	PruneRollouts(ctx context.Context, job string, endedBefore time.Time) (int64, error)
	InsertRolloutTargets(ctx context.Context, ts []RolloutTargetRow) error
	// AdvanceRollout moves a running rollout's current wave from one wave
	// to the next, and reports whether it did: whoever moves it posts the
	// wave.
	AdvanceRollout(ctx context.Context, id int64, from, to int) (bool, error)
	// EndRollout moves a running rollout to state, and reports whether it
	// did.
	EndRollout(ctx context.Context, id int64, state muster.RolloutState, reason string, at time.Time) (bool, error)

	// UpsertRuns stores runs at their revisions: one not newer than the
	// revision held changes nothing. It returns, per run, whether it
	// changed and the run's row.
	UpsertRuns(ctx context.Context, targetID int64, runs []RunRow, at time.Time) ([]RunUpsert, error)
	// RunningRuns returns the runs a target last reported running, oldest
	// first.
	RunningRuns(ctx context.Context, targetID int64) ([]RunRow, error)
	// TargetsRunning returns the active targets, by name, where a run of
	// job is recorded running.
	TargetsRunning(ctx context.Context, job string) (map[string]int64, error)
	// SetLastOutcome makes run the last outcome of its job on its target,
	// unless a run recorded later (a higher row) is already.
	SetLastOutcome(ctx context.Context, targetID int64, run RunRow, row int64) error
	SetLastSuccess(ctx context.Context, targetID int64, job string, at time.Time) error
	// InsertOutputs stores chunks of output, each unless one is held at
	// its place.
	InsertOutputs(ctx context.Context, chunks []OutputRow) error
	// PurgeRuns deletes finished runs (see PurgeRequest) and returns how
	// many it deleted of each job.
	PurgeRuns(ctx context.Context, job string, startedBefore *time.Time, keepPerJob int) (map[string]int64, error)

	// RaiseEvent records an event under key unless one is recorded under it,
	// and reports whether it did.
	RaiseEvent(ctx context.Context, key string, e muster.Event, raisedAt time.Time) (bool, error)
	// MarkDispatched marks the events with the given ids dispatched, and
	// forgets the alert changes no event waiting to be matched precedes.
	MarkDispatched(ctx context.Context, ids []int64) error
	PruneEvents(ctx context.Context, raisedBefore time.Time) (int64, error)

	InsertOperator(ctx context.Context, op OperatorRow) error
	// LockOperator returns the operator's row, taken until commit.
	LockOperator(ctx context.Context, name string) (OperatorRow, error)
	UpdateOperator(ctx context.Context, op OperatorRow) error
	DeleteOperator(ctx context.Context, id int64) error
	FailDeliveries(ctx context.Context, operatorID int64, reason string) error
	// ReaddressDeliveries sends an operator's notifications pending on a
	// channel to address, or, when it is "", fails them with reason. It
	// returns how many it changed.
	ReaddressDeliveries(ctx context.Context, operatorID int64, channel, address, reason string) (int64, error)
	InsertAlert(ctx context.Context, a muster.Alert, operatorIDs []int64) error
	SetAlertEnabled(ctx context.Context, name string, enabled bool) (bool, error)
	DeleteAlert(ctx context.Context, name string) (bool, error)
	// InsertDelivery records a delivery unless the (event, alert, operator,
	// channel) has one, and reports whether it did.
	InsertDelivery(ctx context.Context, d DeliveryRow) (bool, error)
	RecordDeliveryAttempt(ctx context.Context, uid string, status muster.DeliveryStatus, lastErr string, next, delivered *time.Time) error

	// UpsertMaster records that a master serves the catalog, unless
	// another master (of another name) seen since liveSince has recorded
	// the URL, and reports whether it did.
	UpsertMaster(ctx context.Context, m MasterRow, liveSince time.Time) (bool, error)
}

// Target states in the catalog.
const (
	TargetActive   = "active"
	TargetDeleted  = "deleted" // a tombstone: may fetch only its DEFECT
	TargetDefected = "defected"
)

// How targets leave (TargetRow.DefectedHow).
const (
	DepartureDefected = "defected" // the target defected itself
	DepartureDeleted  = "deleted"  // deleted on the master; it collects its DEFECT
	DepartureForced   = "forced"   // deleted with --force: no DEFECT posted
)

// Departure is how a target leaves, by whom, and when it is defected (nil
// while a deleted target waits to collect its DEFECT).
type Departure struct {
	How string
	By  string
	At  *time.Time
}

// Member is a target in one or more of a job's groups: its id, and the
// names of those groups, sorted.
type Member struct {
	ID     int64
	Groups []string
}

// TargetRow is a target as the catalog stores it.
type TargetRow struct {
	ID          int64
	UID         string
	Name        string
	State       string
	Location    string
	Description string
	EnlistedAt  time.Time
	EnlistedBy  string
	DefectedAt  *time.Time
	Paused      bool
	SeenOffline bool
	LastSeq     int64
	// The heartbeat, as last written.
	LastPoll         *time.Time
	LocalTimeAtPoll  time.Time
	TimeZone         string
	UTCOffsetMinutes int
	ClockSkewMS      int64
	PollInterval     int
	Version          string
	Protocol         int
	SpoolDepth       int
	SpoolDropped     int
	ClockOffsetMS    *int64
	DiskFull         bool
	ProcessTracking  string
	// How the target left (a Departure How) and who made it, once it
	// left or was deleted.
	DefectedHow, DefectedBy string
	// Counts of the target's pending and failed instructions, filled in
	// when the query asks for them.
	Unread, Blocking int
}

// PresenceRow is what DetectPresence reads of a target: no more than it
// judges presence by, so that a fleet's scan stays narrow.
type PresenceRow struct {
	ID           int64
	Name         string
	LastPoll     *time.Time // the heartbeat's time as last written
	PollInterval int
	SeenOffline  bool
}

// TargetQuery selects targets: active and deleted ones (not defected).
type TargetQuery struct {
	Name       string // exact, normalized
	ActiveOnly bool
	Defected   bool // only defected targets instead
	WithCounts bool // fill in Unread and Blocking
}

// CertRow is a certificate the catalog issued, with its target.
type CertRow struct {
	Serial     string
	TargetID   int64
	IssuedAt   time.Time
	NotAfter   time.Time
	KeyHash    string
	ReplacedAt *time.Time
	Target     TargetRow // ID, UID, Name, State, Paused, PollInterval
}

// EnlistTokenRow is an enlistment token, by its hash.
type EnlistTokenRow struct {
	ID         int64
	Hash       string
	TargetName string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time
	UsedAt     *time.Time
	RevokedAt  *time.Time
	RevokedBy  string
}

// JobQuery selects jobs.
type JobQuery struct {
	Name     string // one job by name
	TargetID int64  // the jobs that run on a target
	// WithoutTargets leaves out each job's targets and outcomes, for a
	// list of definitions that reads them apart (FindOutcomes).
	WithoutTargets bool
	// Posting reads only what posting an instruction needs: each target's
	// id and name, without the job's groups, the groups each target is in,
	// or the last outcomes, which a START or a STOP does not use.
	Posting bool
}

// StartClaim is what a start request reads before it posts (Tx.ClaimStart).
type StartClaim struct {
	// Key, when set, is the idempotency key recorded with Request at At.
	// A key recorded before Forgotten counts as free: it is recorded
	// anew, whether or not DeleteStarts has deleted it yet.
	Key, Request  string
	At, Forgotten time.Time
	// Job is the job to start, read as JobQuery.Posting reads it.
	Job string
	// One says the START goes to one target: Target, or, when Target is
	// empty, the job's only target if it has exactly one. That target's
	// next sequence number is taken, its row locked to commit as NextSeqs
	// locks it, if the key was claimed (or none given), the job runs on
	// the target, and the job's definition sets no max_parallel_targets
	// (whose count of runs takes the job's row first). The caller, which
	// uses the number for the START, posts nothing else to the target
	// before it.
	One    bool
	Target string
}

// ClaimedStart is what Tx.ClaimStart found.
type ClaimedStart struct {
	// Claimed: the key was recorded, or none was given. When it was not,
	// the key was used before (FindStart), and no sequence number was
	// taken.
	Claimed bool
	Job     JobRow
	Found   bool // the job exists
	// TargetID and Seq are the target's sequence number taken (see
	// StartClaim.Target); both are 0 when none was.
	TargetID, Seq int64
}

// OutcomeRow is the last outcome of a job on one of its targets.
type OutcomeRow struct {
	Job           string
	Target        string
	LastRunID     string
	LastStatus    muster.RunStatus
	LastStartedAt *time.Time
}

// JobRow is a job as stored: its definition is the JSON of muster.Job
// without targets, groups and version, which have rows and a column.
type JobRow struct {
	ID         int64
	Name       string
	Version    int64
	Definition []byte
	// Enabled, Scheduled and Category are copied out of the definition,
	// for queries. With overrides, Enabled and Scheduled say whether the
	// job is enabled, and scheduled, on any target.
	Enabled   bool
	Scheduled bool
	Category  string
	CreatedAt time.Time
	UpdatedAt time.Time
	CreatedBy string
	UpdatedBy string
	Groups    []string       // the groups the job names, sorted
	Targets   []JobTargetRow // its effective targets, by name
}

// JobTargetRow is one effective target of a job, with the job's last
// outcome there.
type JobTargetRow struct {
	TargetID       int64
	Target         string
	Explicit       bool     // the job names the target
	Via            []string // the job's groups the target is in, sorted
	LastRunID      string
	LastStatus     muster.RunStatus
	LastMessage    string
	LastStartedAt  *time.Time
	LastDurationMS int64
	LastSuccessAt  *time.Time
}

// InstructionRow is one entry of a download list.
type InstructionRow struct {
	TargetID  int64
	Target    string // filled in by InstructionsBySeq
	Seq       int64
	Operation muster.Operation
	Job       string
	Payload   []byte
	Status    muster.InstructionStatus
	PostedAt  time.Time
	// RunID and ExpiresAt are a START's.
	RunID     string
	ExpiresAt *time.Time
}

// StartQuery selects START instructions: those on the targets in one of
// the statuses, of the job (unless Job is ""), with the sequence numbers
// named (unless none are), after the sequence number After.
type StartQuery struct {
	TargetIDs []int64
	Statuses  []muster.InstructionStatus
	Job       string
	Seqs      []int64
	After     int64
}

// StartRow is a START instruction, with the error its target reported.
type StartRow struct {
	InstructionRow
	Error string
}

// PollRow is what a poll reads of its target, in one snapshot: the last
// sequence number posted to it, whether it is paused, and its pending
// instructions after the poll's cursor, in order.
type PollRow struct {
	LastSeq      int64
	Paused       bool
	Instructions []InstructionRow
}

// AckRow is the outcome of one instruction as a target reported it.
type AckRow struct {
	Seq    int64
	Status muster.InstructionStatus
	Error  string
}

// Acked is an instruction whose outcome an acknowledgement recorded.
type Acked struct {
	Operation muster.Operation
	Status    muster.InstructionStatus
}

// QueuedStartRow is a START held back by a job's max_parallel_targets.
type QueuedStartRow struct {
	ID        int64
	JobID     int64
	TargetID  int64
	Payload   []byte
	CreatedAt time.Time
	Job       string // set by DeleteQueuedStarts
}

// RolloutQuery selects rollouts.
type RolloutQuery struct {
	Job         string // a job's, by name
	ID          int64  // one rollout
	RunningOnly bool
	Limit       int // 0: no limit
}

// RolloutRow is a rollout as stored. Request is what each START of it
// carries, as JSON.
type RolloutRow struct {
	ID          int64
	JobID       int64
	Job         string
	State       muster.RolloutState
	Reason      string
	Batch       string
	WaveSize    int
	Waves       int
	MaxFailures int
	Wave        int // the last wave posted, from 1
	Request     []byte
	CreatedAt   time.Time
	CreatedBy   string
	EndedAt     *time.Time
}

// RolloutTargetRow is one target of a rollout, in the order the rollout
// starts them, with its wave and its run's id.
type RolloutTargetRow struct {
	RolloutID int64
	Position  int
	Wave      int
	TargetID  int64
	Target    string
	RunID     string
	// Filled in by RolloutTargets: the run, once recorded, and the START,
	// once posted.
	RunStatus   muster.RunStatus
	DurationMS  int64
	Message     string
	StartStatus muster.InstructionStatus
	StartError  string
	ExpiresAt   *time.Time
	// Held: a START of the job is held back for the target on the master
	// (max_parallel_targets).
	Held bool
	// Gone: the target was deleted (or defected) since; a run it has not
	// uploaded never will be.
	Gone bool
}

// RunRow is a run as a target reported it.
type RunRow struct {
	muster.Run
	Revision int64
	// Set by FindRuns: the run's row, and the target's heartbeat, to tell
	// a run whose target went silent.
	Key          int64
	TargetID     int64
	LastPoll     *time.Time
	PollInterval int
	UpdatedAt    time.Time
}

// OutputRow is a chunk of one attempt's output: Data follows the first
// Offset bytes of it.
type OutputRow struct {
	Run     int64
	Attempt int
	Offset  int64
	Data    []byte
}

// RunHeld is what the catalog held of a run before an upload replaced it,
// for telling what the upload changed.
type RunHeld struct {
	Status muster.RunStatus
	// Started is set when a step of the run is held.
	Started bool
}

// RunUpsert is what storing one run did.
type RunUpsert struct {
	Changed bool
	Row     int64 // the run's row, in the order the catalog first recorded runs
	// Held is what the run held before, when it changed a run already
	// recorded; nil when it recorded the run.
	Held *RunHeld
}

// NoSuccessRow is an enabled, scheduled job on an active target, with when
// it last succeeded there and when it was first sent there.
type NoSuccessRow struct {
	Job       string
	TargetID  int64
	Target    string
	SuccessAt *time.Time
	SentAt    *time.Time
	// WatchedSince is when the job last became enabled and scheduled: a
	// stretch without success begins no earlier.
	WatchedSince *time.Time
	// Definition is the job's stored definition, and Via the job's groups
	// the target is in: with them, a job with overrides is watched only
	// where it is enabled and scheduled.
	Definition []byte
	Via        []string
}

// OperatorRow is an operator with its webhook secret.
type OperatorRow struct {
	ID     int64
	Secret string
	muster.Operator
}

// AlertRoute is an alert with one of the operators it notifies.
type AlertRoute struct {
	Alert   muster.Alert
	OpID    int64
	OpName  string
	Webhook string
	Email   string
	// ChangedAfter is the last event waiting to be matched when the alert
	// was last enabled or disabled; 0 once all those are matched.
	ChangedAfter int64
}

// DeliveryRow is a notification to record.
type DeliveryRow struct {
	UID          string
	EventID      int64
	Alert        string
	OperatorID   int64
	Operator     string
	Channel      string
	Address      string
	Status       muster.DeliveryStatus
	LastError    string
	CreatedAt    time.Time
	NextAttempt  *time.Time
	DeliveredAt  *time.Time
	AttemptCount int
}

// MasterRow is a master serving the catalog.
type MasterRow struct {
	Name      string
	URL       string // where targets reach it
	StartedAt time.Time
	SeenAt    time.Time
}
