package catalog

import (
	"context"
	"time"
)

// UpdateShared runs fn as a write that may share its transaction with the
// acknowledgements and uploads that come meanwhile.
func (c *Catalog) UpdateShared(ctx context.Context, fn func(Tx) error) error {
	return c.updateShared(ctx, 0, func(t *tx) error { return fn(t) })
}

// QueuedWrites is how many writes wait for a shared transaction.
func (c *Catalog) QueuedWrites() int {
	c.writes.mu.Lock()
	defer c.writes.mu.Unlock()
	return len(c.writes.queue)
}

// WaitingCertReads is how many serials wait for the certificate read
// running to end.
func (c *Catalog) WaitingCertReads() int {
	c.certReads.mu.Lock()
	defer c.certReads.mu.Unlock()
	if c.certReads.next == nil {
		return 0
	}
	return len(c.certReads.next.serials)
}

// WaitingPolls is how many polls wait for the poll read running to end.
func (c *Catalog) WaitingPolls() int {
	c.pollReads.mu.Lock()
	defer c.pollReads.mu.Unlock()
	if c.pollReads.next == nil {
		return 0
	}
	return len(c.pollReads.next.after)
}

// SetSharedReadTimeout sets the bound of the reads that several requests
// share; before the catalog is used.
func (c *Catalog) SetSharedReadTimeout(d time.Duration) { c.sharedRead = d }

// SetMaxPollBytes sets the bound on the payloads of one poll reply's
// instructions, so that a test need not post megabytes to pass it.
func (c *Catalog) SetMaxPollBytes(n int) { c.maxPollBytes = n }
