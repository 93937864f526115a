package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/netopt"
)

// client speaks the agent protocol over mutual TLS to the target's master:
// one of the masters of a group, which all share one CA and one catalog.
// Every request goes to the current master. When it stops answering, the
// client moves to the next master of the list, a while after its first
// failure: within a poll interval, at a point drawn for each episode, so
// that a fleet does not move all in the same second.
type client struct {
	roots *x509.CertPool
	// http is replaced when the certificate is renewed, so that no
	// connection or TLS session made with the old certificate is reused.
	http atomic.Pointer[http.Client]
	cert atomic.Pointer[tls.Certificate]

	now      func() time.Time
	interval func() time.Duration // the poll interval: a silent master is left within it
	pollWait time.Duration        // the longest a poll asks the master to hold it
	moved    func(from, to string)

	mu      sync.Mutex
	masters []*url.URL
	current int
	silent  time.Time     // when the current master first failed to answer, since it last did
	leaveIn time.Duration // how long after silent it is left
	// untried is true from a move until the master moved to answers: a
	// failure then moves on at once, so that a master down for good in
	// the list costs a retry, not another wait.
	untried  bool
	episodes int // masters left, for tests
}

// newClient returns a client of the masters, starting with current (one of
// them), whose polls ask the master to hold them at most pollWait. now and
// interval say when a silent master is left; moved is told when one is.
func newClient(masters []string, current string, roots *x509.CertPool, cert *tls.Certificate, pollWait time.Duration, now func() time.Time,
	interval func() time.Duration, moved func(from, to string)) (*client, error) {
	c := &client{roots: roots, now: now, interval: interval, pollWait: pollWait, moved: moved}
	if err := c.setMasters(masters, current); err != nil {
		return nil, err
	}
	c.setCert(cert)
	return c, nil
}

// setMasters makes masters the list to use, and current (else the first)
// the master in use.
func (c *client) setMasters(masters []string, current string) error {
	urls, err := parseMasters(masters)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.masters) > 0 {
		current = c.masters[c.current].String()
	}
	c.masters, c.current = urls, 0
	for i, u := range urls {
		if u.String() == current {
			c.current = i
		}
	}
	return nil
}

// parseMasters checks a list of master URLs.
func parseMasters(masters []string) ([]*url.URL, error) {
	if len(masters) == 0 {
		return nil, muster.Errorf(muster.EINVALID, "no master")
	}
	urls := make([]*url.URL, len(masters))
	seen := map[string]bool{}
	for i, m := range masters {
		u, err := url.Parse(strings.TrimSpace(m))
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, muster.Errorf(muster.EINVALID, "%q is not a master URL such as https://master.example:7070", m)
		}
		if seen[u.String()] {
			return nil, muster.Errorf(muster.EINVALID, "%s is listed twice", u)
		}
		seen[u.String()], urls[i] = true, u
	}
	return urls, nil
}

// base is the URL of the master in use.
func (c *client) base() *url.URL {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.masters[c.current]
}

// answered notes that the master at u answered.
func (c *client) answered(u *url.URL) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.masters[c.current] == u {
		c.silent, c.untried = time.Time{}, false
	}
}

// unanswered notes that the master at u did not answer, and moves to the
// next master once the current one has been silent for long enough, or at
// once if it has not answered since the client moved to it.
func (c *client) unanswered(u *url.URL) {
	c.mu.Lock()
	if c.masters[c.current] != u || len(c.masters) < 2 {
		c.mu.Unlock()
		return
	}
	now := c.now()
	if !c.untried {
		if c.silent.IsZero() {
			c.silent, c.leaveIn = now, leaveDelay(c.interval())
			c.mu.Unlock()
			return
		}
		if now.Sub(c.silent) < c.leaveIn {
			c.mu.Unlock()
			return
		}
	}
	c.current = (c.current + 1) % len(c.masters)
	c.silent, c.untried = time.Time{}, true
	c.episodes++
	to := c.masters[c.current]
	c.mu.Unlock()
	c.moved(u.String(), to.String())
}

// refused notes that the master at u refused to serve this target (it
// speaks another protocol), and moves to the next master at once.
func (c *client) refused(u *url.URL) {
	c.mu.Lock()
	if c.masters[c.current] == u {
		c.untried = true
	}
	c.mu.Unlock()
	c.unanswered(u)
}

// leaveDelay is how long a silent master is kept: between a tenth and
// four tenths of the poll interval, drawn at random, so that with the
// retries' backoff (6 s at most, jitter included) a target moves within a
// poll interval even at the shortest (10 s), and a fleet spreads its moves
// over that time.
func leaveDelay(interval time.Duration) time.Duration {
	return interval/10 + rand.N(interval*3/10+1)
}

// setCert makes cert the one presented from now on.
func (c *client) setCert(cert *tls.Certificate) {
	c.cert.Store(cert)
	old := c.http.Swap(&http.Client{Transport: c.transport(cert)})
	if old != nil {
		old.CloseIdleConnections()
	}
}

// transport returns a transport presenting cert (none when nil).
func (c *client) transport(cert *tls.Certificate) *http.Transport {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            c.roots,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Transport{
		DialContext:           dialer().DialContext,
		TLSClientConfig:       cfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: c.pollWait + replyTimeout,
	}
}

// deadPeerTimeout bounds how long a connection to a master that has gone
// silent is kept (see netopt.DeadPeerDialer): a request in flight on it,
// and every upload queued behind it, would otherwise wait until the kernel
// gives up, about 15 minutes.
const deadPeerTimeout = 20 * time.Second

// dialer makes the connections to the master.
func dialer() *net.Dialer { return netopt.DeadPeerDialer(30*time.Second, deadPeerTimeout) }

func (c *client) close() { c.http.Load().CloseIdleConnections() }

// replyTimeout bounds how long a request, once sent whole, waits for the
// master's reply to begin, after the longest a poll asks the master to
// hold it (the transport's ResponseHeaderTimeout). A master whose process
// is stuck (on a catalog it lost without a reset, say) still completes
// handshakes, and its kernel answers keep-alive probes, so nothing else
// would end the wait: the request would wait for ever, and the poll loop
// behind its acks with it. A master that does not reply within it is
// silent, as one that cannot be reached.
var replyTimeout = 30 * time.Second

// replyLimit bounds a reply the target reads (agentproto.MaxReplyBytes):
// one from a broken master, or a party that is not one, cannot exhaust
// its memory.
var replyLimit int64 = agentproto.MaxReplyBytes

// call sends a request with the protocol header and decodes the reply.
func (c *client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.callWith(ctx, c.http.Load(), method, path, query, in, out)
}

// callWith is call on hc. A request given up on for the caller's own
// reasons (ctx canceled) says nothing of the master; one whose deadline
// passed (a poll held past its bound), or whose reply did not begin in
// time, says it is silent.
func (c *client) callWith(ctx context.Context, hc *http.Client, method, path string, query url.Values, in, out any) error {
	base := c.base()
	u := base.JoinPath(path)
	u.RawQuery = query.Encode()
	err := jsonhttp.Do(ctx, hc, jsonhttp.Request{Method: method, URL: u.String(), In: in, Out: out, Strict: true, MaxReply: replyLimit,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
	expired := errors.Is(ctx.Err(), context.DeadlineExceeded)
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		if ctx.Err() == nil {
			// The pooled connections may be as dead as the one that
			// failed; the next request dials afresh.
			hc.CloseIdleConnections()
		}
		err = muster.Wrap(muster.EUNAVAILABLE, te.Err, "master %s", base.Host)
	} else if expired && err != nil {
		err = muster.Wrap(muster.EUNAVAILABLE, err, "master %s: no reply in time", base.Host)
	}
	var unreadable *jsonhttp.ReplyError
	switch {
	case ctx.Err() != nil && !expired: // given up on: says nothing of the master
	case muster.ErrorCode(err) == muster.EUNAVAILABLE:
		c.unanswered(base) // unreachable, silent, or shutting down
	case errors.As(err, &unreadable):
		// It answered with what cannot be read (cut short by a proxy,
		// over the bound, malformed): as good as silent, and another
		// master of the group may do better.
		c.unanswered(base)
	case muster.ErrorCode(err) == muster.EUNSUPPORTED:
		// A master of another protocol (one not upgraded yet, in a group
		// being upgraded) will not serve this target until it is upgraded
		// itself: another master of the group may.
		c.refused(base)
	default:
		c.answered(base)
	}
	return err
}

// heartbeat is what a poll reports about the target.
type heartbeat struct {
	LocalTime    time.Time
	TimeZone     string
	PollInterval int
	SpoolDepth   int
	SpoolOldest  time.Duration // how long the oldest run in the spool has waited
	SpoolDropped int
	ClockOffset  *time.Duration
	Paused       bool
	DiskFull     bool
	Tracking     string // how the target tracks a run's processes
}

// poll fetches instructions after seq, waiting at most wait for some.
func (c *client) poll(ctx context.Context, after int64, epoch string, wait time.Duration, hb heartbeat) (agentproto.PollResponse, error) {
	q := url.Values{}
	q.Set(agentproto.QueryAfter, strconv.FormatInt(after, 10))
	q.Set(agentproto.QueryEpoch, epoch)
	q.Set(agentproto.QueryWait, strconv.Itoa(int(wait/time.Second)))
	q.Set(agentproto.QueryLocalTime, hb.LocalTime.Format(time.RFC3339Nano))
	q.Set(agentproto.QueryTimeZone, hb.TimeZone)
	q.Set(agentproto.QueryPollInterval, strconv.Itoa(hb.PollInterval))
	q.Set(agentproto.QueryVersion, muster.Version)
	q.Set(agentproto.QuerySpoolDepth, strconv.Itoa(hb.SpoolDepth))
	q.Set(agentproto.QuerySpoolDropped, strconv.Itoa(hb.SpoolDropped))
	q.Set(agentproto.QuerySpoolOldest, strconv.FormatFloat(hb.SpoolOldest.Seconds(), 'f', 3, 64))
	q.Set(agentproto.QueryPaused, strconv.FormatBool(hb.Paused))
	q.Set(agentproto.QueryDiskFull, strconv.FormatBool(hb.DiskFull))
	q.Set(agentproto.QueryProcessTracking, hb.Tracking)
	if hb.ClockOffset != nil {
		q.Set(agentproto.QueryClockOffset, strconv.FormatInt(hb.ClockOffset.Milliseconds(), 10))
	}
	var resp agentproto.PollResponse
	err := c.call(ctx, http.MethodGet, agentproto.PathInstructions, q, nil, &resp)
	return resp, err
}

func (c *client) ack(ctx context.Context, acks []agentproto.Ack) error {
	return c.call(ctx, http.MethodPost, agentproto.PathAcks, nil, agentproto.AckRequest{Acks: acks}, nil)
}

func (c *client) uploadRuns(ctx context.Context, runs []agentproto.RunReport) ([]agentproto.RunResult, error) {
	var resp agentproto.RunsResponse
	q := url.Values{agentproto.QuerySentAt: {c.now().Format(time.RFC3339Nano)}}
	err := c.call(ctx, http.MethodPost, agentproto.PathRuns, q, agentproto.RunsRequest{Runs: runs}, &resp)
	if err == nil && len(resp.Results) != len(runs) {
		err = fmt.Errorf("the master answered %d results for %d runs", len(resp.Results), len(runs))
	}
	return resp.Results, err
}

func (c *client) resync(ctx context.Context, after int64) (agentproto.ResyncResponse, error) {
	var resp agentproto.ResyncResponse
	err := c.call(ctx, http.MethodPost, agentproto.PathResync, nil, agentproto.ResyncRequest{After: after}, &resp)
	return resp, err
}

func (c *client) renew(ctx context.Context, csr []byte) (agentproto.RenewResponse, error) {
	var resp agentproto.RenewResponse
	err := c.call(ctx, http.MethodPost, agentproto.PathRenew, nil, agentproto.RenewRequest{CSR: csr}, &resp)
	return resp, err
}

// renewExpired is sent without a client certificate: the master would
// refuse the handshake with an expired one.
func (c *client) renewExpired(ctx context.Context, req agentproto.RenewExpiredRequest) (agentproto.RenewResponse, error) {
	tr := c.transport(nil)
	defer tr.CloseIdleConnections()
	var resp agentproto.RenewResponse
	err := c.callWith(ctx, &http.Client{Transport: tr}, http.MethodPost, agentproto.PathRenewExpired, nil, req, &resp)
	return resp, err
}

func (c *client) defect(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, agentproto.PathDefect, nil, struct{}{}, nil)
}
