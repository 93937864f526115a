package muster

import "time"

// Kinds of actor: who made a change the audit log records.
const (
	ActorKey    = "key"    // an operator, by an API key
	ActorTarget = "target" // a target, by its certificate (enlist, defect)
	ActorMaster = "master" // the master itself (its first admin key, retention)
)

// Actor is who makes a change: the API key (its name and role), the target
// or the master, and the address the request came from. A key's scope
// limits what it may change; the audit log does not repeat it.
type Actor struct {
	Name   string `json:"actor"`
	Kind   string `json:"actor_kind"`
	Role   string `json:"role,omitempty"`
	Source string `json:"source,omitempty"`
	Scope  Scope  `json:"-"`
}

// String names the actor for a person: "key ci (operator)", "target web1".
func (a Actor) String() string {
	if a.Role != "" {
		return a.Kind + " " + a.Name + " (" + a.Role + ")"
	}
	return a.Kind + " " + a.Name
}

// Audited actions. The set is closed: each change the master makes on
// someone's behalf is recorded under one of these.
const (
	AuditJobCreate         = "job.create"
	AuditJobUpdate         = "job.update"
	AuditJobDelete         = "job.delete"
	AuditJobEnable         = "job.enable"
	AuditJobDisable        = "job.disable"
	AuditJobStart          = "job.start"
	AuditJobStop           = "job.stop"
	AuditGroupCreate       = "group.create"
	AuditGroupRename       = "group.rename"
	AuditGroupDelete       = "group.delete"
	AuditGroupAdd          = "group.add"
	AuditGroupRemove       = "group.remove"
	AuditTokenCreate       = "token.create"
	AuditTokenRevoke       = "token.revoke"
	AuditTargetEnlist      = "target.enlist"
	AuditTargetDefect      = "target.defect"
	AuditTargetDelete      = "target.delete"
	AuditTargetSet         = "target.set"
	AuditTargetPause       = "target.pause"
	AuditTargetResume      = "target.resume"
	AuditTargetResync      = "target.resync"
	AuditInstructionPost   = "instruction.post"
	AuditInstructionRetry  = "instruction.retry"
	AuditInstructionDelete = "instruction.delete"
	AuditHistoryPurge      = "history.purge"
	AuditOperatorCreate    = "operator.create"
	AuditOperatorUpdate    = "operator.update"
	AuditOperatorDelete    = "operator.delete"
	AuditAlertCreate       = "alert.create"
	AuditAlertEnable       = "alert.enable"
	AuditAlertDisable      = "alert.disable"
	AuditAlertDelete       = "alert.delete"
	AuditKeyCreate         = "apikey.create"
	AuditKeyRevoke         = "apikey.revoke"
	AuditLoginLinkCreate   = "loginlink.create"
)

// AuditEntry is one change in the audit log: when, by whom, from where,
// what it was done to, and what changed, one line each (an applied job's
// lines are its diff).
type AuditEntry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	Actor
	Action string `json:"action"`
	// Object names what the action was done to when it is neither a job
	// nor a target: "group web", "apikey ci", "operator oncall".
	Object  string   `json:"object,omitempty"`
	Jobs    []string `json:"jobs"`
	Targets []string `json:"targets"`
	Changes []string `json:"changes"`
}
