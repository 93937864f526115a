package catalog

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// certReads reads the certificates that authentications do not find
// remembered, together when they come together. In a fan-out every target
// sends an acknowledgement and uploads within seconds of its reply, each
// authenticated by its certificate's row: on PostgreSQL thousands of
// single-row reads, each a round trip and a turn at the catalog's
// connections, queued with the reads and writes of the fan-out itself.
//
// The reads are combined as writes are (groupcommit.go), with no timer: a
// lookup that finds no read running reads alone, at once; lookups that
// come while one runs wait and are read in one statement (Store.FindCerts)
// when it ends, led by the first of them. A lookup of a serial that a
// read running or waiting already holds waits for that read instead of
// reading it again: the acknowledgement that follows a reply at once finds
// its certificate in the read of the replied targets (RecallTargets).
//
// Each row is as fresh as a lookup of its own would have been: it is read
// after the lookup began, or by a read that began before it with nothing
// forgotten since (what a lookup would then find remembered). It is
// remembered as recall remembers, unless something was forgotten while it
// was read.
type certReads struct {
	mu      sync.Mutex
	running bool
	next    *certRead            // the lookups waiting for the running read
	reading map[string]*certRead // each serial in the running or next read
}

// errCertReadUnfinished answers the lookups of a read that did not end
// (its store panicked).
var errCertReadUnfinished = errors.New("the certificate read did not finish")

// certRead is one statement's worth of lookups.
type certRead struct {
	serials []string
	lead    chan struct{} // closed when the read may begin (for a waiting read)
	started bool          // set, with gen, when the read begins
	gen     uint64        // the credentials' generation when it began
	done    chan struct{} // closed when rows and err are set
	rows    map[string]CertRow
	err     error
}

// findCert returns the certificate of serial, remembered if fresh, else
// read (alone or with others) and remembered.
func (c *Catalog) findCert(ctx context.Context, serial string) (CertRow, error) {
	if row, ok := c.creds.freshCert(serial, c.opts.Now()); ok {
		return row, nil
	}
	r := c.readTogether(ctx, []string{serial})
	if r.err != nil {
		return CertRow{}, r.err
	}
	row, ok := r.rows[serial]
	if !ok {
		return CertRow{}, sql.ErrNoRows
	}
	return row, nil
}

// readTogether has serials read, in a read of their own or with others
// (join), and returns that read once it has ended.
func (c *Catalog) readTogether(ctx context.Context, serials []string) *certRead {
	r, lead := c.certReads.join(serials, c.creds.generation())
	if lead {
		c.readCerts(ctx, r)
	}
	<-r.done
	return r
}

// join adds serials (those no read holds yet, or that the running read
// holds but began before gen, the credentials' generation) to a read: a
// new one, which the caller leads at once, when none is running; else the
// next, which its first member leads once the running read ends (the
// caller when lead is set). It returns a read holding the serials to wait
// for; when they are held by several reads, the last of them, which ends
// after the others.
func (q *certReads) join(serials []string, gen uint64) (r *certRead, lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.reading == nil {
		q.reading = map[string]*certRead{}
	}
	var held *certRead
	var fresh []string
	for _, s := range serials {
		if h, ok := q.reading[s]; ok && (!h.started || h.gen == gen) {
			if held == nil || h == q.next {
				held = h
			}
			continue
		}
		fresh = append(fresh, s)
	}
	if len(fresh) == 0 {
		return held, false
	}
	switch {
	case !q.running:
		q.running = true
		r, lead = &certRead{done: make(chan struct{})}, true
	case q.next == nil:
		q.next = &certRead{lead: make(chan struct{}), done: make(chan struct{})}
		r, lead = q.next, true
	default:
		r = q.next
	}
	r.serials = append(r.serials, fresh...)
	for _, s := range fresh {
		q.reading[s] = r
	}
	return r, lead
}

// readCerts runs the read r its caller leads: once the running read has
// ended, for a read that waited. Its rows are remembered, unless
// something was forgotten meanwhile; then the next read, if any, may
// begin.
func (c *Catalog) readCerts(ctx context.Context, r *certRead) {
	if r.lead != nil {
		<-r.lead
	}
	ctx, cancel := c.sharedReadContext(ctx)
	defer cancel()
	c.creds.mu.Lock()
	gen, at := c.creds.gen, c.opts.Now()
	c.creds.mu.Unlock()
	q := &c.certReads
	q.mu.Lock()
	r.started, r.gen = true, gen
	q.mu.Unlock()
	// Whatever happens in the read (a panic in the store), its members
	// are answered and the next read let go, or every later lookup would
	// wait for ever.
	r.err = errCertReadUnfinished
	defer func() {
		q.mu.Lock()
		for _, s := range r.serials {
			if q.reading[s] == r {
				delete(q.reading, s)
			}
		}
		next := q.next
		q.next = nil
		q.running = next != nil
		q.mu.Unlock()
		close(r.done)
		if next != nil {
			close(next.lead)
		}
	}()
	var rows []CertRow
	var err error
	if len(r.serials) == 1 {
		var row CertRow
		row, err = c.store.FindCert(ctx, r.serials[0])
		if err == nil {
			rows = []CertRow{row}
		} else if noRows(err) {
			err = nil
		}
	} else {
		rows, err = c.store.FindCerts(ctx, r.serials)
	}
	err = c.sharedReadErr(ctx, err)
	r.rows = make(map[string]CertRow, len(rows))
	for _, row := range rows {
		r.rows[row.Serial] = row
	}
	if err == nil {
		c.creds.rememberCerts(rows, gen, at)
	}
	r.err = err
}
