package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// LastSeqs returns the last sequence number posted to every target that is
// not defected.
func (s *Queries) LastSeqs(ctx context.Context) (map[int64]int64, error) {
	rows, err := s.Q.Query(ctx, `SELECT id, last_seq FROM targets WHERE state <> 'defected'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// targetColumns are the columns scanTarget reads, of targets aliased t.
const targetColumns = `t.id, t.uid, t.name, t.state, t.location, t.enlisted_at, t.enlisted_by, t.defected_at, t.paused,
	t.seen_offline, t.last_seq, t.last_poll_at, t.local_time_at_poll, t.time_zone, t.utc_offset_minutes, t.clock_skew_ms,
	t.poll_interval, t.version, t.protocol, t.spool_depth, t.spool_dropped, t.clock_offset_ms, t.disk_full, t.process_tracking,
	t.defected_how, t.defected_by, t.description`

func scanTarget(r Row, more ...any) (catalog.TargetRow, error) {
	var t catalog.TargetRow
	var enlisted int64
	var defected, lastPoll, offset sql.NullInt64
	var local string
	dest := append([]any{&t.ID, &t.UID, &t.Name, &t.State, &t.Location, &enlisted, &t.EnlistedBy, &defected, &t.Paused,
		&t.SeenOffline, &t.LastSeq, &lastPoll, &local, &t.TimeZone, &t.UTCOffsetMinutes, &t.ClockSkewMS,
		&t.PollInterval, &t.Version, &t.Protocol, &t.SpoolDepth, &t.SpoolDropped, &offset, &t.DiskFull, &t.ProcessTracking,
		&t.DefectedHow, &t.DefectedBy, &t.Description}, more...)
	if err := r.Scan(dest...); err != nil {
		return t, err
	}
	t.EnlistedAt, t.DefectedAt, t.LastPoll = fromMS(enlisted), fromNullMS(defected), fromNullMS(lastPoll)
	t.LocalTimeAtPoll, _ = time.Parse(time.RFC3339Nano, local)
	if offset.Valid {
		t.ClockOffsetMS = &offset.Int64
	}
	return t, nil
}

// FindTargets returns the targets that are not defected (or, with
// Defected, only the defected ones, newest first within a name), by name.
func (s *Queries) FindTargets(ctx context.Context, f catalog.TargetQuery) ([]catalog.TargetRow, error) {
	a := &args{d: s.D}
	q := `SELECT ` + targetColumns
	if f.WithCounts {
		q += `, (SELECT COUNT(*) FROM instructions i WHERE i.target_id = t.id AND i.status = 'pending'),
			(SELECT COUNT(*) FROM instructions i WHERE i.target_id = t.id AND i.status = 'failed')`
	}
	switch {
	case f.Defected:
		q += ` FROM targets t WHERE t.state = 'defected'`
	case f.ActiveOnly:
		q += ` FROM targets t WHERE t.state = 'active'`
	default:
		q += ` FROM targets t WHERE t.state IN ('active', 'deleted')`
	}
	if f.Name != "" {
		q += ` AND t.name = ` + a.add(f.Name)
	}
	return collect(ctx, s.Q, func(r Rows) (catalog.TargetRow, error) {
		if !f.WithCounts {
			return scanTarget(r)
		}
		var unread, blocking int
		t, err := scanTarget(r, &unread, &blocking)
		t.Unread, t.Blocking = unread, blocking
		return t, err
	}, q+` ORDER BY t.name, t.id DESC`, a.vals...)
}

// FindPresence returns the id, name, last poll, poll interval and
// seen_offline mark of every active target, by name: the columns
// DetectPresence judges by, where FindTargets reads whole rows.
func (s *Queries) FindPresence(ctx context.Context) ([]catalog.PresenceRow, error) {
	return collect(ctx, s.Q, func(r Rows) (catalog.PresenceRow, error) {
		var p catalog.PresenceRow
		var lastPoll sql.NullInt64
		err := r.Scan(&p.ID, &p.Name, &lastPoll, &p.PollInterval, &p.SeenOffline)
		p.LastPoll = fromNullMS(lastPoll)
		return p, err
	}, `SELECT id, name, last_poll_at, poll_interval, seen_offline FROM targets WHERE state = 'active' ORDER BY name, id DESC`)
}

// FindTargetByName returns the target that holds a name: active, or
// deleted and waiting for its DEFECT.
func (s *Queries) FindTargetByName(ctx context.Context, name string) (catalog.TargetRow, error) {
	return scanTarget(s.Q.QueryRow(ctx, `SELECT `+targetColumns+` FROM targets t WHERE t.name = $1 AND t.state <> 'defected'`, name))
}

// FindGoneTargets returns, of names, those that no live target holds but a
// target that left did: the last to hold each (defected, or deleted and
// waiting to collect its DEFECT).
func (s *Queries) FindGoneTargets(ctx context.Context, names []string) (map[string]catalog.TargetRow, error) {
	out := map[string]catalog.TargetRow{}
	if len(names) == 0 {
		return out, nil
	}
	a := &args{d: s.D}
	rows, err := collect(ctx, s.Q, func(r Rows) (catalog.TargetRow, error) { return scanTarget(r) },
		`SELECT `+targetColumns+` FROM targets t WHERE t.state <> 'active' AND `+in(a, "t.name", names)+`
			AND NOT EXISTS (SELECT 1 FROM targets l WHERE l.name = t.name AND l.state = 'active')
		ORDER BY t.id`, a.vals...)
	for _, r := range rows {
		out[r.Name] = r // the newest last
	}
	return out, err
}

// DepartedWithRuns returns the targets that left and still have a run
// running (found by the index of running runs), a START queued, or a
// START pending whose run is not recorded (by the index of pending
// instructions).
func (s *Queries) DepartedWithRuns(ctx context.Context) ([]catalog.TargetRow, error) {
	return collect(ctx, s.Q, func(r Rows) (catalog.TargetRow, error) { return scanTarget(r) },
		`SELECT `+targetColumns+` FROM targets t WHERE t.state <> 'active'
			AND (t.id IN (SELECT r.target_id FROM runs r WHERE r.status = 'running')
				OR EXISTS (SELECT 1 FROM queued_starts q WHERE q.target_id = t.id)
				OR EXISTS (SELECT 1 FROM instructions i WHERE i.target_id = t.id AND i.status = 'pending' AND i.operation = 'START'
					AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.target_id = i.target_id AND r.run_id = i.run_id)))
		ORDER BY t.id`)
}

// TargetIDs resolves active target names to ids; names it does not know
// are left out.
func (s *Queries) TargetIDs(ctx context.Context, names []string) (map[string]int64, error) {
	if len(names) == 0 {
		return map[string]int64{}, nil
	}
	a := &args{d: s.D}
	return nameIDs(ctx, s.Q, `SELECT name, id FROM targets WHERE state = 'active' AND `+in(a, "name", names), a.vals...)
}

// ActiveTargets returns every active target by name.
func (s *Queries) ActiveTargets(ctx context.Context) (map[string]int64, error) {
	return nameIDs(ctx, s.Q, `SELECT name, id FROM targets WHERE state = 'active'`)
}

// PollState returns a target's last sequence number and whether it is
// paused.
func (s *Queries) PollState(ctx context.Context, id int64) (lastSeq int64, paused bool, err error) {
	err = s.Q.QueryRow(ctx, `SELECT last_seq, paused FROM targets WHERE id = $1`, id).Scan(&lastSeq, &paused)
	return lastSeq, paused, err
}

// LockTarget does nothing: a transaction of a store that is not shared is
// alone.
func (s *Queries) LockTarget(context.Context, int64) error { return nil }

// NextSeqs increments the targets' counters and returns each one's new
// value: one statement for the targets whose counter moves by the same
// count (a START fanned out moves every one by one), returning what it set.
// A target that is no longer active (it defected, or was deleted, after
// the transaction read it) is not posted to: catalog.ErrRetry.
func (s *Queries) NextSeqs(ctx context.Context, counts map[int64]int) (map[int64]int64, error) {
	byCount := map[int][]int64{}
	for id, n := range counts {
		byCount[n] = append(byCount[n], id)
	}
	out := make(map[int64]int64, len(counts))
	for n, ids := range byCount {
		slices.Sort(ids)
		a := &args{d: s.D}
		q := `UPDATE targets SET last_seq = last_seq + ` + a.add(n) + ` WHERE state = 'active' AND `
		if len(ids) == 1 { // the statement of every START to one target
			q += `id = ` + a.add(ids[0])
		} else {
			where, err := inJSON(a, "id", ids)
			if err != nil {
				return nil, err
			}
			q += where
		}
		if err := s.returnSeqs(ctx, q+` RETURNING id, last_seq`, a.vals, out); err != nil {
			return nil, err
		}
	}
	if len(out) != len(counts) {
		for id := range counts {
			if _, ok := out[id]; !ok {
				// It left the fleet since the transaction read it: run
				// again, it reads the fleet without it.
				return nil, fmt.Errorf("post to target %d, which left the fleet: %w", id, catalog.ErrRetry)
			}
		}
	}
	return out, nil
}

// returnSeqs runs an update of targets' counters and adds what it
// returns, each target's id and new counter, to out.
func (s *Queries) returnSeqs(ctx context.Context, q string, vals []any, out map[int64]int64) error {
	rows, err := s.Q.Query(ctx, q, vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		out[id] = seq
	}
	return rows.Err()
}

// RaiseSeq moves a target's counter to at least atLeast.
func (s *Queries) RaiseSeq(ctx context.Context, id, atLeast int64) (int64, error) {
	var seq int64
	err := s.Q.QueryRow(ctx, `UPDATE targets SET last_seq = CASE WHEN last_seq < $1 THEN $1 ELSE last_seq END
		WHERE id = $2 RETURNING last_seq`, atLeast, id).Scan(&seq)
	return seq, err
}

// InsertTarget creates a target; a name held by another live target is
// ErrDuplicate.
func (s *Queries) InsertTarget(ctx context.Context, t catalog.TargetRow) (int64, error) {
	var id int64
	err := s.Q.QueryRow(ctx, `INSERT INTO targets (uid, name, state, location, enlisted_at, enlisted_by, last_poll_at,
			local_time_at_poll, time_zone, utc_offset_minutes, clock_skew_ms, poll_interval, version, protocol)
		VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		t.UID, t.Name, t.Location, ms(t.EnlistedAt), t.EnlistedBy, nullMS(t.LastPoll), formatLocal(t.LocalTimeAtPoll),
		t.TimeZone, t.UTCOffsetMinutes, t.ClockSkewMS, t.PollInterval, t.Version, t.Protocol).Scan(&id)
	return id, err
}

// SetTargetState moves a target to a state, recording how it leaves and
// by whom; at is its defection time.
func (s *Queries) SetTargetState(ctx context.Context, id int64, state string, d catalog.Departure) error {
	if d.At == nil {
		_, err := s.Q.Exec(ctx, `UPDATE targets SET state = $1, defected_how = $2, defected_by = $3 WHERE id = $4`,
			state, d.How, d.By, id)
		return err
	}
	_, err := s.Q.Exec(ctx, `UPDATE targets SET state = $1, defected_at = $2, defected_how = $3, defected_by = $4 WHERE id = $5`,
		state, ms(*d.At), d.How, d.By, id)
	return err
}

// SetTargetDetails records where a target is and what it is.
func (s *Queries) SetTargetDetails(ctx context.Context, id int64, location, description string) error {
	_, err := s.Q.Exec(ctx, `UPDATE targets SET location = $1, description = $2 WHERE id = $3`, location, description, id)
	return err
}

// SetPaused pauses or resumes targets.
func (s *Queries) SetPaused(ctx context.Context, ids []int64, paused bool) error {
	if len(ids) == 0 {
		return nil
	}
	a := &args{d: s.D}
	p := a.add(paused)
	_, err := s.Q.Exec(ctx, `UPDATE targets SET paused = `+p+` WHERE `+in(a, "id", ids), a.vals...)
	return err
}

// SetSeenOffline records the offline detector's view of an active target.
func (s *Queries) SetSeenOffline(ctx context.Context, id int64, offline bool) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE targets SET seen_offline = $1 WHERE id = $2 AND seen_offline <> $1 AND state = 'active'`, offline, id)
	return n > 0, err
}

// ClearTarget drops a leaving target's open instructions and removes it
// from every job, group and start queue.
func (s *Queries) ClearTarget(ctx context.Context, id int64) error {
	for _, q := range []string{
		`UPDATE instructions SET status = 'deleted' WHERE target_id = $1 AND status IN ('pending', 'failed')`,
		`DELETE FROM job_targets WHERE target_id = $1`,
		`DELETE FROM group_members WHERE target_id = $1`,
		`DELETE FROM queued_starts WHERE target_id = $1`,
	} {
		if _, err := s.Q.Exec(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}

// LiftTombstone marks a deleted target defected once its DEFECT was
// acknowledged (applied or failed).
func (s *Queries) LiftTombstone(ctx context.Context, id int64, at time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE targets SET state = 'defected', defected_at = $1 WHERE id = $2 AND state = 'deleted'
		AND EXISTS (SELECT 1 FROM instructions WHERE target_id = $2 AND operation = 'DEFECT' AND status IN ('downloaded', 'failed'))`,
		ms(at), id)
	return n > 0, err
}

// FlushHeartbeats writes heartbeats. A heartbeat older than the one a
// target's row holds (written by another master) changes nothing.
func (s *Queries) FlushHeartbeats(ctx context.Context, beats map[int64]catalog.Heartbeat) error {
	for id, hb := range beats {
		var offset sql.NullInt64
		if hb.ClockOffset != nil {
			offset = sql.NullInt64{Int64: hb.ClockOffset.Milliseconds(), Valid: true}
		}
		if _, err := s.Q.Exec(ctx, `UPDATE targets SET last_poll_at = $1, local_time_at_poll = $2, time_zone = $3,
				utc_offset_minutes = $4, clock_skew_ms = $5, poll_interval = $6, version = $7, protocol = $8,
				spool_depth = $9, spool_dropped = $10, clock_offset_ms = COALESCE($11, clock_offset_ms), disk_full = $12,
				process_tracking = $13, spool_oldest_at = $15
			WHERE id = $14 AND (last_poll_at IS NULL OR last_poll_at <= $1)`,
			ms(hb.At), formatLocal(hb.LocalTime), hb.TimeZone, hb.OffsetMinutes(), hb.SkewMS(), hb.PollInterval, hb.Version,
			hb.Protocol, hb.SpoolDepth, hb.SpoolDropped, offset, hb.DiskFull, hb.ProcessTracking, id, SpoolOldestAt(hb)); err != nil {
			return err
		}
	}
	return nil
}

// SpoolOldestAt is when, by the master's clock, the oldest run a
// heartbeat reports waiting entered the target's spool; NULL when none
// waits or the target does not say.
func SpoolOldestAt(hb catalog.Heartbeat) sql.NullInt64 {
	if hb.SpoolOldest == nil || hb.SpoolDepth == 0 {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(hb.At.Add(-*hb.SpoolOldest)), Valid: true}
}

// formatLocal keeps a target's local time with its offset.
func formatLocal(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}
