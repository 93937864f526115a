package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/master"
)

// clock is a clock a test moves forward; it runs with real time between.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// A silent master is left between a tenth and half of the poll interval
// after its first failure, at a point drawn each time: a fleet does not
// move all in the same second.
func TestLeaveDelaySpreads(t *testing.T) {
	const interval = time.Minute
	seconds := map[int64]int{}
	lo, hi := time.Hour, time.Duration(0)
	for range 10000 {
		d := leaveDelay(interval)
		lo, hi = min(lo, d), max(hi, d)
		seconds[int64(d/time.Second)]++
	}
	if lo < interval/10 || hi > interval*4/10 {
		t.Errorf("delays from %s to %s, want within %s and %s", lo, hi, interval/10, interval*4/10)
	}
	if len(seconds) < 17 {
		t.Errorf("10,000 targets would move within %d distinct seconds, want them spread over the 18 s window", len(seconds))
	}
	for s, n := range seconds {
		if n > 1000 {
			t.Errorf("%d of 10,000 targets would move in second %d", n, s)
		}
	}
}

// The client moves to the next master once the current one has been
// silent for the delay drawn at its first failure; an answer resets it;
// what a request to a master it no longer uses says is ignored.
func TestClientMovesOffASilentMaster(t *testing.T) {
	clk := &clock{}
	var moves []string
	c, err := newClient([]string{"https://m1:7070", "https://m2:7070"}, "https://m2:7070", nil, nil, 0, clk.Now,
		func() time.Duration { return time.Minute }, func(from, to string) { moves = append(moves, from+" → "+to) })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.base().String(); got != "https://m2:7070" {
		t.Fatalf("starts with %s, want the one in use", got)
	}
	m2 := c.base()
	c.unanswered(m2)
	clk.Advance(5 * time.Second)
	c.unanswered(m2)
	c.answered(m2) // it is back: the episode ends
	clk.Advance(time.Minute)
	c.unanswered(m2) // a new episode begins here
	if len(moves) != 0 {
		t.Fatalf("moved %v, before the master was silent long enough", moves)
	}
	clk.Advance(30 * time.Second)
	c.unanswered(m2)
	if want := []string{"https://m2:7070 → https://m1:7070"}; !slices.Equal(moves, want) {
		t.Fatalf("moves %v, want %v", moves, want)
	}
	// A late failure of a request sent to m2 says nothing of m1.
	c.unanswered(m2)
	clk.Advance(time.Hour)
	c.unanswered(m2)
	if got := c.base().String(); got != "https://m1:7070" || len(moves) != 1 {
		t.Errorf("at %s after %v, want m1 and one move", got, moves)
	}
}

// A poll reply that announces the group's masters makes them the target's
// list, kept across restarts, the master in use staying in use; a reply
// that announces none, or nonsense, leaves the list as it was.
func TestPollRepliesRefreshTheMasters(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	ctx := context.Background()
	current := m.Master()
	if !slices.Equal(m.masters, []string{current}) {
		t.Fatalf("enlisted with one master, the list is %v", m.masters)
	}
	if err := m.refreshMasters(ctx, nil); err != nil || !slices.Equal(m.masters, []string{current}) {
		t.Fatalf("a reply without masters: %v %v", m.masters, err)
	}
	group := []string{"https://m0.example:7070", current, "https://m2.example:7070"}
	if err := m.refreshMasters(ctx, group); err != nil {
		t.Fatal(err)
	}
	if m.Master() != current {
		t.Errorf("the master in use moved to %s", m.Master())
	}
	if err := m.refreshMasters(ctx, []string{"ftp://nope"}); muster.ErrorCode(err) != muster.EINVALID || !slices.Equal(m.masters, group) {
		t.Errorf("a reply with a bad URL: %v, list %v", err, m.masters)
	}
	enl, _, err := m.store.enlistment(ctx)
	if err != nil || !slices.Equal(enl.Masters, group) {
		t.Errorf("the stored list is %v (%v), want %v", enl.Masters, err, group)
	}
}

// A poll reply whose masters do not name the master that answered it (the
// master's --advertise is not how this target reaches it: another name, a
// mistyped port, a URL made from its listener) does not take the target
// off that master: it stays in use, first in the list, kept across
// restarts, until the target moves away from it.
func TestMasterInUseStaysWhenTheRepliesDoNotNameIt(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	ctx := context.Background()
	current := m.Master()
	announced := []string{"https://m0.example:7070", "https://m2.example:7070"}
	want := append([]string{current}, announced...)
	for i := range 2 {
		if err := m.refreshMasters(ctx, announced); err != nil {
			t.Fatal(err)
		}
		if m.Master() != current || !slices.Equal(m.masters, want) {
			t.Fatalf("reply %d: the target uses %s of %v, want %s of %v", i+1, m.Master(), m.masters, current, want)
		}
	}
	enl, _, err := m.store.enlistment(ctx)
	if err != nil || !slices.Equal(enl.Masters, want) {
		t.Errorf("the stored list is %v (%v), want %v", enl.Masters, err, want)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A target enlisted with two masters moves to the second when the first
// stops answering, within a poll interval, and then sends everything
// there: polls, acks, run uploads. The two masters are one master,
// stopped and started again on a second address over the same catalog
// (two masters sharing one catalog need the PostgreSQL catalog).
func TestTargetMovesToTheNextMaster(t *testing.T) {
	tm := startTestMaster(t)
	second := "https://" + freeAddr(t)
	clk := &clock{}
	dir := t.TempDir()
	if _, err := Enlist(context.Background(), EnlistOptions{MasterURL: tm.URL + "," + second, Token: tm.token(t, "web1"), Name: "web1", DataDir: dir}); err != nil {
		t.Fatalf("enlist with a second master that is not up yet: %v", err)
	}
	m := openTarget(t, dir, func(c *Config) { c.Now = clk.Now })
	runTarget(t, m)
	first := tm.URL
	tm.apply(t, shellJob("before", []string{"web1"}, "echo before"))
	tm.settled(t)
	if r := tm.finished(t, tm.start(t, "before")...)[0]; r.Status != muster.RunSucceeded {
		t.Fatalf("a run through the first master: %s", r.Status)
	}

	tm.halt(t)
	tm.listen(t, strings.TrimPrefix(second, "https://"))
	// The first master is silent from now; a poll interval later the
	// target has moved.
	waitFor(t, time.Minute, "the target to notice the first master's silence", func() bool {
		m.client.mu.Lock()
		defer m.client.mu.Unlock()
		return !m.client.silent.IsZero()
	})
	clk.Advance(time.Duration(muster.DefaultPollInterval) * time.Second)
	waitFor(t, time.Minute, "the move to the second master", func() bool { return m.Master() == second })

	tm.apply(t, shellJob("after", []string{"web1"}, "echo after"))
	tm.settled(t)
	if r := tm.finished(t, tm.start(t, "after")...)[0]; r.Status != muster.RunSucceeded || r.Steps[0].Output != "after\n" {
		t.Errorf("a run through the second master: %s %q", r.Status, r.Steps[0].Output)
	}
	enl, _, err := m.store.enlistment(context.Background())
	if err != nil || enl.MasterURL != second || !slices.Equal(enl.Masters, []string{first, second}) {
		t.Errorf("stored: master %s, masters %v (%v); want the second in use, both known", enl.MasterURL, enl.Masters, err)
	}
}

// Every master given at enlistment must present the CA the token names,
// checked before anything is sent: a token is not spent on a bad list.
func TestEnlistRefusesMastersOfAnotherCA(t *testing.T) {
	a, b := startTestMaster(t), startTestMaster(t)
	tok := a.token(t, "web1")
	_, err := Enlist(context.Background(), EnlistOptions{MasterURL: a.URL + ", " + b.URL, Token: tok, Name: "web1", DataDir: t.TempDir()})
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), b.URL) || !strings.Contains(err.Error(), "share one CA") {
		t.Fatalf("enlist with masters of two CAs: %v, want refused naming %s", err, b.URL)
	}
	if _, err := Enlist(context.Background(), EnlistOptions{MasterURL: a.URL, Token: tok, Name: "web1", DataDir: t.TempDir()}); err != nil {
		t.Errorf("the token after the refused enlistment: %v, want it unspent", err)
	}
	_, err = Enlist(context.Background(), EnlistOptions{MasterURL: a.URL + ",http://plain", Token: a.token(t, "web2"), Name: "web2", DataDir: t.TempDir()})
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), `--master: "http://plain" is not a master URL`) {
		t.Errorf("a URL that is not https: %v", err)
	}
	_, err = Enlist(context.Background(), EnlistOptions{MasterURL: a.URL + "," + a.URL, Token: a.token(t, "web2"), Name: "web2", DataDir: t.TempDir()})
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "--master: "+a.URL+" is listed twice") {
		t.Errorf("a URL given twice: %v", err)
	}
}

// A master of another epoch (restarted over a catalog restored from a
// backup) makes the target ask for a resync at its next poll: it takes the
// new epoch, and every job again.
func TestNewEpochResyncs(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	runTarget(t, m)
	tm.apply(t, shellJob("a", []string{"web1"}, "true"))
	tm.settled(t)
	addr := strings.TrimPrefix(tm.URL, "https://")
	tm.halt(t)
	tm.listen(t, addr, func(c *master.Config) { c.NewEpoch = true })
	epoch := tm.Catalog.Epoch()
	waitFor(t, time.Minute, "the target to take the new epoch", func() bool {
		st, err := m.store.state(context.Background())
		return err == nil && st[keyEpoch] == epoch
	})
	tm.settled(t)
	if jobs, err := m.Jobs(context.Background()); err != nil || !slices.Equal(jobs, []string{"a"}) {
		t.Errorf("after the resync the target holds %v (%v), want [a]", jobs, err)
	}
}

// Once the client has moved, a master that fails before it ever answered
// is left at once: a master down for good in the list costs a retry, not
// another wait. One that answered is given its drawn delay again.
func TestClientSkipsAMasterThatNeverAnswered(t *testing.T) {
	clk := &clock{}
	var moves []string
	c, err := newClient([]string{"https://m1:7070", "https://m2:7070", "https://m3:7070"}, "https://m1:7070", nil, nil, 0, clk.Now,
		func() time.Duration { return time.Minute }, func(from, to string) { moves = append(moves, from+" → "+to) })
	if err != nil {
		t.Fatal(err)
	}
	c.unanswered(c.base())
	clk.Advance(time.Minute)
	c.unanswered(c.base()) // m1 silent long enough: to m2
	c.unanswered(c.base()) // m2 never answered: to m3 at once
	want := []string{"https://m1:7070 → https://m2:7070", "https://m2:7070 → https://m3:7070"}
	if !slices.Equal(moves, want) {
		t.Fatalf("moves %v, want %v", moves, want)
	}
	c.answered(c.base())
	c.unanswered(c.base()) // m3 answered: a failure starts an episode
	if len(moves) != 2 {
		t.Fatalf("moves %v: left m3 at its first failure though it had answered", moves)
	}
}

// twoMasters makes a client of two masters: bad, which answers with
// handler, then a good one after it, whose replies are empty; the client
// starts with bad, and its interval is interval. moves lists the client's
// moves, "from → to".
func twoMasters(t *testing.T, handler http.HandlerFunc, interval time.Duration) (c *client, clk *clock, moves *[]string, bad, good string) {
	t.Helper()
	badSrv := httptest.NewTLSServer(handler)
	goodSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(goodSrv.Close)
	t.Cleanup(badSrv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(badSrv.Certificate())
	roots.AddCert(goodSrv.Certificate())
	clk, moves = &clock{}, &[]string{}
	c, err := newClient([]string{badSrv.URL, goodSrv.URL}, badSrv.URL, roots, nil, 0, clk.Now,
		func() time.Duration { return interval }, func(from, to string) { *moves = append(*moves, from+" → "+to) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, clk, moves, badSrv.URL, goodSrv.URL
}

// A master that takes connections but never replies (its process stuck,
// its kernel and TLS stack still answering) is silent: a poll whose
// deadline passes, and any request whose reply has not begun within
// replyTimeout (after the longest poll hold, here none) of being sent,
// count against it as a refused connection does, and the client moves to
// the next master. Without the bound an
// acknowledgement to it would wait for ever, and the poll loop with it.
func TestClientLeavesAMasterThatNeverReplies(t *testing.T) {
	defer func(d time.Duration) { replyTimeout = d }(replyTimeout)
	replyTimeout = time.Second
	release := make(chan struct{})
	defer close(release)
	c, clk, moves, stuck, good := twoMasters(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 10*time.Second)

	// A poll held past its own deadline (pollOnce's, which ends a poll
	// before the transport's bound does).
	pctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := c.poll(pctx, 0, "e", time.Minute, heartbeat{LocalTime: clk.Now(), PollInterval: 10})
	cancel()
	if muster.ErrorCode(err) != muster.EUNAVAILABLE {
		t.Fatalf("a poll the master held past its deadline: %v, want %s", err, muster.EUNAVAILABLE)
	}
	clk.Advance(time.Minute) // past any delay drawn for leaving a master silent for a 10 s interval
	// An acknowledgement, with no deadline of its caller's.
	err = c.ack(context.Background(), []agentproto.Ack{{Seq: 1, OK: true}})
	if muster.ErrorCode(err) != muster.EUNAVAILABLE {
		t.Fatalf("an acknowledgement the master never replied to: %v, want %s", err, muster.EUNAVAILABLE)
	}
	if want := []string{stuck + " → " + good}; !slices.Equal(*moves, want) {
		t.Fatalf("moves %v, want %v", *moves, want)
	}
	if err := c.ack(context.Background(), []agentproto.Ack{{Seq: 1, OK: true}}); err != nil {
		t.Errorf("an acknowledgement to the master moved to: %v", err)
	}
}

// A SYNC-TIME or a RE-ENLIST that cannot reach the master is kept for the
// next poll, not failed: the cursor stays before it and nothing is
// acknowledged; once the master answers, it is carried out.
func TestExchangeWithAnUnreachableMasterIsKept(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	ctx := context.Background()
	cursor := m.enl.Cursor
	tm.halt(t)
	for i, op := range []muster.Operation{muster.OpSyncTime, muster.OpReEnlist} {
		in := agentproto.Instruction{Seq: cursor + 1, Operation: op}
		_, err := m.apply(ctx, in, time.Now())
		if muster.ErrorCode(err) != muster.EUNAVAILABLE {
			t.Fatalf("%d: %s with the master down: %v, want %s", i, op, err, muster.EUNAVAILABLE)
		}
		if m.enl.Cursor != cursor {
			t.Errorf("%s moved the cursor to %d, want %d", op, m.enl.Cursor, cursor)
		}
		if acks, err := m.store.pendingAcks(ctx); err != nil || len(acks) != 0 {
			t.Errorf("%s left acknowledgements %v (%v), want none", op, acks, err)
		}
	}
}

// A master that refuses the target's protocol (426: a master not yet
// upgraded, a target already upgraded) will not serve it until it is
// upgraded itself: the client moves to the next master at once, as from
// one that never answered, rather than staying with it.
func TestClientLeavesAMasterOfAnotherProtocol(t *testing.T) {
	c, clk, moves, old, good := twoMasters(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUpgradeRequired)
		w.Write([]byte(`{"error":{"code":"unsupported","message":"the target speaks protocol 3, newer than this master's 2; upgrade the master first (it accepts protocols 1 to 2)"}}`))
	}, time.Minute)
	c.answered(c.base()) // it answered before its refusal: a silent master would be kept a while
	_, err := c.poll(context.Background(), 0, "e", 0, heartbeat{LocalTime: clk.Now(), PollInterval: 60})
	if muster.ErrorCode(err) != muster.EUNSUPPORTED || !strings.Contains(err.Error(), "protocol 3") {
		t.Fatalf("a poll the master refused for its protocol: %v, want %s", err, muster.EUNSUPPORTED)
	}
	if want := []string{old + " → " + good}; !slices.Equal(*moves, want) {
		t.Fatalf("moves %v, want %v", *moves, want)
	}
	if err := c.ack(context.Background(), []agentproto.Ack{{Seq: 1, OK: true}}); err != nil {
		t.Errorf("an acknowledgement to the master moved to: %v", err)
	}
}

// A reply longer than a master may send (agentproto.MaxReplyBytes; lower
// here) is refused with an error that names the limit, and the target
// stops reading it there: a master that sends without end cannot exhaust
// the target's memory.
func TestClientRefusesAReplyOverTheLimit(t *testing.T) {
	defer func(n int64) { replyLimit = n }(replyLimit)
	replyLimit = 1 << 20
	sent := make(chan bool, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// A poll reply whose one instruction's job name never ends, written
		// a chunk at a time: far more than the limit, held a chunk at a time.
		whole := func() bool {
			if _, err := w.Write([]byte(`{"epoch":"e","protocol":2,"instructions":[{"seq":1,"operation":"INSERT","job":"`)); err != nil {
				return false
			}
			chunk := []byte(strings.Repeat("x", 32<<10))
			for n := 0; n < 64<<20; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return false
				}
			}
			_, err := w.Write([]byte(`"}]}`))
			return err == nil
		}()
		sent <- whole
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	clk := &clock{}
	c, err := newClient([]string{srv.URL}, srv.URL, roots, nil, 0, clk.Now,
		func() time.Duration { return 10 * time.Second }, func(from, to string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	_, err = c.poll(context.Background(), 0, "e", 0, heartbeat{LocalTime: clk.Now(), PollInterval: 10})
	whole := <-sent
	if code := muster.ErrorCode(err); code != muster.ETOOLARGE {
		t.Fatalf("a poll reply over the limit: %v (code %s), want %s", err, code, muster.ETOOLARGE)
	}
	if msg := muster.ErrorMessage(err); !strings.Contains(msg, "limit of 1048576 bytes") {
		t.Errorf("message %q; want it to name the limit of 1048576 bytes", msg)
	}
	if whole {
		t.Error("the master sent the whole reply; want the target to stop reading at the limit")
	}
}

// A master whose replies cannot be read (cut short by a proxy in front of
// it, malformed) is as good as silent: the client moves to the next master
// once it has been so for the delay, as from one that does not answer.
func TestClientLeavesAMasterWhoseRepliesCannotBeRead(t *testing.T) {
	c, clk, moves, broken, good := twoMasters(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"epoch":"e","instructions":[`)) // cut short
	}, time.Minute)
	c.answered(c.base()) // it answered well before: it is kept a while
	polls := 0
	for len(*moves) == 0 && polls < 3 {
		_, err := c.poll(context.Background(), 0, "e", 0, heartbeat{LocalTime: clk.Now(), PollInterval: 60})
		var unreadable *jsonhttp.ReplyError
		if !errors.As(err, &unreadable) {
			t.Fatalf("a poll whose reply is cut short: %v, want a reply that cannot be read", err)
		}
		polls++
		clk.Advance(30 * time.Second) // past the longest delay for a minute's interval
	}
	if want := []string{broken + " → " + good}; !slices.Equal(*moves, want) || polls != 2 {
		t.Fatalf("moves %v after %d polls, want %v after 2: the first starts the delay, the one after it moves", *moves, polls, want)
	}
	if _, err := c.poll(context.Background(), 0, "e", 0, heartbeat{LocalTime: clk.Now(), PollInterval: 60}); err != nil {
		t.Errorf("a poll of the master moved to: %v", err)
	}
}

// A master of the token's CA reached at a name its certificate does not
// cover is not "another CA's master": the refusal says which names the
// certificate covers and how to add this one, and the token is unspent.
func TestEnlistNamesTheHostTheMastersCertificateDoesNotCover(t *testing.T) {
	tm := &testMaster{dir: t.TempDir()}
	tm.listen(t, "0.0.0.0:0") // reachable at 127.0.0.2, which its certificate does not cover
	t.Cleanup(func() { tm.halt(t) })
	_, port, err := net.SplitHostPort(strings.TrimPrefix(tm.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	uncovered := "https://127.0.0.2:" + port
	tok := tm.token(t, "web1")
	_, err = Enlist(context.Background(), EnlistOptions{MasterURL: uncovered, Token: tok, Name: "web1", DataDir: t.TempDir()})
	if muster.ErrorCode(err) != muster.EINVALID {
		t.Fatalf("enlist at a name the certificate does not cover: %v, want EINVALID", err)
	}
	for _, want := range []string{"does not cover 127.0.0.2", "127.0.0.1", "--host 127.0.0.2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "share one CA") || strings.Contains(err.Error(), "not a master of the token's CA") {
		t.Errorf("the refusal %q blames the CA, which is the token's", err)
	}
	if _, err := Enlist(context.Background(), EnlistOptions{MasterURL: "https://127.0.0.1:" + port, Token: tok, Name: "web1", DataDir: t.TempDir()}); err != nil {
		t.Errorf("the token after the refused enlistment: %v, want it unspent", err)
	}
}

// A server whose clock is far behind the master's finds the master's
// certificate not yet valid: the refusal says to check the clock, not that
// the master is another CA's, and the token is unspent.
func TestEnlistWithAClockBehindTheMastersSaysSo(t *testing.T) {
	ahead := func(c *master.Config) { c.Now = func() time.Time { return time.Now().Add(time.Hour) } }
	tm := startTestMaster(t, ahead)
	tok := tm.token(t, "web1")
	_, err := Enlist(context.Background(), EnlistOptions{MasterURL: tm.URL, Token: tok, Name: "web1", DataDir: t.TempDir()})
	if muster.ErrorCode(err) != muster.EINVALID {
		t.Fatalf("enlist with a clock an hour behind the master's: %v, want EINVALID", err)
	}
	for _, want := range []string{"not valid yet", "this server's clock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "share one CA") || strings.Contains(err.Error(), "not a master of the token's CA") {
		t.Errorf("the refusal %q blames the CA, which is the token's", err)
	}
}
