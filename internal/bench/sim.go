package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// simTarget is a simulated target, for scale: it enlists with a real token
// and CSR, holds its own mutual-TLS connection to the master, long-polls,
// acknowledges and uploads runs over the real agent protocol, but keeps no
// store and spawns no process. Where a target would exec a step it notes
// the time, and reports the run as running, then succeeded.
type simTarget struct {
	name   string
	base   *url.URL
	hc     *http.Client
	rec    simEvents
	cursor int64
	steps  map[string]string // job → name of its first step
	// failed, when set, is told of each failed poll.
	failed func(error)
	// acks and reports are what polls brought that the master has not
	// taken yet (a refused or failed request): sent again before the next
	// poll, as a target sends what it spooled, so that a busy master
	// loses no run of a fan-out.
	acks    []agentproto.Ack
	reports []agentproto.RunReport
}

// simPollInterval is the heartbeat the simulated targets report (the
// default); a poll is held at most 55 s.
const simPollInterval = muster.DefaultPollInterval

// enlistSim enlists a simulated target named name in m; it polls the master
// at pollURL (m's, or another master's of the same catalog).
func enlistSim(ctx context.Context, m *Master, pollURL, name string, rec simEvents) (*simTarget, error) {
	tok, err := m.Client.CreateToken(ctx, name, 15*time.Minute)
	if err != nil {
		return nil, err
	}
	parsed, err := pki.ParseEnlistToken(tok.Token)
	if err != nil {
		return nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(m.URL)
	if err != nil {
		return nil, err
	}
	pinned := &http.Transport{TLSClientConfig: pki.PinnedTLSConfig(parsed.CAFingerprint, base.Hostname())}
	defer pinned.CloseIdleConnections()
	var resp agentproto.EnlistResponse
	err = agentCall(ctx, &http.Client{Transport: pinned}, http.MethodPost, base.JoinPath(agentproto.PathEnlist), agentproto.EnlistRequest{
		Token: tok.Token, Name: name, CSR: csr, TimeZone: "UTC", LocalTime: time.Now(),
		PollInterval: simPollInterval, Version: muster.Version, Protocol: agentproto.Version,
	}, &resp)
	if err != nil {
		return nil, fmt.Errorf("enlist %s: %w", name, err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(resp.Cert, keyPEM)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     pki.ClientTLSConfig(m.Roots, &cert),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	if base, err = url.Parse(pollURL); err != nil {
		return nil, err
	}
	return &simTarget{name: resp.Name, base: base, hc: &http.Client{Transport: tr}, rec: rec, steps: map[string]string{}}, nil
}

// agentCall sends one agent-protocol request and decodes the reply.
func agentCall(ctx context.Context, hc *http.Client, method string, u *url.URL, in, out any) error {
	return jsonhttp.Do(ctx, hc, jsonhttp.Request{Method: method, URL: u.String(), In: in, Out: out,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
}

// run polls until ctx is done, backing off (100 ms doubling to 5 s, with
// jitter) while the master cannot be reached.
func (s *simTarget) run(ctx context.Context) {
	defer s.hc.CloseIdleConnections()
	failures := 0
	for ctx.Err() == nil {
		if err := s.pollOnce(ctx); err != nil {
			if s.failed != nil && ctx.Err() == nil {
				s.failed(err)
			}
			d := min(100*time.Millisecond<<min(failures, 6), 5*time.Second)
			d += time.Duration(rand.Int64N(int64(d) / 5))
			failures++
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		failures = 0
	}
}

func (s *simTarget) pollOnce(ctx context.Context) error {
	if err := s.send(ctx); err != nil {
		return err
	}
	q := url.Values{}
	q.Set(agentproto.QueryAfter, strconv.FormatInt(s.cursor, 10))
	q.Set(agentproto.QueryWait, "55")
	q.Set(agentproto.QueryLocalTime, time.Now().UTC().Format(time.RFC3339Nano))
	q.Set(agentproto.QueryTimeZone, "UTC")
	q.Set(agentproto.QueryPollInterval, strconv.Itoa(simPollInterval))
	q.Set(agentproto.QueryVersion, muster.Version)
	q.Set(agentproto.QuerySpoolDepth, "0")
	q.Set(agentproto.QuerySpoolDropped, "0")
	u := s.base.JoinPath(agentproto.PathInstructions)
	u.RawQuery = q.Encode()
	var resp agentproto.PollResponse
	if err := agentCall(ctx, s.hc, http.MethodGet, u, nil, &resp); err != nil {
		return err
	}
	for _, in := range resp.Instructions {
		if in.Seq <= s.cursor {
			continue
		}
		switch in.Operation {
		case muster.OpInsert:
			var j agentproto.InsertPayload
			if err := json.Unmarshal(in.Payload, &j); err == nil && len(j.Steps) > 0 {
				s.steps[in.Job] = j.Steps[0].Name
			}
		case muster.OpStart:
			var p agentproto.StartPayload
			if err := json.Unmarshal(in.Payload, &p); err != nil {
				return err
			}
			// Here a target commits the run and execs the step.
			at := time.Now()
			s.rec.running(p.RunID, at)
			s.reports = append(s.reports, agentproto.RunReport{Revision: 1, Run: agentproto.Run{Job: in.Job, Target: s.name, RunID: p.RunID,
				Status: muster.RunRunning, Trigger: muster.TriggerOperator, StartedAt: at,
				Steps: []agentproto.StepAttempt{{Name: s.steps[in.Job], Attempt: 1, Status: muster.AttemptRunning, StartedAt: at}}}})
		}
		s.acks = append(s.acks, agentproto.Ack{Seq: in.Seq, OK: true})
		s.cursor = in.Seq
	}
	return s.send(ctx)
}

// send sends what polls brought that the master has not taken yet: the
// acknowledgements, then each run's report as running (revision 1), then
// finished (revision 2).
func (s *simTarget) send(ctx context.Context) error {
	if len(s.acks) > 0 {
		if err := agentCall(ctx, s.hc, http.MethodPost, s.base.JoinPath(agentproto.PathAcks), agentproto.AckRequest{Acks: s.acks}, nil); err != nil {
			return err
		}
		s.acks = nil
	}
	for len(s.reports) > 0 {
		if err := s.upload(ctx, s.reports); err != nil {
			if errors.Is(err, errRunRefused) {
				s.reports = nil // sent again, it would be refused again
			}
			return err
		}
		if s.reports[0].Revision == 2 {
			now := time.Now()
			for _, r := range s.reports {
				s.rec.recorded(r.Run.RunID, now)
			}
			s.reports = nil
			break
		}
		for i := range s.reports {
			s.reports[i].Revision = 2
			finish(&s.reports[i].Run, time.Now())
		}
	}
	return nil
}

// finish marks a simulated run succeeded at now.
func finish(r *agentproto.Run, now time.Time) {
	code := 0
	r.Status, r.FinishedAt, r.DurationMS = muster.RunSucceeded, &now, now.Sub(r.StartedAt).Milliseconds()
	for i := range r.Steps {
		r.Steps[i].Status, r.Steps[i].ExitCode = muster.AttemptSucceeded, &code
		r.Steps[i].DurationMS = now.Sub(r.Steps[i].StartedAt).Milliseconds()
	}
}

// errRunRefused is the error of an upload whose runs the master answered
// for, refusing some.
var errRunRefused = errors.New("the master refused a run")

// upload sends run reports and fails unless the master took every one.
func (s *simTarget) upload(ctx context.Context, reports []agentproto.RunReport) error {
	var resp agentproto.RunsResponse
	if err := agentCall(ctx, s.hc, http.MethodPost, s.base.JoinPath(agentproto.PathRuns), agentproto.RunsRequest{Runs: reports}, &resp); err != nil {
		return err
	}
	for _, r := range resp.Results {
		if !r.OK {
			return fmt.Errorf("%w: %s: %s", errRunRefused, r.RunID, r.Error)
		}
	}
	if len(resp.Results) != len(reports) {
		return fmt.Errorf("%w: it answered for %d of %d runs", errRunRefused, len(resp.Results), len(reports))
	}
	return nil
}

// simEvents is told what a simulated target's runs do: a recorder in this
// process, or the events a sim process writes to the bench process.
type simEvents interface {
	// running is when the run's step would have been exec'd.
	running(run string, at time.Time)
	// recorded is when the master took the run's finished report.
	recorded(run string, at time.Time)
}

// recorder collects what simulated targets see, for the scenarios to wait
// on and measure.
type recorder struct {
	mu       sync.Mutex
	starts   map[string]time.Time // run id → when its step would have been exec'd
	finishes map[string]time.Time // run id → when the master took its finished report
	changed  chan struct{}        // closed at every change
}

func newRecorder() *recorder {
	return &recorder{starts: map[string]time.Time{},
		finishes: map[string]time.Time{}, changed: make(chan struct{})}
}

func (r *recorder) update(fn func()) {
	r.mu.Lock()
	fn()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) running(run string, at time.Time)  { r.update(func() { r.starts[run] = at }) }
func (r *recorder) recorded(run string, at time.Time) { r.update(func() { r.finishes[run] = at }) }

// wait blocks until cond, called with the recorder locked, holds.
func (r *recorder) wait(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
