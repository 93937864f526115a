package master_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// slowClient is a connection that sent the headers of an enlistment
// promising a 16,000-byte body, and one byte of it.
type slowClient struct {
	conn   net.Conn
	status int           // of the reply, if one came before the close
	closed chan struct{} // closed when the master closed the connection
}

// openSlow connects to addr over TLS and starts a slow enlistment.
func openSlow(addr string, cfg *tls.Config) (*slowClient, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %d\r\nContent-Length: 16000\r\n\r\n{",
		agentproto.PathEnlist, addr, agentproto.HeaderProtocol, agentproto.Version)
	if _, err := conn.Write([]byte(head)); err != nil {
		conn.Close()
		return nil, err
	}
	c := &slowClient{conn: conn, closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		r := bufio.NewReader(conn)
		if resp, err := http.ReadResponse(r, nil); err == nil {
			c.status = resp.StatusCode
			resp.Body.Close()
		}
		for {
			if _, err := r.ReadByte(); err != nil {
				return // the master closed the connection (or reset it)
			}
		}
	}()
	return c, nil
}

// A thousand clients that send an enlistment's headers and then a body a
// byte at a time, all from the address operators and targets use, neither
// keep operators and targets from being served nor hold the master's
// connections: beyond a few per address they are refused at once, and the
// few are closed when their bodies miss their deadline.
func TestSlowBodiesDoNotStopTheMaster(t *testing.T) {
	const slow = 1000
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		// A short deadline keeps the test short; the defaults meet the same
		// bound (TestDefaultDeadlinesCloseASlowClientWithinAMinute).
		Master: func(c *master.Config) { c.Limits.BodyTimeout = 2 * time.Second },
	})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "hello", []string{"web1"}, []muster.Step{{Name: "say", Shell: "echo hello"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}

	addr := strings.TrimPrefix(env.Master.URL, "https://")
	cfg := &tls.Config{RootCAs: env.Master.CA.Pool(), ServerName: "127.0.0.1"}
	clients := make([]*slowClient, slow)
	var opened atomic.Int64
	var wg sync.WaitGroup
	var dialErr atomic.Value
	start := time.Now()
	for w := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < slow; i += 50 {
				c, err := openSlow(addr, cfg)
				if err != nil {
					dialErr.Store(err)
					return
				}
				clients[i] = c
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.conn.Close()
				<-c.closed
			}
		}
	})
	if err := dialErr.Load(); err != nil {
		t.Fatalf("opened %d slow clients, then: %v", opened.Load(), err)
	}
	connecting := time.Since(start)
	t.Logf("%d slow clients connected in %s", opened.Load(), connecting.Round(time.Millisecond))

	// Operators are served: `muster target list` is this call.
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	targets, err := env.Client.Targets(lctx, "")
	cancel()
	if err != nil || len(targets) != 1 {
		t.Fatalf("muster target list while %d slow clients hold on: %v (%d targets); want web1, within 5 s", slow, err, len(targets))
	}
	// The enlisted target is served: it collects a START, runs it and
	// reports the run.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := env.Client.StartJob(sctx, "hello", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := env.Client.Runs(sctx, res.Refs(), 25*time.Second)
	if err != nil || len(runs) != 1 || runs[0].Status != muster.RunSucceeded {
		t.Fatalf("a run on web1 while slow clients hold on: %v %v; want it succeeded", runs, err)
	}

	// The master closes every slow connection within a minute.
	deadline := time.After(time.Minute)
	closed, refused := 0, 0
	for _, c := range clients {
		select {
		case <-c.closed:
			closed++
			if c.status == http.StatusTooManyRequests {
				refused++
			}
		case <-deadline:
			t.Fatalf("a minute on, the master has closed %d of %d slow connections", closed, slow)
		}
	}
	t.Logf("the master closed %d of %d slow connections within %s: %d refused at once (429), %d when their bodies missed the deadline",
		closed, opened.Load(), time.Since(start).Round(time.Second), refused, closed-refused)
	// A slot of the per-address cap is held at least the body deadline,
	// so while the clients connected each slot served one held client
	// every 2 s at most.
	held, most := closed-refused, master.DefaultLimits().PerAddress*(int(connecting/(2*time.Second))+1)
	if closed != slow || held > most {
		t.Errorf("%d opened, %d closed, %d held until their deadline; want %d closed, at most %d held", opened.Load(), closed, held, slow, most)
	}
}

// With the default limits, a slow client is closed within a minute of
// connecting: its handshake, headers and body each have a deadline.
func TestDefaultDeadlinesCloseASlowClientWithinAMinute(t *testing.T) {
	l := master.DefaultLimits()
	handshake, headers := master.HandshakeTimeout, master.ReadHeaderTimeout
	body := l.BodyTimeout + time.Duration(master.MaxAnonymousBody)*time.Second/time.Duration(l.MinBodyRate)
	if total := handshake + headers + body; total > time.Minute {
		t.Errorf("a slow client may hold a connection %s (handshake %s, headers %s, body %s); want at most a minute", total, handshake, headers, body)
	}
}

// A body's time to arrive counts from when the master starts to read it,
// not from when its headers came: an upload that waited its turn behind a
// slow one is read in full.
func TestBodyTimeCountsFromWhenItIsRead(t *testing.T) {
	env := testenv.New(t, testenv.Options{Master: func(c *master.Config) {
		c.Limits.BodyTimeout = 2 * time.Second
		c.Limits.UploadWait = 20 * time.Second
	}})
	web1 := enlistRaw(t, env, "web1")
	cert := web1.tls()
	cfg := &tls.Config{RootCAs: env.Master.CA.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}
	addr := strings.TrimPrefix(env.Master.URL, "https://")

	// A slow upload takes web1's turn, and keeps it until its body, of a
	// mebibyte, misses its deadline: 2 s and 4 s more for its size.
	slow, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST %s HTTP/1.1\r\nHost: master\r\n%s: %d\r\nContent-Length: %d\r\n\r\n{", agentproto.PathRuns, agentproto.HeaderProtocol, agentproto.Version, 1<<20)
	slowReply := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err != nil {
			slowReply <- 0
			return
		}
		resp.Body.Close()
		slowReply <- resp.StatusCode
	}()
	testenv.Eventually(t, 10*time.Second, "the slow upload to take web1's turn", func() bool { return master.UploadTurns(env.Master) == 1 })

	// The next upload waits for the turn, about 6 s, longer than its own
	// body would have had had its time counted from its headers, and then
	// is read.
	// Its body is larger than what the server reads along with the
	// headers, so reading it reads the connection.
	run := muster.Run{Job: "backup", RunID: "r1", Status: muster.RunRunning, StartedAt: time.Now(),
		Steps: []muster.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptRunning}}}
	var resp agentproto.RunsResponse
	err = call(env, &web1, http.MethodPost, agentproto.PathRuns, agentproto.RunsRequest{Runs: []agentproto.RunReport{{Revision: 1,
		Run: agentproto.RunFromDomain(run), Output: []agentproto.OutputChunk{{Data: strings.Repeat("x", 64<<10)}}}}}, &resp)
	if err != nil || len(resp.Results) != 1 {
		t.Errorf("an upload that waited its turn: %v; want it read and answered", err)
	}
	if got := <-slowReply; got != http.StatusGatewayTimeout {
		t.Errorf("the slow upload was answered %d, want 504 (its body missed its deadline)", got)
	}
}
