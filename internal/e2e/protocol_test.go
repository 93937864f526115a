package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	v1 "github.com/musterhq/muster/internal/agentproto/v1"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// v1Target is a target that speaks protocol 1 and nothing else, with its
// frozen wire types: it decodes instruction payloads strictly, as targets
// of protocol 1 did, and replies leniently, as they did too.
type v1Target struct {
	t      *testing.T
	base   string
	hc     *http.Client
	cursor int64
	jobs   map[string]v1.Job
}

// call sends a protocol-1 request with hc and decodes the reply into out.
func call(ctx context.Context, hc *http.Client, protocol int, method, u string, in, out any) error {
	return jsonhttp.Do(ctx, hc, jsonhttp.Request{Method: method, URL: u, In: in, Out: out,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(protocol)}}})
}

// enlistV1 enlists name as a protocol-1 target.
func enlistV1(t *testing.T, env *testenv.Env, name string) *v1Target {
	t.Helper()
	ctx := context.Background()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Master.CA.Pool()}}}
	var resp v1.EnlistResponse
	err = call(ctx, plain, v1.Version, http.MethodPost, env.Master.URL+agentproto.PathEnlist, v1.EnlistRequest{
		Token: env.Token(name), Name: name, CSR: csr, TimeZone: "UTC", LocalTime: time.Now(), PollInterval: 60,
		Version: "0.1.0", Protocol: v1.Version, EnlistedBy: "test",
	}, &resp)
	if err != nil {
		t.Fatalf("a protocol-1 target enlists: %v", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(resp.Cert, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Master.CA.Pool(), Certificates: []tls.Certificate{cert}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &v1Target{t: t, base: env.Master.URL, hc: &http.Client{Transport: tr}, jobs: map[string]v1.Job{}}
}

// strict decodes an instruction payload refusing unknown fields.
func strict(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// pollOnce polls, applies what comes (holding INSERTed jobs, running
// STARTed ones as protocol 1 reports them), and acknowledges it. It
// returns the operations it applied.
func (v *v1Target) pollOnce(ctx context.Context) []string {
	v.t.Helper()
	q := url.Values{v1.QueryAfter: {strconv.FormatInt(v.cursor, 10)}, v1.QueryWait: {"0"}, v1.QueryLocalTime: {time.Now().Format(time.RFC3339Nano)},
		v1.QueryTimeZone: {"UTC"}, v1.QueryPollInterval: {"60"}, v1.QueryVersion: {"0.1.0"}, v1.QuerySpoolDepth: {"0"},
		v1.QuerySpoolDropped: {"0"}, v1.QueryPaused: {"false"}}
	var resp v1.PollResponse
	if err := call(ctx, v.hc, v1.Version, http.MethodGet, v.base+agentproto.PathInstructions+"?"+q.Encode(), nil, &resp); err != nil {
		v.t.Fatalf("a protocol-1 target polls: %v", err)
	}
	var applied []string
	var acks []v1.Ack
	for _, in := range resp.Instructions {
		ack := v1.Ack{Seq: in.Seq, OK: true}
		switch in.Operation {
		case string(muster.OpInsert):
			var j v1.Job
			if err := strict(in.Payload, &j); err != nil {
				v.t.Errorf("INSERT %s: a protocol-1 target cannot decode the payload: %v\n%s", in.Job, err, in.Payload)
				ack = v1.Ack{Seq: in.Seq, Error: err.Error()}
				break
			}
			v.jobs[j.Name] = j
		case string(muster.OpStart):
			var p v1.StartPayload
			if err := strict(in.Payload, &p); err != nil {
				v.t.Errorf("START %s: a protocol-1 target cannot decode the payload: %v\n%s", in.Job, err, in.Payload)
				ack = v1.Ack{Seq: in.Seq, Error: err.Error()}
				break
			}
			v.run(ctx, v.jobs[in.Job], p.RunID)
		}
		applied = append(applied, in.Operation+" "+in.Job)
		acks = append(acks, ack)
		v.cursor = in.Seq
	}
	if len(acks) > 0 {
		if err := call(ctx, v.hc, v1.Version, http.MethodPost, v.base+agentproto.PathAcks, v1.AckRequest{Acks: acks}, nil); err != nil {
			v.t.Fatalf("a protocol-1 target acknowledges: %v", err)
		}
	}
	return applied
}

// run runs a job's first step and reports it as protocol 1 does: the run
// as it starts, then finished, each attempt with its whole output.
func (v *v1Target) run(ctx context.Context, j v1.Job, runID string) {
	v.t.Helper()
	started := time.Now()
	r := v1.Run{Job: j.Name, Target: "old1", RunID: runID, Status: string(muster.RunRunning), Trigger: "operator", StartedAt: started,
		Steps: []v1.StepAttempt{{Name: j.Steps[0].Name, Attempt: 1, Status: string(muster.AttemptRunning), StartedAt: started}}}
	v.upload(ctx, 1, r)
	out, err := exec.Command("/bin/sh", "-c", j.Steps[0].Shell).CombinedOutput()
	if err != nil {
		v.t.Fatal(err)
	}
	done, code := time.Now(), 0
	r.Status, r.FinishedAt, r.DurationMS = string(muster.RunSucceeded), &done, done.Sub(started).Milliseconds()
	r.Steps[0].Status, r.Steps[0].ExitCode, r.Steps[0].Output = string(muster.AttemptSucceeded), &code, string(out)
	v.upload(ctx, 2, r)
}

func (v *v1Target) upload(ctx context.Context, revision int64, r v1.Run) {
	v.t.Helper()
	var resp v1.RunsResponse
	if err := call(ctx, v.hc, v1.Version, http.MethodPost, v.base+agentproto.PathRuns, v1.RunsRequest{Runs: []v1.RunReport{{Revision: revision, Run: r}}}, &resp); err != nil {
		v.t.Fatalf("a protocol-1 target uploads: %v", err)
	}
	if len(resp.Results) != 1 || !resp.Results[0].OK {
		v.t.Fatalf("the master refused a protocol-1 run: %+v", resp.Results)
	}
}

// A master accepts targets of its protocol and the two before it: a target
// of protocol 1, speaking nothing but its frozen types, enlists, polls,
// decodes its INSERT and START strictly, runs the job and uploads the run
// as protocol 1 did. A target newer than the master is refused, with both
// versions named.
func TestProtocol1TargetWorksWithThisMaster(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	old := enlistV1(t, env, "old1")

	j := shellJob("greet", "echo hello from protocol 1", "old1")
	j.Steps[0].Timeout = muster.Duration(time.Minute)
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 3 * * *", Jitter: muster.Duration(time.Minute)}}
	j.Env = map[string]string{"WHO": "world"}
	apply(t, env, j)
	if got := old.pollOnce(ctx); strings.Join(got, ",") != "INSERT greet" {
		t.Fatalf("applied %v, want the INSERT", got)
	}
	if got := old.jobs["greet"]; got.Steps[0].Timeout != "1m0s" || got.Schedules[0].Cron != "0 3 * * *" || got.Env["WHO"] != "world" {
		t.Errorf("the job as the protocol-1 target holds it: %+v", got)
	}
	res, err := env.Client.StartJob(ctx, "greet", httpTargets())
	if err != nil {
		t.Fatal(err)
	}
	if got := old.pollOnce(ctx); strings.Join(got, ",") != "START greet" {
		t.Fatalf("applied %v, want the START", got)
	}
	runs, err := env.Client.Runs(ctx, res.Refs()[:1], 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	if r := runs[0]; r.Status != muster.RunSucceeded || r.Steps[0].Output != "hello from protocol 1\n" {
		t.Errorf("the protocol-1 run on the master: %s %q", r.Status, r.Steps[0].Output)
	}
	tg, err := env.Client.Target(ctx, "old1")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Protocol != v1.Version {
		t.Errorf("the master shows protocol %d for the target, want 1", tg.Protocol)
	}

	// Protocol 4 is newer than this master's.
	err = call(ctx, old.hc, 4, http.MethodGet, old.base+agentproto.PathInstructions+"?after=0&wait=0", nil, &v1.PollResponse{})
	if muster.ErrorCode(err) != muster.EUNSUPPORTED || !strings.Contains(err.Error(), "protocol 4, newer than this master's 2") {
		t.Errorf("a protocol-4 poll: %v, want unsupported, naming both versions", err)
	}
}
