package catalog

import (
	"context"
	"sync"
	"time"

	"github.com/musterhq/muster"
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
func (c *Catalog) RecordPoll(id int64, hb Heartbeat) { c.beats.put(id, hb) }

func (c *Catalog) flushLoop() {
	defer close(c.done)
	t := time.NewTicker(c.opts.HeartbeatFlush)
	defer t.Stop()
	flush := func() {
		if err := c.FlushHeartbeats(context.Background()); err != nil {
			c.log.Error("flush heartbeats", muster.LogErr, err)
		}
		if err := c.FlushKeyUses(context.Background()); err != nil {
			c.log.Error("flush API key uses", muster.LogErr, err)
		}
	}
	for {
		select {
		case <-c.stop:
			flush()
			return
		case <-t.C:
			flush()
		}
	}
}

// FlushHeartbeats writes coalesced heartbeats now, in one transaction.
func (c *Catalog) FlushHeartbeats(ctx context.Context) error {
	c.beats.mu.Lock()
	batch := c.beats.pending
	if len(batch) == 0 {
		c.beats.mu.Unlock()
		return nil
	}
	c.beats.pending = map[int64]Heartbeat{}
	c.beats.inflight = batch
	c.beats.mu.Unlock()

	// Of what a target's identity holds, a heartbeat changes only its poll
	// interval and clock skew, which a remembered certificate's row holds
	// too: the flush brings those up to date in the certificates of its
	// targets (forgets them if it failed), forgets no other credential, and
	// tells the other masters nothing. In a fan-out each master flushes
	// every second: forgetting made every acknowledgement and upload that
	// followed read its target's certificate again. A target polls one
	// master at a time; another that remembers its row from before it moved
	// uses that row's poll interval and skew for credentialsTTL at most, as
	// when a notification is lost.
	err := c.update(ctx, func(tx *tx) error {
		tx.keepCredentials()
		return tx.FlushHeartbeats(ctx, batch)
	})
	c.creds.flushed(batch, err == nil)
	c.beats.mu.Lock()
	if err != nil {
		// Put the batch back unless a newer heartbeat replaced an entry.
		for id, hb := range batch {
			if _, ok := c.beats.pending[id]; !ok {
				c.beats.pending[id] = hb
			}
		}
	}
	c.beats.inflight = nil
	c.beats.mu.Unlock()
	return err
}
