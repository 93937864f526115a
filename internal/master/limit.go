package master

import (
	"sync"
	"time"

	"github.com/musterhq/muster"
)

// readHeaderTimeout bounds a connection's TLS handshake, and the headers
// of each request on it (net/http uses the one for the other).
const readHeaderTimeout = 10 * time.Second

// LimitConfig bounds what a client can make the master hold: how long a
// request body may take to arrive, how many requests without credentials
// it serves at once, and how much memory run and event uploads take.
// docs/security.md gives the reasons for each default.
type LimitConfig struct {
	// BodyTimeout is how long a request body has to arrive, from when the
	// master starts to read it, with a second more for each MinBodyRate
	// bytes it declares (or may have, when it declares no length). A body
	// still arriving then is refused and its connection closed.
	BodyTimeout time.Duration
	// MinBodyRate is the slowest rate, in bytes a second, at which a body
	// is received in full.
	MinBodyRate int64
	// PerAddress caps the requests without credentials (enlistment,
	// renewal by proof of possession, health, metrics, anything
	// unrecognised) in progress from one source address, and
	// Unauthenticated caps them in all. Beyond either, a request is
	// answered 429 at once and its connection closed. Requests of
	// enlisted targets and of operators are not counted.
	PerAddress      int
	Unauthenticated int
	// UploadMemory bounds the memory run and event uploads hold at once,
	// as estimated from their declared lengths before they are read (the
	// most a body may have when it declares none). An upload waits in turn
	// at most UploadWait for its share, and is answered 429 after that:
	// the target keeps its runs and sends them again later. The default
	// takes one upload of the largest size at a time, and many smaller
	// ones.
	UploadMemory int64
	UploadWait   time.Duration
}

// DefaultLimits returns the limits a master has unless configured.
func DefaultLimits() LimitConfig {
	return LimitConfig{
		BodyTimeout:     10 * time.Second,
		MinBodyRate:     256 << 10,
		PerAddress:      16,
		Unauthenticated: 256,
		UploadMemory:    uploadCost(maxRunsBody, maxRunReport, runsWriteChunk),
		UploadWait:      5 * time.Second,
	}
}

// withDefaults fills the limits left zero with their defaults.
func (c LimitConfig) withDefaults() LimitConfig {
	def := DefaultLimits()
	if c.BodyTimeout == 0 {
		c.BodyTimeout = def.BodyTimeout
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = def.MinBodyRate
	}
	if c.PerAddress == 0 {
		c.PerAddress = def.PerAddress
	}
	if c.Unauthenticated == 0 {
		c.Unauthenticated = def.Unauthenticated
	}
	if c.UploadMemory == 0 {
		c.UploadMemory = def.UploadMemory
	}
	if c.UploadWait == 0 {
		c.UploadWait = def.UploadWait
	}
	return c
}

// validate checks limits that have their defaults filled in.
func (c LimitConfig) validate() error {
	switch {
	case c.BodyTimeout < 0:
		return muster.Errorf(muster.EINVALID, "body timeout: must be positive, not %s", c.BodyTimeout)
	case c.MinBodyRate < 1<<10:
		return muster.Errorf(muster.EINVALID, "min body rate: at least 1024 bytes a second, not %d", c.MinBodyRate)
	case c.PerAddress < 1 || c.Unauthenticated < c.PerAddress:
		return muster.Errorf(muster.EINVALID, "unauthenticated requests: at least 1 an address, and at least as many in all (%d) as an address (%d)", c.Unauthenticated, c.PerAddress)
	case c.UploadMemory < uploadCost(maxRunsBody, maxRunReport, runsWriteChunk):
		return muster.Errorf(muster.EINVALID, "upload memory: at least what the largest upload holds, %d bytes, not %d", uploadCost(maxRunsBody, maxRunReport, runsWriteChunk), c.UploadMemory)
	case c.UploadWait < 0:
		return muster.Errorf(muster.EINVALID, "upload wait: must not be negative, not %s", c.UploadWait)
	}
	return nil
}

// bodyDeadline is how long a body of size bytes has to arrive.
func (c LimitConfig) bodyDeadline(size int64) time.Duration {
	return c.BodyTimeout + time.Duration(size)*time.Second/time.Duration(c.MinBodyRate)
}

// slots counts what is in progress under each key, up to a limit a key.
type slots[K comparable] struct {
	mu    sync.Mutex
	limit int
	n     map[K]int
}

func newSlots[K comparable](limit int) *slots[K] {
	return &slots[K]{limit: limit, n: map[K]int{}}
}

// acquire takes a slot under k, unless all are taken.
func (s *slots[K]) acquire(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[k] >= s.limit {
		return false
	}
	s.n[k]++
	return true
}

// release gives back a slot acquire took.
func (s *slots[K]) release(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[k]--; s.n[k] <= 0 {
		delete(s.n, k)
	}
}
