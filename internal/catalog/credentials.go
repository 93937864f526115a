package catalog

import (
	"context"
	"sync"
	"time"
)

// credentialsTTL bounds how long a lookup of an API key or a client
// certificate is used again without reading its row on a shared catalog. A
// change made by another master is forgotten when its notification
// arrives, and a notification lost costs at most this long. A catalog of
// its own has no other writer: every change that may touch those rows
// forgets them at once, and a row is used until then.
const credentialsTTL = time.Second

// maxCredentials bounds the lookups remembered, a guard against a fleet of
// certificates far larger than any master serves.
const maxCredentials = 100_000

// credentials remembers the rows the last authentications read, so that a
// master answering thousands of requests a second from the same targets
// and operators does not read the same rows for each. Every committed write
// transaction forgets them all, unless it said it changes no credential
// (tx.keepCredentials): only the hot paths (a START, an acknowledgement, a
// run upload) say so, and the heartbeats' flush, which brings the poll
// interval and clock skew of its targets' certificates up to date.
type credentials struct {
	mu    sync.Mutex
	gen   uint64        // moved on by each forget
	ttl   time.Duration // how long a row is used; 0: until forgotten
	keys  map[string]remembered[APIKeyRow]
	certs map[string]remembered[CertRow]
}

type remembered[T any] struct {
	row T
	at  time.Time // when it was read, by the catalog's clock
}

// forget drops every remembered row.
func (c *credentials) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.keys, c.certs = nil, nil
}

// flushed brings the remembered certificates of the targets whose
// heartbeats were written up to date, as a read of their rows would find
// them: a heartbeat writes, of what a certificate's row holds, the poll
// interval and the clock skew. It keeps what is being read meanwhile from
// being remembered (it may have been read before the heartbeats were
// written). When the write failed (written), they are forgotten.
func (c *credentials) flushed(beats map[int64]Heartbeat, written bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for serial, r := range c.certs {
		hb, ok := beats[r.row.TargetID]
		if !ok {
			continue
		}
		if !written {
			delete(c.certs, serial)
			continue
		}
		r.row.Target.PollInterval, r.row.Target.ClockSkewMS = hb.PollInterval, hb.SkewMS()
		c.certs[serial] = r
	}
}

func (c *credentials) keyRows() *map[string]remembered[APIKeyRow] { return &c.keys }

// recall returns the row of k in the map rows picks, if it is fresh;
// otherwise it reads it and remembers it, unless something was forgotten
// while it read.
func recall[T any](c *credentials, rows func(*credentials) *map[string]remembered[T], k string, now time.Time, read func() (T, error)) (T, error) {
	c.mu.Lock()
	r := (*rows(c))[k]
	gen, fresh := c.gen, r.fresh(now, c.ttl)
	c.mu.Unlock()
	if fresh {
		return r.row, nil
	}
	row, err := read()
	if err != nil {
		return row, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		remember(rows(c), k, row, now)
	}
	return row, nil
}

// fresh reports whether r was read less than ttl before now, or at all
// when ttl is 0.
func (r remembered[T]) fresh(now time.Time, ttl time.Duration) bool {
	return !r.at.IsZero() && (ttl == 0 || !now.Before(r.at) && now.Sub(r.at) < ttl)
}

// remember keeps row under k in *m, read at now, starting the map afresh
// once it holds maxCredentials.
func remember[T any](m *map[string]remembered[T], k string, row T, now time.Time) {
	if *m == nil || len(*m) >= maxCredentials {
		*m = map[string]remembered[T]{}
	}
	(*m)[k] = remembered[T]{row: row, at: now}
}

// RecallTargets reads the certificates of the serials that are not
// remembered (or no longer fresh) in one statement (certReads), and
// remembers them as AuthenticateTarget would, one by one: the polls an
// answerer replies to are each followed at once by their target's
// acknowledgement, which then finds its row remembered, or waits for this
// read, rather than reading it on its own. A serial that names no
// certificate is left for AuthenticateTarget to refuse.
func (c *Catalog) RecallTargets(ctx context.Context, serials []string) error {
	now := c.opts.Now()
	cr := &c.creds
	cr.mu.Lock()
	stale := make([]string, 0, len(serials))
	for _, s := range serials {
		if !cr.certs[s].fresh(now, cr.ttl) {
			stale = append(stale, s)
		}
	}
	cr.mu.Unlock()
	if len(stale) == 0 {
		return nil
	}
	return c.readTogether(ctx, stale).err
}

// generation is moved on by each forget.
func (c *credentials) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// freshCert returns the certificate of serial if it is fresh.
func (c *credentials) freshCert(serial string, now time.Time) (CertRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.certs[serial]
	return r.row, r.fresh(now, c.ttl)
}

// rememberCerts remembers rows read at now, unless something was
// forgotten since gen.
func (c *credentials) rememberCerts(rows []CertRow, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	for _, row := range rows {
		remember(&c.certs, row.Serial, row, now)
	}
}

// ForgetCredentials drops the credentials remembered, for a change another
// master made to them (Commit.Credentials), or a notification that may
// have been lost.
func (c *Catalog) ForgetCredentials() { c.creds.forget() }
