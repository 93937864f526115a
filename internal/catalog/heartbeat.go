package catalog

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

// heartbeats coalesces poll heartbeats in memory so that many targets
// reconnecting at once cost one write transaction a second, not one each.
// Reads overlay what is not yet written.
type heartbeats struct {
	mu      sync.Mutex
	pending map[int64]Heartbeat
	// inflight holds the batch being written, so reads between the swap
	// and the commit still see it.
	inflight map[int64]Heartbeat
}

func (h *heartbeats) put(id int64, hb Heartbeat) {
	h.mu.Lock()
	h.pending[id] = hb
	h.mu.Unlock()
}

func (h *heartbeats) lookup(id int64) (Heartbeat, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hb, ok := h.pending[id]; ok {
		return hb, true
	}
	hb, ok := h.inflight[id]
	return hb, ok
}

// RecordPoll notes a poll's heartbeat. It is written to the catalog within
// the flush interval; reads see it at once.
func (db *DB) RecordPoll(id int64, hb Heartbeat) { db.beats.put(id, hb) }

func (db *DB) flushLoop() {
	defer close(db.done)
	t := time.NewTicker(db.opts.HeartbeatFlush)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			if err := db.FlushHeartbeats(context.Background()); err != nil {
				slog.Error("flush heartbeats", "err", err)
			}
			return
		case <-t.C:
			if err := db.FlushHeartbeats(context.Background()); err != nil {
				slog.Error("flush heartbeats", "err", err)
			}
		}
	}
}

// FlushHeartbeats writes coalesced heartbeats now, in one transaction.
func (db *DB) FlushHeartbeats(ctx context.Context) error {
	db.beats.mu.Lock()
	batch := db.beats.pending
	if len(batch) == 0 {
		db.beats.mu.Unlock()
		return nil
	}
	db.beats.pending = map[int64]Heartbeat{}
	db.beats.inflight = batch
	db.beats.mu.Unlock()

	err := db.update(ctx, func(tx *tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE targets SET last_poll_at = ?, local_time_at_poll = ?, time_zone = ?,
			utc_offset_minutes = ?, clock_skew_ms = ?, poll_interval = ?, version = ?, protocol = ?,
			spool_depth = ?, spool_dropped = ?, clock_offset_ms = COALESCE(?, clock_offset_ms) WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, hb := range batch {
			var offset sql.NullInt64
			if hb.ClockOffset != nil {
				offset = sql.NullInt64{Int64: hb.ClockOffset.Milliseconds(), Valid: true}
			}
			if _, err := stmt.ExecContext(ctx, ms(hb.At), formatLocal(hb.LocalTime), hb.TimeZone, offsetMinutes(hb.LocalTime),
				skewMS(hb), hb.PollInterval, hb.Version, hb.Protocol, hb.SpoolDepth, hb.SpoolDropped, offset, id); err != nil {
				return err
			}
		}
		return nil
	})
	db.beats.mu.Lock()
	if err != nil {
		// Put the batch back unless a newer heartbeat replaced an entry.
		for id, hb := range batch {
			if _, ok := db.beats.pending[id]; !ok {
				db.beats.pending[id] = hb
			}
		}
	}
	db.beats.inflight = nil
	db.beats.mu.Unlock()
	return err
}
