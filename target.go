package muster

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Target status values. A target is suspected offline when it has not polled
// for three poll intervals (master clock), and blocked while an instruction it
// failed to apply is neither superseded nor cleared. When both hold, the
// status is suspected offline; Flags lists every condition.
const (
	StatusNormal           = "normal"
	StatusSuspectedOffline = "suspected_offline"
	StatusBlocked          = "blocked"
	// StatusDefected is a target that left: it defected, or was deleted
	// and collected its DEFECT (or was deleted with --force). Its name is
	// free and its history stays.
	StatusDefected = "defected"
)

// Flags besides the statuses above.
const (
	// FlagDeleted marks a target deleted on the master that has not yet
	// collected its DEFECT (a tombstone).
	FlagDeleted = "deleted"
	// FlagPaused marks a paused target: it fires no schedules and records
	// STARTs as skipped.
	FlagPaused = "paused"
	// FlagDiskFull marks a target whose data directory is full: the
	// outcomes of its runs wait in its memory, and its schedules' fires are
	// recorded skipped, until space is freed.
	FlagDiskFull = "disk_full"
)

// Poll interval bounds and default, in seconds, as SQL Server Agent's.
const (
	DefaultPollInterval = 60
	MinPollInterval     = 10
	MaxPollInterval     = 28800
)

// MaxPollHold is the longest the master holds a poll open, whatever the poll
// interval, so that proxies with a 60 s idle timeout never cut one.
const MaxPollHold = 55 * time.Second

// Target is an enlisted server as the master sees it (SQL Server's
// sp_help_targetserver row).
type Target struct {
	Name                 string     `json:"name"`
	Status               string     `json:"status"`
	Flags                []string   `json:"flags"`
	Location             string     `json:"location"`
	Description          string     `json:"description"`
	LastPoll             *time.Time `json:"last_poll"`
	UnreadInstructions   int        `json:"unread_instructions"`
	BlockingInstructions int        `json:"blocking_instructions"`
	PollInterval         int        `json:"poll_interval"`
	LocalTime            *time.Time `json:"local_time"`
	TimeZone             string     `json:"time_zone"`
	UTCOffsetMinutes     int        `json:"utc_offset_minutes"`
	ClockSkewMS          int64      `json:"clock_skew_ms"`
	SpoolDepth           int        `json:"spool_depth"`
	SpoolDropped         int        `json:"spool_dropped"`
	// ClockOffsetMS is the target's clock minus the master's, as the target
	// measured it at its last SYNC-TIME (round-trip corrected); null if it
	// never did.
	ClockOffsetMS *int64 `json:"clock_offset_ms"`
	Version       string `json:"version"`
	Protocol      int    `json:"protocol"`
	// ProcessTracking is how the target finds and kills its runs'
	// processes: cgroup (each run in a cgroup of its own, killed whole) or
	// environment (by the MUSTER_RUN_ID each process carries); empty until
	// the target reports it.
	ProcessTracking string    `json:"process_tracking"`
	EnlistedAt      time.Time `json:"enlisted_at"`
	EnlistedBy      string    `json:"enlisted_by"`
	// DefectedAt is when a defected target left; DefectedBy who made it
	// leave (the target itself, or the API key that deleted it), also set
	// on a deleted target still waiting to collect its DEFECT; Departure
	// says how, in words.
	DefectedAt *time.Time `json:"defected_at,omitempty"`
	DefectedBy string     `json:"defected_by,omitempty"`
	Departure  string     `json:"departure,omitempty"`
}

// TargetState is what the master records about a target between polls; the
// status is derived from it when read.
type TargetState struct {
	LastPoll     time.Time // master clock; zero if never polled
	PollInterval int       // seconds
	Blocking     int       // failed instructions neither superseded nor cleared
}

// DeriveStatus computes a target's status and flags at now, as SQL Server's
// sp_help_targetserver does: suspected offline after 3 × poll interval
// without a poll, blocked while a failed instruction stands. (A held poll
// lasts at most one poll interval, so a connected target always has a
// recent poll.)
func DeriveStatus(now time.Time, s TargetState) (status string, flags []string) {
	flags = []string{}
	interval := s.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	offline := s.LastPoll.IsZero() || now.Sub(s.LastPoll) > 3*time.Duration(interval)*time.Second
	if offline {
		flags = append(flags, StatusSuspectedOffline)
	}
	if s.Blocking > 0 {
		flags = append(flags, StatusBlocked)
	}
	switch {
	case offline:
		return StatusSuspectedOffline, flags
	case s.Blocking > 0:
		return StatusBlocked, flags
	}
	return StatusNormal, flags
}

// Bounds of what operators and targets say of a target, in characters.
// An operator sets the location and the description; a target reports its
// location, who enlisted it, its time zone and its version.
const (
	MaxTargetLocation    = 200
	MaxTargetDescription = 1000
	MaxTargetEnlistedBy  = 100
	MaxTargetTimeZone    = 64
	MaxTargetVersion     = 64
)

// ValidateTargetText checks a text field of a target, whoever says it: at
// most max characters, no control characters (it is shown in one table
// cell, and printed to terminals).
func ValidateTargetText(field, s string, max int) error {
	if n := utf8.RuneCountInString(s); n > max {
		return Errorf(EINVALID, "%s: at most %d characters, not %d", field, max, n)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return Errorf(EINVALID, "%s: only printable text on one line, without control characters", field)
	}
	return nil
}

// ValidatePollInterval checks a poll interval in seconds against SQL Server
// Agent's range.
func ValidatePollInterval(field string, seconds int) error {
	if seconds < MinPollInterval || seconds > MaxPollInterval {
		return Errorf(EINVALID, "%s: the poll interval is %d to %d seconds, not %d", field, MinPollInterval, MaxPollInterval, seconds)
	}
	return nil
}
