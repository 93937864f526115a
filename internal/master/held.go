package master

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// A poll held on an HTTP/1.1 connection is parked: its handler takes the
// connection from net/http (Hijack) and returns, so that while the poll
// waits it has no goroutine of net/http's, no handler goroutine and no
// buffers; what remains is the connection's TLS state, the few fields of
// a heldPoll, and one goroutine blocked in a look at the socket (peek),
// which is how the master notices the target going away. A wake-up, a
// poke, the end of the hold or the master closing hands the poll to a
// small pool of answerers, which read its instructions, write its reply by
// hand and give the connection back to the server (the resumed listener),
// where the target's next request on it is served as on any other.
//
// A poll whose writer cannot be taken (HTTP/2, a test's recorder) is held
// by its handler instead, as polls were before.

// errParked is what the poll handler returns once it has parked its poll:
// the reply and the target's request slot are the held poll's now.
var errParked = errors.New("the poll is parked")

// heldPoll is a parked poll.
type heldPoll struct {
	a       *agent
	target  int64
	serial  string // of the target's certificate
	after   int64
	conn    net.Conn // the hijacked connection
	raw     net.Conn // under its TLS, looked at while parked
	header  http.Header
	reply   agentproto.PollResponse
	persist bool // the connection serves further requests after the reply

	poked <-chan struct{} // from Hub.Poked
	woken <-chan struct{} // from Hub.Subscribe, renewed at each wake-up
	timer *time.Timer     // the end of the hold
	// posted is what the commit that woke the poll posted to its target
	// (catalog.Commit.Posted), set by the hub as it hands the poll over.
	posted []catalog.InstructionRow

	expired atomic.Bool // the timer fired
	gone    atomic.Bool // the look saw the target go away, or send out of turn
	read    chan struct{}
}

// park takes the connection of a poll that is to be held, and parks the
// poll in the hub. It reports whether the poll is the parked one's to
// answer now, its Done and its request slot with it; it is not when the
// connection cannot be taken, or the master is not serving, and the
// handler holds the poll itself.
func (a *agent) park(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity, after int64, hold time.Duration,
	reply agentproto.PollResponse, poked, woken <-chan struct{}) bool {
	hj, ok := w.(http.Hijacker)
	if !ok || r.ProtoMajor != 1 || !a.m.answerers.enter() {
		return false
	}
	// The server does not wait for a handler whose connection it gave up:
	// the answerers' stop does, until this one has parked its poll or
	// answered it.
	defer a.m.answerers.leave()
	header := w.Header().Clone()
	conn, brw, err := hj.Hijack()
	if err != nil {
		return false
	}
	p := &heldPoll{a: a, target: t.ID, serial: t.CertSerial, after: after, conn: conn, raw: conn, header: header, reply: reply,
		persist: !r.Close && r.ProtoAtLeast(1, 1), poked: poked, woken: woken}
	if tc, ok := conn.(*tls.Conn); ok {
		p.raw = tc.NetConn()
	}
	if brw.Reader.Buffered() > 0 {
		// The target sent more while its poll is unanswered, which no
		// client of this protocol does: answer now and close.
		p.persist = false
		p.expired.Store(true)
	}
	a.m.metrics.held.Inc()
	p.timer = time.AfterFunc(hold, func() { p.expired.Store(true); a.m.hub.unpark(p) })
	p.wait()
	return true
}

// wait parks the poll, or answers it at once if something answered it
// while it was not parked.
func (p *heldPoll) wait() {
	if p.gone.Load() {
		p.finish()
		return
	}
	p.startReading()
	if !p.a.m.hub.park(p) {
		answer(context.Background(), p.a.m, []*heldPoll{p})
	}
}

// startReading starts the look at the socket that notices the target
// going away: a target sends nothing on the connection until its poll is
// answered, so the look ends only when the target closes the connection,
// resets it, or breaks the protocol, or when stopReading ends it.
func (p *heldPoll) startReading() {
	done := make(chan struct{})
	p.read = done
	go func() {
		defer close(done)
		if _, err := peek(p.raw); !isTimeout(err) {
			p.gone.Store(true)
			p.a.m.hub.unpark(p)
		}
	}()
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var timeout net.Error
	return errors.As(err, &timeout) && timeout.Timeout()
}

// stopReading ends the read. readStopped waits for it to end, and
// reports whether the target is still there to be answered. Answering
// several polls, the reads are all ended first, then waited for.
func (p *heldPoll) stopReading() { p.raw.SetReadDeadline(aLongTimeAgo()) }

func (p *heldPoll) readStopped() bool {
	<-p.read
	p.raw.SetReadDeadline(time.Time{})
	return !p.gone.Load()
}

// aLongTimeAgo is a deadline that has passed. A function, not a variable,
// so that the package has nothing to compute when the program starts.
func aLongTimeAgo() time.Time { return time.Unix(1, 0) }

// answer answers polls the hub let go of: each with its instructions when
// it was woken, with the target's state when poked, empty when its hold
// ended or the master is closing. The instructions of all the polls woken
// are read in one statement; a wake-up that brought nothing for a poll
// parks it again.
func answer(ctx context.Context, m *Main, polls []*heldPoll) {
	recalled := recallTargets(ctx, m, polls)
	defer func() { <-recalled }()
	after := make(map[int64]int64, len(polls))
	woken := make([]*heldPoll, 0, len(polls))
	for _, p := range polls {
		p.stopReading()
	}
	for _, p := range polls {
		if !p.readStopped() {
			p.finish()
			continue
		}
		switch {
		case isClosed(m.hub.Closed()):
			p.respond(nil)
		case isClosed(p.poked):
			err := m.stillEnlisted(ctx, p.serial)
			if err == nil {
				_, p.reply.Paused, err = m.Catalog.PollState(ctx, p.target)
			}
			p.respond(err)
		case isClosed(p.woken):
			// Subscribe again before the read: what is posted after it
			// wakes the poll again.
			p.woken = m.hub.Subscribe(p.target)
			posted := p.posted
			p.posted = nil
			if follows(posted, p.after) {
				// What woke the poll is all it has pending up to the
				// last of it: no need to read it back.
				p.answerWith(ctx, posted, nil)
				continue
			}
			if _, twice := after[p.target]; twice {
				// Another poll of the target is in the read: read this
				// one's after its own cursor.
				ins, err := m.Catalog.PendingInstructions(ctx, p.target, p.after)
				p.answerWith(ctx, ins, err)
				continue
			}
			after[p.target] = p.after
			woken = append(woken, p)
		default: // the hold ended
			p.respond(nil)
		}
	}
	pending, err := m.Catalog.PendingInstructionsOf(ctx, after)
	for _, p := range woken {
		p.answerWith(ctx, pending[p.target], err)
	}
}

// recallTargets has the catalog remember, in one read, the certificates
// of the targets of polls woken or poked together, and returns a channel
// closed once it has. Each such target sends its next request (an
// acknowledgement, a poll) as soon as it has its reply, and that request's
// authentication would otherwise read its certificate on its own: in a
// fan-out, thousands of single reads that queue for the catalog's
// connections with the reads of the polls' instructions. The read runs
// while the polls are answered; a request that comes before it ends reads
// its own.
func recallTargets(ctx context.Context, m *Main, polls []*heldPoll) <-chan struct{} {
	done := make(chan struct{})
	serials := make([]string, 0, len(polls))
	for _, p := range polls {
		if p.serial != "" && (isClosed(p.woken) || isClosed(p.poked)) {
			serials = append(serials, p.serial)
		}
	}
	if len(serials) < 2 {
		close(done) // one target's own lookup costs as much
		return done
	}
	go func() {
		defer close(done)
		// A failed read leaves each request to read its own certificate,
		// as it would have; the answers do not depend on it.
		_ = m.Catalog.RecallTargets(ctx, serials)
	}()
	return done
}

// follows reports whether rows, committed together and in sequence
// order, are what a poll whose cursor is after has pending from its next
// instruction on: they begin right after it, leave no gap, and fit in a
// reply. Later instructions are the next poll's.
func follows(rows []catalog.InstructionRow, after int64) bool {
	if len(rows) == 0 || len(rows) > catalog.MaxPollBatch {
		return false
	}
	for i, r := range rows {
		if r.Seq != after+1+int64(i) {
			return false
		}
	}
	return true
}

// answerWith answers a woken poll with the instructions read for it, as
// many as one reply carries (what woke it may be more), or parks it again
// if there are none.
func (p *heldPoll) answerWith(ctx context.Context, ins []catalog.InstructionRow, err error) {
	if err == nil && len(ins) == 0 {
		p.wait()
		return
	}
	p.reply.Instructions = wireInstructions(p.a.m.Catalog.FitPoll(ins))
	p.respond(err)
}

// respond writes the poll's reply, or err, and gives the connection back
// to the server to serve the target's next request.
func (p *heldPoll) respond(err error) {
	m := p.a.m
	w := &bufferedReply{header: p.header}
	if err != nil {
		retryLater(w, err)
		jsonhttp.WriteError(w, pollRequest, m.log, err)
	} else {
		if p.reply.Instructions == nil {
			p.reply.Instructions = []agentproto.Instruction{}
		}
		p.reply.Masters, p.reply.ServerTime = m.masterURLs(), m.now()
		jsonhttp.WriteJSON(w, http.StatusOK, p.reply)
	}
	persist := p.persist && !isClosed(m.hub.Closed())
	p.conn.SetWriteDeadline(time.Now().Add(replyWriteTimeout))
	if err := w.writeTo(p.conn, persist); err != nil {
		persist = false
	}
	p.conn.SetWriteDeadline(time.Time{})
	if persist {
		m.resumed.await(p.conn, p.raw, m.srv.IdleTimeout)
	} else {
		p.conn.Close()
	}
	p.conn = nil
	p.done()
}

// finish lets go of a poll whose target went away: nobody reads a reply.
func (p *heldPoll) finish() {
	p.conn.Close()
	p.done()
}

// done releases what the poll held while it was held.
func (p *heldPoll) done() {
	m := p.a.m
	p.timer.Stop()
	m.hub.Done(p.target, p.poked)
	m.metrics.held.Dec()
	m.targetRequests.release(p.target)
}

// replyWriteTimeout bounds the write of a held poll's reply: a target that
// does not read it in that time loses its connection, and the answerer
// goes on to the next.
const replyWriteTimeout = 10 * time.Second

// pollRequest stands for a parked poll's request where an error reply
// names it in the log. Its context is context.Background (a Request
// without one answers that), and it has no header to read.
var pollRequest = &http.Request{Method: http.MethodGet, URL: &url.URL{Path: agentproto.PathInstructions}}

// bufferedReply is an http.ResponseWriter that keeps the reply, for a
// parked poll's answerer to write by hand.
type bufferedReply struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedReply) Header() http.Header { return b.header }

func (b *bufferedReply) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedReply) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// writeTo writes the reply as HTTP/1.1, asking the client to close the
// connection after it unless persist.
func (b *bufferedReply) writeTo(w io.Writer, persist bool) error {
	h := b.header
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", fmt.Sprint(b.body.Len()))
	if !persist {
		h.Set("Connection", "close")
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", b.status, http.StatusText(b.status))
	h.Write(&out)
	out.WriteString("\r\n")
	out.Write(b.body.Bytes())
	_, err := w.Write(out.Bytes())
	return err
}

// resumedListener hands the connections of answered polls back to the
// server, which serves them as if just accepted (their TLS handshake is
// done) so that a target's next request reuses its connection. A
// connection is handed back once its next request starts to arrive: the
// server gives a new connection's first request ReadHeaderTimeout, where a
// connection between requests has IdleTimeout, and a target may take
// longer than the one to apply what its poll brought.
type resumedListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	idle map[net.Conn]struct{} // sockets waited on by await
	wg   sync.WaitGroup
}

func newResumedListener(addr net.Addr) *resumedListener {
	return &resumedListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{}), idle: map[net.Conn]struct{}{}}
}

// await gives conn back to the server when its next request starts to
// arrive, raw being the socket under its TLS, or closes it if none comes
// within idle, or the listener is closed first.
func (l *resumedListener) await(conn, raw net.Conn, idle time.Duration) {
	l.mu.Lock()
	if isClosed(l.closed) {
		l.mu.Unlock()
		conn.Close()
		return
	}
	raw.SetReadDeadline(time.Now().Add(idle))
	l.idle[raw] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		n, err := peek(raw)
		raw.SetReadDeadline(time.Time{})
		l.mu.Lock()
		delete(l.idle, raw)
		l.mu.Unlock()
		if n == 0 || err != nil || !l.resume(conn) {
			conn.Close()
		}
	}()
}

// wait waits until every connection await was given is handed back or
// closed; Close first.
func (l *resumedListener) wait() { l.wg.Wait() }

// resume gives conn back to the server, and reports whether it took it:
// it does not once the server is closing.
func (l *resumedListener) resume(conn net.Conn) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.closed:
		return false
	}
}

// Accept returns the next connection given back.
func (l *resumedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops the listener: connections given back after it are closed,
// and so are those waiting for their next request.
func (l *resumedListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		close(l.closed)
		for raw := range l.idle {
			raw.SetReadDeadline(aLongTimeAgo())
		}
	})
	return nil
}

// Addr is the address of the listener the connections came from.
func (l *resumedListener) Addr() net.Addr { return l.addr }

// answerers answer parked polls, a few at a time.
type answerers struct {
	m       *Main
	mu      sync.Mutex
	ready   *sync.Cond
	queue   []*heldPoll
	stopped bool
	running atomic.Bool
	inline  int        // poll handlers between enter and leave
	left    *sync.Cond // a handler left
	wg      sync.WaitGroup
}

// answerersCount is how many parked polls are answered at once: enough to
// keep both the catalog and the sockets busy on a few cores.
const answerersCount = 16

func newAnswerers(m *Main) *answerers {
	q := &answerers{m: m}
	q.ready = sync.NewCond(&q.mu)
	q.left = sync.NewCond(&q.mu)
	return q
}

// start starts the answerers.
func (q *answerers) start() {
	q.mu.Lock()
	q.stopped = false
	q.mu.Unlock()
	q.wg.Add(answerersCount)
	for range answerersCount {
		go q.run()
	}
	q.running.Store(true)
}

// enter reports whether the answerers are serving, and a poll handler
// may park its poll; one that may calls leave once it has parked the poll
// or answered it, and stop waits for it.
func (q *answerers) enter() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.running.Load() || q.stopped {
		return false
	}
	q.inline++
	return true
}

// leave ends what enter began.
func (q *answerers) leave() {
	q.mu.Lock()
	q.inline--
	q.mu.Unlock()
	q.left.Broadcast()
}

// add queues parked polls to be answered, an answerer woken for each
// batch of them. It never blocks: the hub calls it with its lock held.
func (q *answerers) add(polls ...*heldPoll) {
	q.mu.Lock()
	q.queue = append(q.queue, polls...)
	q.mu.Unlock()
	for i := 0; i < len(polls); i += maxAnswerBatch {
		q.ready.Signal()
	}
}

// stop waits for the poll handlers parking or answering their polls,
// answers what is queued, then stops the answerers.
func (q *answerers) stop() {
	q.running.Store(false)
	q.mu.Lock()
	q.stopped = true
	for q.inline > 0 {
		q.left.Wait()
	}
	q.mu.Unlock()
	q.ready.Broadcast()
	q.wg.Wait()
}

func (q *answerers) run() {
	defer q.wg.Done()
	ctx := context.Background()
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.stopped {
			q.ready.Wait()
		}
		if len(q.queue) == 0 {
			q.mu.Unlock()
			return
		}
		n := min(len(q.queue), maxAnswerBatch)
		batch := slices.Clone(q.queue[:n])
		clear(q.queue[:n])
		q.queue = q.queue[n:]
		q.mu.Unlock()
		answer(ctx, q.m, batch)
	}
}

// maxAnswerBatch is how many parked polls an answerer takes at once: the
// polls a post woke are read in statements of that many targets, and the
// answerers share a large fan-out.
const maxAnswerBatch = 128
