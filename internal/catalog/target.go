package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// Target states in the catalog.
const (
	TargetActive   = "active"
	TargetDeleted  = "deleted" // a tombstone: may fetch only its DEFECT
	TargetDefected = "defected"
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
	// ClockOffset is the offset the target measured at its last SYNC-TIME,
	// if it has done one.
	ClockOffset *time.Duration
}

// Enlistment is what a target sends to enlist, checked against a token.
type Enlistment struct {
	TokenHash  string
	Name       string
	UID        string
	Location   string
	EnlistedBy string
	Heartbeat  Heartbeat
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
	CertNotAfter time.Time
}

// Enlist consumes the token, creates the target and records the certificate
// that sign issues for it, in one transaction: a failure leaves the token
// unused and no target behind.
func (db *DB) Enlist(ctx context.Context, e Enlistment, sign func(uid string) (IssuedCert, error)) (TargetIdentity, error) {
	var id TargetIdentity
	err := db.update(ctx, func(tx *tx) error {
		var tokenID int64
		var tokenTarget string
		var expires int64
		var used sql.NullInt64
		err := tx.QueryRow(`SELECT id, target_name, expires_at, used_at FROM enlist_tokens WHERE hash = ?`, e.TokenHash).
			Scan(&tokenID, &tokenTarget, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token is not valid for this master; create one with `muster token create --target %s`", e.Name)
		case err != nil:
			return err
		case used.Valid:
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token was already used at %s; tokens are single-use: create another with `muster token create --target %s`", fromMS(used.Int64).Format(time.RFC3339), e.Name)
		case tx.now.UnixMilli() >= expires:
			return muster.Errorf(muster.EUNAUTHORIZED, "the enlistment token expired at %s; create another with `muster token create --target %s`", fromMS(expires).Format(time.RFC3339), e.Name)
		case tokenTarget != e.Name:
			return muster.Errorf(muster.EFORBIDDEN, "the enlistment token was created for target %q, not %q", tokenTarget, e.Name)
		}
		var state string
		var enlisted int64
		err = tx.QueryRow(`SELECT state, enlisted_at FROM targets WHERE name = ? AND state <> ?`, e.Name, TargetDefected).Scan(&state, &enlisted)
		switch {
		case err == nil && state == TargetDeleted:
			return muster.Errorf(muster.ECONFLICT, "target %q was deleted and has not yet collected its DEFECT; wait for it to defect, or run `muster defect --force` on it, then enlist again", e.Name)
		case err == nil:
			return muster.Errorf(muster.ECONFLICT, "a target named %q is already enlisted (since %s); defect it (`muster defect` on that server) or delete it (`muster target delete %s`) before enlisting another with this name", e.Name, fromMS(enlisted).Format(time.RFC3339), e.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.Exec(`UPDATE enlist_tokens SET used_at = ? WHERE id = ?`, ms(tx.now), tokenID); err != nil {
			return err
		}
		hb := e.Heartbeat
		interval := hb.PollInterval
		if interval == 0 {
			interval = muster.DefaultPollInterval
		}
		res, err := tx.Exec(`INSERT INTO targets (uid, name, location, enlisted_at, enlisted_by, last_poll_at,
				local_time_at_poll, time_zone, utc_offset_minutes, clock_skew_ms, poll_interval, version, protocol)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.UID, e.Name, e.Location, ms(tx.now), e.EnlistedBy, ms(tx.now),
			formatLocal(hb.LocalTime), hb.TimeZone, offsetMinutes(hb.LocalTime), skewMS(hb), interval, hb.Version, hb.Protocol)
		if err != nil {
			return err
		}
		tid, err := res.LastInsertId()
		if err != nil {
			return err
		}
		cert, err := sign(e.UID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO certs (serial, target_id, issued_at, not_after, key_hash) VALUES (?, ?, ?, ?, ?)`,
			cert.Serial, tid, ms(tx.now), ms(cert.NotAfter), cert.KeyHash); err != nil {
			return err
		}
		id = TargetIdentity{ID: tid, UID: e.UID, Name: e.Name, State: TargetActive, PollInterval: interval, CertNotAfter: cert.NotAfter}
		return nil
	})
	return id, err
}

// AuthenticateTarget returns the target a client certificate serial was
// issued to. It is called on every agent request: a resumed TLS session skips
// the certificate callbacks, so this lookup is what revokes a defected or
// deleted target.
func (db *DB) AuthenticateTarget(ctx context.Context, serial string) (TargetIdentity, error) {
	c, err := db.FindCert(ctx, serial)
	if err != nil {
		return TargetIdentity{}, err
	}
	if hb, ok := db.beats.lookup(c.Target.ID); ok && hb.PollInterval > 0 {
		c.Target.PollInterval = hb.PollInterval
	}
	return c.Target, nil
}

// TargetFilter selects targets.
type TargetFilter struct {
	Name   string // exact (normalized) name
	Status string // derived status: normal, suspected_offline or blocked
}

// FindTargets lists active targets with their status derived at the
// catalog's clock, ordered by name.
func (db *DB) FindTargets(ctx context.Context, f TargetFilter) ([]muster.Target, error) {
	q := `SELECT t.id, t.state, t.paused, t.clock_offset_ms, t.name, t.location, t.enlisted_at, t.enlisted_by, t.last_poll_at, t.local_time_at_poll,
			t.time_zone, t.utc_offset_minutes, t.clock_skew_ms, t.poll_interval, t.version, t.protocol, t.spool_depth, t.spool_dropped,
			(SELECT COUNT(*) FROM instructions i WHERE i.target_id = t.id AND i.status = 'pending'),
			(SELECT COUNT(*) FROM instructions i WHERE i.target_id = t.id AND i.status = 'failed')
		FROM targets t WHERE t.state IN ('active', 'deleted')`
	var args []any
	if f.Name != "" {
		q += ` AND t.name = ?`
		args = append(args, f.Name)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY t.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := db.opts.Now()
	targets := []muster.Target{}
	for rows.Next() {
		var t muster.Target
		var id, enlisted int64
		var lastPoll sql.NullInt64
		var local, state string
		var paused bool
		var offset sql.NullInt64
		if err := rows.Scan(&id, &state, &paused, &offset, &t.Name, &t.Location, &enlisted, &t.EnlistedBy, &lastPoll, &local,
			&t.TimeZone, &t.UTCOffsetMinutes, &t.ClockSkewMS, &t.PollInterval, &t.Version, &t.Protocol, &t.SpoolDepth, &t.SpoolDropped,
			&t.UnreadInstructions, &t.BlockingInstructions); err != nil {
			return nil, err
		}
		t.EnlistedAt = fromMS(enlisted)
		t.LastPoll = fromNullMS(lastPoll)
		localAt := parseLocal(local)
		if hb, ok := db.beats.lookup(id); ok {
			at := hb.At.UTC()
			t.LastPoll, localAt = &at, hb.LocalTime
			t.TimeZone, t.UTCOffsetMinutes, t.ClockSkewMS = hb.TimeZone, offsetMinutes(hb.LocalTime), skewMS(hb)
			t.PollInterval, t.Version, t.Protocol = hb.PollInterval, hb.Version, hb.Protocol
			t.SpoolDepth, t.SpoolDropped = hb.SpoolDepth, hb.SpoolDropped
			if hb.ClockOffset != nil {
				ms := hb.ClockOffset.Milliseconds()
				offset = sql.NullInt64{Int64: ms, Valid: true}
			}
		}
		if t.LastPoll != nil && !localAt.IsZero() {
			lt := localAt.Add(now.Sub(*t.LastPoll))
			t.LocalTime = &lt
		}
		var last time.Time
		if t.LastPoll != nil {
			last = *t.LastPoll
		}
		t.Status, t.Flags = muster.DeriveStatus(now, muster.TargetState{
			LastPoll: last, PollInterval: t.PollInterval, Blocking: t.BlockingInstructions,
		})
		if state == TargetDeleted {
			t.Flags = append(t.Flags, muster.FlagDeleted)
		}
		if paused {
			t.Flags = append(t.Flags, muster.FlagPaused)
		}
		if offset.Valid {
			t.ClockOffsetMS = &offset.Int64
		}
		if f.Status != "" && !hasFlag(t, f.Status) {
			continue
		}
		targets = append(targets, t)
	}
	return targets, rows.Err()
}

func hasFlag(t muster.Target, status string) bool {
	if status == muster.StatusNormal {
		return t.Status == muster.StatusNormal
	}
	for _, f := range t.Flags {
		if f == status {
			return true
		}
	}
	return false
}

// FindTarget returns one active target by name.
func (db *DB) FindTarget(ctx context.Context, name string) (muster.Target, error) {
	ts, err := db.FindTargets(ctx, TargetFilter{Name: muster.NormalizeTargetName(name)})
	if err != nil {
		return muster.Target{}, err
	}
	if len(ts) == 0 {
		return muster.Target{}, muster.Errorf(muster.ENOTFOUND, "no target named %q is enlisted", name)
	}
	return ts[0], nil
}

// targetIDs resolves active target names to ids; an unknown name is an
// error that names it.
func (tx *tx) targetIDs(field string, names []string) (map[string]int64, error) {
	ids := make(map[string]int64, len(names))
	if len(names) == 0 {
		return ids, nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	if err := tx.nameIDs(ids, `SELECT name, id FROM targets WHERE state = 'active' AND name IN (`+placeholders(len(names))+`)`, args...); err != nil {
		return nil, err
	}
	var unknown []string
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	if len(unknown) > 0 {
		return nil, muster.Errorf(muster.EINVALID, "%s: no enlisted target named %s; `muster target list` shows the enlisted ones", field, strings.Join(unknown, ", "))
	}
	return ids, nil
}

func formatLocal(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseLocal(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func offsetMinutes(t time.Time) int {
	_, off := t.Zone()
	return off / 60
}

// skewMS is how far the target's clock was ahead of the master's when the
// heartbeat arrived (network delay included, so an upper bound).
func skewMS(hb Heartbeat) int64 {
	if hb.LocalTime.IsZero() || hb.At.IsZero() {
		return 0
	}
	return hb.LocalTime.Sub(hb.At).Milliseconds()
}

// SetLocation records where a target is.
func (db *DB) SetLocation(ctx context.Context, id int64, location string) error {
	return db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`UPDATE targets SET location = ? WHERE id = ?`, location, id)
		return err
	})
}

// TargetID returns the id of an active (or deleted, not yet defected)
// target.
func (db *DB) TargetID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := db.read.QueryRowContext(ctx, `SELECT id FROM targets WHERE name = ? AND state <> ?`, muster.NormalizeTargetName(name), TargetDefected).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, muster.Errorf(muster.ENOTFOUND, "no target named %q is enlisted", name)
	}
	return id, err
}
