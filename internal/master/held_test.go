package master_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// poller polls as a target does, on connections it keeps alive.
type poller struct {
	env *testenv.Env
	hc  *http.Client
}

func newPoller(env *testenv.Env, id identity) *poller {
	cert := id.tls()
	cfg := &tls.Config{RootCAs: env.Master.CA.Pool(), MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
	return &poller{env: env, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}}
}

// poll polls with the query given, and returns the reply and whether the
// request went on a connection an earlier one used.
func (p *poller) poll(ctx context.Context, query string) (agentproto.PollResponse, bool, error) {
	var reused bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(c httptrace.GotConnInfo) { reused = c.Reused }})
	var reply agentproto.PollResponse
	err := jsonhttp.Do(ctx, p.hc, jsonhttp.Request{Method: http.MethodGet, URL: p.env.Master.URL + agentproto.PathInstructions + "?" + query,
		Out: &reply, Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
	return reply, reused, err
}

// pollResult is what a poll sent in the background came back with.
type pollResult struct {
	reply  agentproto.PollResponse
	reused bool
	err    error
}

// pollInBackground polls, and sends the result when it comes.
func (p *poller) pollInBackground(ctx context.Context, query string) <-chan pollResult {
	done := make(chan pollResult, 1)
	go func() {
		reply, reused, err := p.poll(ctx, query)
		done <- pollResult{reply, reused, err}
	}()
	return done
}

// waitParked waits until n polls are parked on the master.
func waitParked(t *testing.T, m *master.Main, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, strconv.Itoa(n)+" polls parked", func() bool { return master.ParkedPolls(m) == n })
}

const heldQuery = "after=0&wait=55&poll_interval=60"

// A held poll is parked: it is answered when something is posted for its
// target, with what was posted, on the connection it came on, and the
// target's next poll goes on that connection too.
func TestParkedPollIsAnsweredAndItsConnectionServesTheNext(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()
	ctx := context.Background()

	// A first poll opens the connection.
	first, _, err := p.poll(ctx, "after=0&wait=0&poll_interval=60")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Instructions) != 0 {
		t.Fatalf("the first poll brought %d instructions, want none", len(first.Instructions))
	}
	done := p.pollInBackground(ctx, heldQuery)
	waitParked(t, env.Master, 1)
	if got := master.HeldPolls(env.Master); got != 1 {
		t.Errorf("muster_polls_held is %v with one poll parked, want 1", got)
	}

	job := muster.NewJob()
	job.Name, job.Targets = "backup", []string{"web1"}
	job.Steps = []muster.Step{{Name: "main", Shell: "true"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{job}}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.reply.Instructions) != 1 || res.reply.Instructions[0].Job != "backup" {
		t.Fatalf("the parked poll was answered with %+v, want the INSERT of backup", res.reply.Instructions)
	}
	if res.reply.Epoch != env.Master.Catalog.Epoch() || res.reply.Protocol != agentproto.Version {
		t.Errorf("the reply has epoch %q and protocol %d, want %q and %d", res.reply.Epoch, res.reply.Protocol, env.Master.Catalog.Epoch(), agentproto.Version)
	}
	if !res.reused {
		t.Error("the held poll did not go on the first poll's connection")
	}
	// The connection is back with the server: the next poll uses it.
	_, reused, err := p.poll(ctx, "after="+strconv.FormatInt(res.reply.Instructions[0].Seq, 10)+"&wait=0&poll_interval=60")
	if err != nil {
		t.Fatal(err)
	}
	if !reused {
		t.Error("the poll after the parked one's reply opened a new connection; want the one the reply came on")
	}
	// The answerer counts the poll out once its reply is written, which the
	// target may have read first.
	testenv.Eventually(t, 10*time.Second, "muster_polls_held at 0 after the reply", func() bool { return master.HeldPolls(env.Master) == 0 })
}

// A parked poll woken by a post of this master is answered with what the
// post committed, without reading it back; one whose cursor is behind
// what was posted (the instructions between are no longer pending) reads
// what it has pending.
func TestParkedPollIsAnsweredWithWhatWokeIt(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	p := newPoller(env, enlistRaw(t, env, "web1"))
	defer p.hc.CloseIdleConnections()
	id, err := env.Master.Catalog.TargetID(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	job := muster.NewJob()
	job.Name, job.Targets = "backup", []string{"web1"}
	job.Steps = []muster.Step{{Name: "main", Shell: "true"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{job}}); err != nil {
		t.Fatal(err)
	}
	last := int64(1) // the INSERT of backup

	for _, c := range []struct {
		name   string
		behind int64 // how far the poll's cursor is behind the last posted
		reads  uint64
	}{
		{"cursor at the last posted", 0, 0},
		{"cursor behind", 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The target has what was posted so far.
			if _, err := env.Master.Catalog.Ack(ctx, id, []catalog.AckRow{{Seq: last, Status: muster.InstructionDownloaded}}); err != nil {
				t.Fatal(err)
			}
			done := p.pollInBackground(ctx, "after="+strconv.FormatInt(last-c.behind, 10)+"&wait=55&poll_interval=60")
			waitParked(t, env.Master, 1)
			before := master.StoreQueries(env.Master, "PendingInstructions") + master.StoreQueries(env.Master, "PendingInstructionsOf")
			started, err := env.Client.StartJob(ctx, "backup", httpapi.StartBody{})
			if err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			if len(res.reply.Instructions) != 1 || res.reply.Instructions[0].Operation != muster.OpStart || res.reply.Instructions[0].Seq != last+1 {
				t.Fatalf("the woken poll brought %+v, want the START, seq %d", res.reply.Instructions, last+1)
			}
			last++
			var payload agentproto.StartPayload
			if err := json.Unmarshal(res.reply.Instructions[0].Payload, &payload); err != nil {
				t.Fatal(err)
			}
			if payload.RunID != started.Runs[0].RunID {
				t.Errorf("the START carries run %q, want %q", payload.RunID, started.Runs[0].RunID)
			}
			reads := master.StoreQueries(env.Master, "PendingInstructions") + master.StoreQueries(env.Master, "PendingInstructionsOf") - before
			if reads != c.reads {
				t.Errorf("the woken poll read its instructions %d times, want %d", reads, c.reads)
			}
		})
	}
}

// The polls another master's post wakes here (told by its notification,
// which names the targets only) are answered from reads of several
// targets at once, none from a read of its own; and the certificates of
// those targets, which their next requests present, are read at once too.
func TestParkedPollsWokenTogetherAreReadTogether(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	names := []string{"web1", "web2", "web3"}
	var results []<-chan pollResult
	for _, name := range names {
		p := newPoller(env, enlistRaw(t, env, name))
		defer p.hc.CloseIdleConnections()
		results = append(results, p.pollInBackground(ctx, heldQuery))
	}
	waitParked(t, env.Master, len(names))
	alone, together := master.StoreQueries(env.Master, "PendingInstructions"), master.StoreQueries(env.Master, "PendingInstructionsOf")
	// Their certificates, read when the polls came, are forgotten: the
	// targets' next requests would read them again.
	env.Master.Catalog.ForgetCredentials()
	certs := master.StoreQueries(env.Master, "FindCerts")

	// The other master's post, committed to the catalog behind this
	// master's back.
	counts := map[int64]int{}
	var ids []int64
	for _, name := range names {
		id, err := env.Master.Catalog.TargetID(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		counts[id] = 1
		ids = append(ids, id)
	}
	err := env.Master.Catalog.Store().Update(ctx, func(tx catalog.Tx) error {
		seqs, err := tx.NextSeqs(ctx, counts)
		if err != nil {
			return err
		}
		var rows []catalog.InstructionRow
		for _, id := range ids {
			rows = append(rows, catalog.InstructionRow{TargetID: id, Seq: seqs[id], Operation: muster.OpInsert, Job: "backup",
				Payload: []byte(`{}`), PostedAt: time.Now()})
		}
		return tx.InsertInstructions(ctx, rows)
	})
	if err != nil {
		t.Fatal(err)
	}
	master.Heard(env.Master, catalog.Commit{Targets: ids})
	answered := 0
	for i, done := range results {
		res := <-done
		if res.err != nil {
			t.Fatalf("%s: %v", names[i], res.err)
		}
		if len(res.reply.Instructions) != 1 || res.reply.Instructions[0].Job != "backup" {
			t.Errorf("%s was answered with %+v, want the INSERT of backup", names[i], res.reply.Instructions)
		}
		answered++
	}
	if answered != len(names) {
		t.Fatalf("%d polls answered, want %d", answered, len(names))
	}
	if n := master.StoreQueries(env.Master, "PendingInstructions") - alone; n != 0 {
		t.Errorf("%d woken polls read their instructions alone, want none", n)
	}
	if n := master.StoreQueries(env.Master, "PendingInstructionsOf") - together; n < 1 || n > uint64(len(names)) {
		t.Errorf("%d reads of several targets answered %d polls, want 1 to %d", n, len(names), len(names))
	}
	// The certificates their next requests present are read together too,
	// while the polls are answered.
	testenv.Eventually(t, 10*time.Second, "the certificates read together", func() bool {
		return master.StoreQueries(env.Master, "FindCerts") > certs
	})
}

// A parked poll is answered at once, with the target's state, when the
// target is paused.
func TestParkedPollIsAnsweredWhenPoked(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()
	ctx := context.Background()

	done := p.pollInBackground(ctx, heldQuery+"&paused=false")
	waitParked(t, env.Master, 1)
	if _, err := env.Master.Catalog.SetPaused(ctx, []string{"web1"}, "", true, env.Master.Self()); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.reply.Paused || len(res.reply.Instructions) != 0 {
		t.Errorf("the poked poll was answered paused=%t with %d instructions, want paused and none", res.reply.Paused, len(res.reply.Instructions))
	}
}

// A parked poll is answered at once when its target is deleted with
// --force: refused, as the target's next request would be, not left held
// until its hold ends as if the target were still enlisted.
func TestParkedPollIsRefusedWhenItsTargetIsForgotten(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()
	ctx := context.Background()

	done := p.pollInBackground(ctx, heldQuery)
	waitParked(t, env.Master, 1)
	if err := env.Master.Catalog.DeleteTarget(ctx, "web1", true, env.Master.Self()); err != nil {
		t.Fatal(err)
	}
	// Left held, the poll would be answered when its hold ends, with no
	// error.
	if res := <-done; muster.ErrorCode(res.err) != muster.EUNAUTHORIZED {
		t.Errorf("the poll of the forgotten target was answered %+v, %v; want unauthorized", res.reply, res.err)
	}
}

// A parked poll whose hold ends is answered empty.
func TestParkedPollIsAnsweredEmptyWhenItsHoldEnds(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()

	reply, _, err := p.poll(context.Background(), "after=0&wait=1&poll_interval=60")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Instructions == nil || len(reply.Instructions) != 0 {
		t.Errorf("the poll was answered with %v, want an empty list", reply.Instructions)
	}
	if n := master.ParkedPolls(env.Master); n != 0 {
		t.Errorf("%d polls parked after the reply, want 0", n)
	}
}

// A target that goes away while its poll is parked is noticed: the poll
// is let go of, and its request slot with it.
func TestParkedPollOfATargetGoneIsLetGo(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())

	done := p.pollInBackground(ctx, heldQuery)
	waitParked(t, env.Master, 1)
	cancel() // the client closes the connection
	if res := <-done; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("the canceled poll returned %v, want context.Canceled", res.err)
	}
	waitParked(t, env.Master, 0)
	testenv.Eventually(t, 10*time.Second, "muster_polls_held back to 0", func() bool { return master.HeldPolls(env.Master) == 0 })
	if n := master.TargetRequests(env.Master); n != 0 {
		t.Errorf("%d requests of targets in progress after the target went away, want 0", n)
	}
}

// A master that stops answers its parked polls, empty, and closes their
// connections.
func TestParkedPollsAreAnsweredWhenTheMasterStops(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := enlistRaw(t, env, "web1")
	p := newPoller(env, id)
	defer p.hc.CloseIdleConnections()

	const polls = 3
	var results []<-chan pollResult
	for range polls {
		results = append(results, p.pollInBackground(context.Background(), heldQuery))
	}
	waitParked(t, env.Master, polls)
	env.StopMaster()
	answered := 0
	for _, done := range results {
		res := <-done
		if res.err != nil {
			t.Errorf("a parked poll failed when the master stopped: %v", res.err)
			continue
		}
		if len(res.reply.Instructions) != 0 {
			t.Errorf("a parked poll was answered with %d instructions when the master stopped, want none", len(res.reply.Instructions))
		}
		answered++
	}
	if answered != polls {
		t.Errorf("%d parked polls answered, want %d", answered, polls)
	}
}
