package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// Heartbeat is what a poll tells the master about its target.
type Heartbeat struct {
	At           time.Time // master clock
	LocalTime    time.Time // target clock, with its offset
	TimeZone     string
	PollInterval int
	Version      string
	Protocol     int
	SpoolDepth   int
	SpoolDropped int
	// SpoolOldest is how long the oldest run the target has not uploaded
	// has waited in its spool (zero when none waits); nil when the target
	// does not say (before protocol 2's spool_oldest).
	SpoolOldest *time.Duration
	// ClockOffset is the offset the target measured at its last SYNC-TIME,
	// if it has done one.
	ClockOffset *time.Duration
	// DiskFull is set while the target's data directory is full: outcomes
	// of its runs wait in its memory until they can be written.
	DiskFull bool
	// ProcessTracking is how the target finds its runs' processes:
	// cgroup, or environment.
	ProcessTracking string
}

// OffsetMinutes is the target's UTC offset.
func (hb Heartbeat) OffsetMinutes() int {
	_, off := hb.LocalTime.Zone()
	return off / 60
}

// SkewMS is how far the target's clock was ahead of the master's when the
// heartbeat arrived, less the heartbeat's time on the network (the target
// read its clock when it sent it).
func (hb Heartbeat) SkewMS() int64 {
	if hb.LocalTime.IsZero() || hb.At.IsZero() {
		return 0
	}
	return hb.LocalTime.Sub(hb.At).Milliseconds()
}

// Enlistment is what a target sends to enlist, checked against a token.
type Enlistment struct {
	TokenHash  string
	Name       string
	UID        string
	Location   string
	EnlistedBy string
	Heartbeat  Heartbeat
	// Source is the address the enlistment came from, for the audit log.
	Source string
	// KeyHash is pki.KeyHash of the key the target asks a certificate for:
	// an enlistment sent again with its token and key, its reply lost, is
	// answered as the one it repeats.
	KeyHash string
}

// IssuedCert describes a certificate signed for a target.
type IssuedCert struct {
	Serial   string
	NotAfter time.Time
	KeyHash  string // pki.KeyHash of the certified key
}

// TargetIdentity is the catalog entry behind a client certificate.
type TargetIdentity struct {
	ID           int64
	UID          string
	Name         string
	State        string
	Paused       bool
	PollInterval int
	// ClockSkewMS is the target's clock skew as last measured.
	ClockSkewMS  int64
	CertNotAfter time.Time
	// CertSerial is the serial of the certificate the target presented,
	// when it was authenticated by one.
	CertSerial string
}

// Enlist consumes the token, creates the target and records the certificate
// that sign issues for it, in one transaction: a failure leaves the token
// unused and no target behind.
func (c *Catalog) Enlist(ctx context.Context, e Enlistment, sign func(uid string) (IssuedCert, error)) (TargetIdentity, error) {
	var id TargetIdentity
	err := c.update(ctx, func(tx *tx) error {
		tok, err := tx.FindEnlistToken(ctx, e.TokenHash)
		switch {
		case noRows(err):
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token is not valid for this master; create one with `muster token create --target %s`", e.Name)
		case err != nil:
			return err
		case tok.RevokedAt != nil:
			// Refused as an expired token is: it is as dead, and said so.
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token was revoked at %s by %s; ask an admin for another (`muster token create --target %s`)",
				tok.RevokedAt.UTC().Format(time.RFC3339), dashed(tok.RevokedBy), e.Name)
		case tok.UsedAt != nil:
			if again, ok, err := tx.repeatEnlistment(tok, e, sign); err != nil || ok {
				id = again
				return err
			}
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token was already used at %s; tokens are single-use: create another with `muster token create --target %s`", tok.UsedAt.Format(time.RFC3339), e.Name)
		case !tx.now.Before(tok.ExpiresAt):
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token expired at %s; create another with `muster token create --target %s`", tok.ExpiresAt.Format(time.RFC3339), e.Name)
		case tok.TargetName != e.Name:
			return muster.Errorf(muster.EFORBIDDEN, "the enlistment token was created for target %q, not %q", tok.TargetName, e.Name)
		}
		held, err := tx.FindTargetByName(ctx, e.Name)
		switch {
		case noRows(err):
		case err != nil:
			return err
		case held.State == TargetDeleted:
			return muster.Errorf(muster.ECONFLICT, "target %q was deleted and has not yet collected its DEFECT; wait for it to defect (or run `muster defect` on it), or, if it will not come back, forget it with `muster target delete %s --force`; then enlist again", e.Name, e.Name)
		default:
			return muster.Errorf(muster.ECONFLICT, "a target named %q is already enlisted (since %s); defect it (`muster defect` on that server) or delete it (`muster target delete %s`) before enlisting another with this name", e.Name, held.EnlistedAt.Format(time.RFC3339), e.Name)
		}
		// Another master may have used the token since it was read.
		if used, err := tx.UseEnlistToken(ctx, tok.ID, tx.now); err != nil || !used {
			return errors.Join(err, fmt.Errorf("enlistment token %d: %w", tok.ID, ErrRetry))
		}
		hb := e.Heartbeat
		interval := hb.PollInterval
		if interval == 0 {
			interval = muster.DefaultPollInterval
		}
		now := tx.now
		tid, err := tx.InsertTarget(ctx, TargetRow{UID: e.UID, Name: e.Name, Location: e.Location, EnlistedAt: now,
			EnlistedBy: e.EnlistedBy, LastPoll: &now, LocalTimeAtPoll: hb.LocalTime, TimeZone: hb.TimeZone,
			UTCOffsetMinutes: hb.OffsetMinutes(), ClockSkewMS: hb.SkewMS(), PollInterval: interval, Version: hb.Version,
			Protocol: hb.Protocol})
		if errors.Is(err, ErrDuplicate) {
			return fmt.Errorf("target %q: %w", e.Name, ErrRetry) // enlisted meanwhile: say so on the next run
		}
		if err != nil {
			return err
		}
		cert, err := sign(e.UID)
		if err != nil {
			return err
		}
		if err := tx.InsertCert(ctx, CertRow{Serial: cert.Serial, TargetID: tid, IssuedAt: now, NotAfter: cert.NotAfter, KeyHash: cert.KeyHash}); err != nil {
			return err
		}
		id = TargetIdentity{ID: tid, UID: e.UID, Name: e.Name, State: TargetActive, PollInterval: interval, CertNotAfter: cert.NotAfter}
		lines := []string{fmt.Sprintf("with an enlistment token created by %s", dashed(tok.CreatedBy)), "certificate " + cert.Serial}
		if e.EnlistedBy != "" {
			lines = append(lines, "enlisted by "+e.EnlistedBy+" (as the target reports it)")
		}
		if e.Location != "" {
			lines = append(lines, "location: "+e.Location)
		}
		return tx.audit(muster.Actor{Kind: muster.ActorTarget, Name: e.Name, Source: e.Source},
			muster.AuditEntry{Action: muster.AuditTargetEnlist, Targets: []string{e.Name}, Changes: lines})
	})
	return id, err
}

// repeatEnlistment answers an enlistment sent again after its reply was
// lost: the token's own, its target still enlisted from it, asking a
// certificate for the key of the target's newest (sign checks that the
// request holds that key). It issues another certificate for the same
// target and reports true; for any other use of a used token, false.
func (tx *tx) repeatEnlistment(tok EnlistTokenRow, e Enlistment, sign func(uid string) (IssuedCert, error)) (TargetIdentity, bool, error) {
	if e.KeyHash == "" || !tx.now.Before(tok.ExpiresAt) || tok.TargetName != e.Name {
		return TargetIdentity{}, false, nil
	}
	held, err := tx.FindTargetByName(tx.ctx, e.Name)
	if noRows(err) {
		return TargetIdentity{}, false, nil
	}
	if err != nil || held.State != TargetActive || !held.EnlistedAt.Equal(*tok.UsedAt) {
		return TargetIdentity{}, false, err
	}
	newest, err := tx.NewestCert(tx.ctx, held.ID)
	if noRows(err) {
		return TargetIdentity{}, false, nil
	}
	if err != nil || newest.KeyHash != e.KeyHash {
		return TargetIdentity{}, false, err
	}
	cert, err := sign(held.UID)
	if err != nil {
		return TargetIdentity{}, false, err
	}
	if err := tx.InsertCert(tx.ctx, CertRow{Serial: cert.Serial, TargetID: held.ID, IssuedAt: tx.now, NotAfter: cert.NotAfter, KeyHash: cert.KeyHash}); err != nil {
		return TargetIdentity{}, false, err
	}
	id := TargetIdentity{ID: held.ID, UID: held.UID, Name: held.Name, State: held.State, Paused: held.Paused, PollInterval: held.PollInterval, CertNotAfter: cert.NotAfter}
	return id, true, tx.audit(muster.Actor{Kind: muster.ActorTarget, Name: e.Name, Source: e.Source},
		muster.AuditEntry{Action: muster.AuditTargetEnlist, Targets: []string{e.Name},
			Changes: []string{"the same enlistment again, with its token and key (its reply was lost)", "certificate " + cert.Serial}})
}

// AuthenticateTarget returns the target a client certificate serial was
// issued to. It is called on every agent request: a resumed TLS session skips
// the certificate callbacks, so this lookup is what revokes a defected or
// deleted target. The row read is remembered for the next requests until
// a change that may touch it commits (see credentials).
func (c *Catalog) AuthenticateTarget(ctx context.Context, serial string) (TargetIdentity, error) {
	cert, err := c.findCert(ctx, serial)
	if noRows(err) {
		return TargetIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "this client certificate was not issued to any enlisted target")
	}
	if err != nil {
		return TargetIdentity{}, err
	}
	t := cert.Target
	id := TargetIdentity{ID: t.ID, UID: t.UID, Name: t.Name, State: t.State, Paused: t.Paused, PollInterval: t.PollInterval,
		ClockSkewMS: t.ClockSkewMS, CertNotAfter: cert.NotAfter, CertSerial: serial}
	if hb, ok := c.beats.lookup(t.ID); ok && hb.PollInterval > 0 {
		id.PollInterval, id.ClockSkewMS = hb.PollInterval, hb.SkewMS()
	}
	return id, nil
}

// TargetFilter selects targets.
type TargetFilter struct {
	Name   string // exact (normalized) name
	Status string // derived status or flag: normal, suspected_offline, blocked, paused, disk_full or deleted; or defected
}

// FindTargets lists active targets (and deleted ones waiting for their
// DEFECT) with their status derived at the catalog's clock, ordered by
// name. Status defected lists the targets that left instead, each with
// when, how and by whom (a name enlisted again is listed once for each
// time it left, newest first).
func (c *Catalog) FindTargets(ctx context.Context, f TargetFilter) ([]muster.Target, error) {
	q := TargetQuery{Name: f.Name, WithCounts: true, Defected: f.Status == muster.StatusDefected}
	rows, err := c.store.FindTargets(ctx, q)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	targets := []muster.Target{}
	for _, r := range rows {
		t := c.target(now, r)
		if f.Status != "" && !hasStatus(t, f.Status) {
			continue
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// target derives what operators see of a target row at now, overlaid with
// the heartbeat not yet written.
func (c *Catalog) target(now time.Time, r TargetRow) muster.Target {
	t := muster.Target{Name: r.Name, Location: r.Location, Description: r.Description, EnlistedAt: r.EnlistedAt, EnlistedBy: r.EnlistedBy,
		LastPoll: r.LastPoll, TimeZone: r.TimeZone, UTCOffsetMinutes: r.UTCOffsetMinutes, ClockSkewMS: r.ClockSkewMS,
		PollInterval: r.PollInterval, Version: r.Version, Protocol: r.Protocol, SpoolDepth: r.SpoolDepth,
		SpoolDropped: r.SpoolDropped, ClockOffsetMS: r.ClockOffsetMS, UnreadInstructions: r.Unread,
		BlockingInstructions: r.Blocking, ProcessTracking: r.ProcessTracking}
	diskFull := r.DiskFull
	localAt := r.LocalTimeAtPoll
	if hb, ok := c.beats.lookup(r.ID); ok {
		at := hb.At.UTC()
		t.LastPoll, localAt = &at, hb.LocalTime
		t.TimeZone, t.UTCOffsetMinutes, t.ClockSkewMS = hb.TimeZone, hb.OffsetMinutes(), hb.SkewMS()
		t.PollInterval, t.Version, t.Protocol = hb.PollInterval, hb.Version, hb.Protocol
		t.SpoolDepth, t.SpoolDropped = hb.SpoolDepth, hb.SpoolDropped
		t.ProcessTracking, diskFull = hb.ProcessTracking, hb.DiskFull
		if hb.ClockOffset != nil {
			ms := hb.ClockOffset.Milliseconds()
			t.ClockOffsetMS = &ms
		}
	}
	if t.LastPoll != nil && !localAt.IsZero() && r.State != TargetDefected {
		// Its clock as it would read now; a target that left has none.
		lt := localAt.Add(now.Sub(*t.LastPoll))
		t.LocalTime = &lt
	}
	t.DefectedAt, t.DefectedBy, t.Departure = r.DefectedAt, r.DefectedBy, departure(r)
	if r.State == TargetDefected {
		t.Status, t.Flags = muster.StatusDefected, []string{}
		return t
	}
	var last time.Time
	if t.LastPoll != nil {
		last = *t.LastPoll
	}
	t.Status, t.Flags = muster.DeriveStatus(now, muster.TargetState{LastPoll: last, PollInterval: t.PollInterval, Blocking: t.BlockingInstructions})
	if r.State == TargetDeleted {
		t.Flags = append(t.Flags, muster.FlagDeleted)
	}
	if r.Paused {
		t.Flags = append(t.Flags, muster.FlagPaused)
	}
	if diskFull {
		t.Flags = append(t.Flags, muster.FlagDiskFull)
	}
	return t
}

// departure says, in words, how a target left (or is leaving).
func departure(r TargetRow) string {
	switch {
	case r.DefectedHow == DepartureDefected:
		return "defected itself (muster defect on the target)"
	case r.DefectedHow == DepartureForced:
		return "deleted with --force by " + dashed(r.DefectedBy) + ": no DEFECT was posted"
	case r.DefectedHow == DepartureDeleted && r.State == TargetDefected:
		return "deleted by " + dashed(r.DefectedBy) + ", then collected its DEFECT"
	case r.DefectedHow == DepartureDeleted:
		return "deleted by " + dashed(r.DefectedBy) + ", waiting to collect its DEFECT"
	case r.State == TargetDefected:
		return "defected" // left before the catalog recorded how
	}
	return ""
}

func hasStatus(t muster.Target, status string) bool {
	if status == muster.StatusNormal || status == muster.StatusDefected {
		return t.Status == status
	}
	return slices.Contains(t.Flags, status)
}

// FindTarget returns one target by name: the one enlisted under it, or
// else the last that held it and left (status defected), so that a target
// that left can still be looked up with its history.
func (c *Catalog) FindTarget(ctx context.Context, name string) (muster.Target, error) {
	n := muster.NormalizeTargetName(name)
	ts, err := c.FindTargets(ctx, TargetFilter{Name: n})
	if err != nil {
		return muster.Target{}, err
	}
	if len(ts) == 0 {
		if ts, err = c.FindTargets(ctx, TargetFilter{Name: n, Status: muster.StatusDefected}); err != nil {
			return muster.Target{}, err
		}
	}
	if len(ts) == 0 {
		return muster.Target{}, noTarget(name)
	}
	return ts[0], nil
}

func noTarget(name string) error {
	return muster.Errorf(muster.ENOTFOUND, "no target named %q is enlisted", name)
}

// targetIDs resolves active target names to ids; an unknown name is an
// error that names it, and says so of a target that left.
func (tx *tx) targetIDs(field string, names []string) (map[string]int64, error) {
	ids, gone, err := tx.liveTargetIDs(names)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n)+goneNote(gone, n))
		}
	}
	if len(unknown) > 0 {
		return nil, muster.Errorf(muster.EINVALID, "%s: no enlisted target named %s; `muster target list` shows the enlisted ones", field, strings.Join(unknown, ", "))
	}
	return ids, nil
}

// liveTargetIDs resolves active target names to ids, and returns besides
// the names that only a target that left (defected, or deleted) held.
func (tx *tx) liveTargetIDs(names []string) (map[string]int64, map[string]TargetRow, error) {
	ids, err := tx.TargetIDs(tx.ctx, names)
	if err != nil || len(ids) == len(names) {
		return ids, map[string]TargetRow{}, err
	}
	var missing []string
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			missing = append(missing, n)
		}
	}
	gone, err := tx.FindGoneTargets(tx.ctx, missing)
	return ids, gone, err
}

// goneNote is " (it defected at ...)" for a name a target that left held.
func goneNote(gone map[string]TargetRow, name string) string {
	r, ok := gone[name]
	if !ok {
		return ""
	}
	if r.State == TargetDeleted {
		return fmt.Sprintf(" (it was %s)", departure(r))
	}
	at := "at an unrecorded time"
	if r.DefectedAt != nil {
		at = "at " + r.DefectedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf(" (it left %s: %s)", at, departure(r))
}

// SetLocation records where a target is, as the target reports it when
// it enlists again: it is checked as an operator's is, and a change is in
// the audit log under by, the target; the location it already has changes
// (and records) nothing.
func (c *Catalog) SetLocation(ctx context.Context, name, location string, by muster.Actor) error {
	return c.setTargetDetails(ctx, name, TargetDetails{Location: &location}, by)
}

// TargetDetails are what an operator may change of a target after it
// enlisted; a nil field stays as it is.
type TargetDetails struct {
	Location    *string `json:"location,omitempty"`
	Description *string `json:"description,omitempty"`
}

// SetTargetDetails changes an enlisted target's location or description,
// recording the change in the audit log; a change to what it already says
// changes (and records) nothing. It returns the target as it is after.
func (c *Catalog) SetTargetDetails(ctx context.Context, name string, d TargetDetails, by muster.Actor) (muster.Target, error) {
	if err := c.setTargetDetails(ctx, name, d, by); err != nil {
		return muster.Target{}, err
	}
	return c.FindTarget(ctx, muster.NormalizeTargetName(name))
}

func (c *Catalog) setTargetDetails(ctx context.Context, name string, d TargetDetails, by muster.Actor) error {
	if d.Location == nil && d.Description == nil {
		return muster.Errorf(muster.EINVALID, "location, description: give at least one to change")
	}
	if d.Location != nil {
		if err := muster.ValidateTargetText("location", *d.Location, muster.MaxTargetLocation); err != nil {
			return err
		}
	}
	if d.Description != nil {
		if err := muster.ValidateTargetText("description", *d.Description, muster.MaxTargetDescription); err != nil {
			return err
		}
	}
	name = muster.NormalizeTargetName(name)
	return c.update(ctx, func(tx *tx) error {
		t, err := tx.FindTargetByName(ctx, name)
		switch {
		case noRows(err) || (err == nil && t.State != TargetActive):
			return noTarget(name)
		case err != nil:
			return err
		}
		location, description := t.Location, t.Description
		var lines []string
		if d.Location != nil && *d.Location != location {
			lines = append(lines, fmt.Sprintf("~ location: %q -> %q", location, *d.Location))
			location = *d.Location
		}
		if d.Description != nil && *d.Description != description {
			lines = append(lines, fmt.Sprintf("~ description: %q -> %q", description, *d.Description))
			description = *d.Description
		}
		if len(lines) == 0 {
			return nil
		}
		if err := tx.SetTargetDetails(ctx, t.ID, location, description); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditTargetSet, Targets: []string{name}, Changes: lines})
	})
}

// TargetID returns the id of an active (or deleted, not yet defected)
// target.
func (c *Catalog) TargetID(ctx context.Context, name string) (int64, error) {
	t, err := c.store.FindTargetByName(ctx, muster.NormalizeTargetName(name))
	if noRows(err) {
		return 0, noTarget(name)
	}
	return t.ID, err
}

// PollState returns the last sequence number posted to a target, and
// whether it is paused.
func (c *Catalog) PollState(ctx context.Context, id int64) (lastSeq int64, paused bool, err error) {
	return c.store.PollState(ctx, id)
}

// LastSeqs returns the last sequence number posted to every target, for a
// master to check that the held polls it serves missed no wake-up.
func (c *Catalog) LastSeqs(ctx context.Context) (map[int64]int64, error) {
	return c.store.LastSeqs(ctx)
}
