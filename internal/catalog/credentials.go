package catalog

import (
	"sync"
	"time"
)

// credentialsTTL bounds how long a lookup of an API key or a client
// certificate is used again without reading its row. On a catalog of its
// own, every change that may touch those rows forgets them at once; on a
// shared catalog, a change made by another master is forgotten when its
// notification arrives, and a notification lost costs at most this long.
const credentialsTTL = time.Second

// maxCredentials bounds the lookups remembered, a guard against a fleet of
// certificates far larger than any master serves.
const maxCredentials = 100_000

// credentials remembers the rows the last authentications read, so that a
// master answering thousands of requests a second from the same targets
// and operators does not read the same rows for each. Every committed write
// transaction forgets them all, unless it said it changes no credential
// (tx.keepCredentials): only the hot paths (a START, an acknowledgement, a
// run upload) say so.
type credentials struct {
	mu    sync.Mutex
	gen   uint64 // moved on by each forget
	keys  map[string]remembered[APIKeyRow]
	certs map[string]remembered[CertRow]
}

type remembered[T any] struct {
	row T
	at  time.Time // when it was read, by the catalog's clock
}

// generation is taken before a row is read; the row is remembered only if
// nothing was forgotten meanwhile.
func (c *credentials) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// forget drops every remembered row.
func (c *credentials) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.keys, c.certs = nil, nil
}

func (c *credentials) key(hash string, now time.Time) (APIKeyRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fresh(c.keys[hash], now)
}

func (c *credentials) cert(serial string, now time.Time) (CertRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fresh(c.certs[serial], now)
}

func (c *credentials) putKey(hash string, r APIKeyRow, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.keys = put(c.keys, hash, r, now)
	}
}

func (c *credentials) putCert(serial string, r CertRow, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.certs = put(c.certs, serial, r, now)
	}
}

func fresh[T any](r remembered[T], now time.Time) (T, bool) {
	if r.at.IsZero() || now.Before(r.at) || now.Sub(r.at) >= credentialsTTL {
		var zero T
		return zero, false
	}
	return r.row, true
}

func put[T any](m map[string]remembered[T], k string, row T, now time.Time) map[string]remembered[T] {
	if m == nil || len(m) >= maxCredentials {
		m = map[string]remembered[T]{}
	}
	m[k] = remembered[T]{row: row, at: now}
	return m
}

// ForgetCredentials drops the credentials remembered, for a change another
// master made to them (Commit.Credentials), or a notification that may
// have been lost.
func (c *Catalog) ForgetCredentials() { c.creds.forget() }
