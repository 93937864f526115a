package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/testenv"
)

const wait = 20 * time.Second

func shellJob(name, script string, targets ...string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, targets
	j.Steps = []muster.Step{{Name: "main", Shell: script}}
	return j
}

func apply(t *testing.T, env *testenv.Env, jobs ...muster.Job) muster.ApplyResult {
	t.Helper()
	res, err := env.Client.Apply(context.Background(), httpapi.ApplyRequest{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// settled waits until no instruction is pending on any target.
func settled(t *testing.T, env *testenv.Env) {
	t.Helper()
	testenv.Eventually(t, wait, "every instruction acknowledged", func() bool {
		list, err := env.Client.DownloadList(context.Background(), httpapi.DownloadListFilter{Pending: true})
		return err == nil && len(list) == 0
	})
}

// startAndWait starts a job and waits until its runs are finished.
func startAndWait(t *testing.T, env *testenv.Env, job string, targets ...string) []muster.Run {
	t.Helper()
	ctx := context.Background()
	res, err := env.Client.StartJob(ctx, job, httpapi.StartBody{Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	ids := res.Refs()
	var runs []muster.Run
	testenv.Eventually(t, wait, "runs finished", func() bool {
		runs, err = env.Client.Runs(ctx, ids, 5*time.Second)
		if err != nil || len(runs) != len(ids) {
			return false
		}
		for _, r := range runs {
			if !r.Status.Finished() {
				return false
			}
		}
		return true
	})
	return runs
}

func TestEnlistApplyStartReport(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()

	res := apply(t, env, shellJob("hello", `echo "hello from $MUSTER_TARGET"`, "web1", "web2"))
	if res.Posted != 2 {
		t.Fatalf("posted %d instructions, want 2", res.Posted)
	}
	settled(t, env)

	targets, err := env.Client.Targets(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 2 {
		t.Fatalf("%d targets, want 2", len(targets))
	}
	for _, tg := range targets {
		if tg.Status != muster.StatusNormal || tg.UnreadInstructions != 0 || tg.LastPoll == nil || tg.TimeZone == "" || tg.Protocol != agentproto.Version {
			t.Errorf("target %+v: want normal, nothing unread, polled, with a zone and protocol", tg)
		}
	}

	runs := startAndWait(t, env, "hello")
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	for _, r := range runs {
		if r.Status != muster.RunSucceeded || len(r.Steps) != 1 {
			t.Fatalf("run %+v: want one succeeded step", r)
		}
		want := "hello from " + r.Target + "\n"
		if r.Steps[0].Output != want || r.Steps[0].ExitCode == nil || *r.Steps[0].ExitCode != 0 {
			t.Errorf("step output %q exit %v, want %q exit 0", r.Steps[0].Output, r.Steps[0].ExitCode, want)
		}
	}
	hist, err := env.Client.History(ctx, "hello", "web1", 10)
	if err != nil || len(hist) != 1 || hist[0].Target != "web1" {
		t.Fatalf("history for web1: %+v %v", hist, err)
	}
	job, err := env.Client.Job(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range job.Outcomes {
		if o.LastStatus != muster.RunSucceeded {
			t.Errorf("last outcome on %s is %q, want succeeded", o.Target, o.LastStatus)
		}
	}
}

func TestFailedInsertBlocksUntilSuperseded(t *testing.T) {
	var failV2 atomic.Bool
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target: func(c *targetConfig) {
			c.FailInstruction = func(in agentproto.Instruction) error {
				if failV2.Load() && in.Operation == muster.OpInsert {
					return errors.New("proxy not found")
				}
				return nil
			}
		},
	})
	ctx := context.Background()

	apply(t, env, shellJob("report", "echo v1", "web1"), shellJob("other", "echo other", "web1"))
	settled(t, env)

	failV2.Store(true)
	apply(t, env, shellJob("report", "echo v2", "web1"))
	settled(t, env)
	tg, err := env.Client.Target(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Status != muster.StatusBlocked || !slices.Contains(tg.Flags, muster.StatusBlocked) {
		t.Fatalf("status %q flags %v, want blocked", tg.Status, tg.Flags)
	}
	failed, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Errors: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Error != "proxy not found" || failed[0].Job != "report" {
		t.Fatalf("failed instructions %+v, want the report INSERT with its error", failed)
	}
	// The previous version stays in force, and other jobs are not held up.
	if runs := startAndWait(t, env, "report"); runs[0].Steps[0].Output != "v1\n" {
		t.Errorf("output %q, want v1 (the previous version)", runs[0].Steps[0].Output)
	}
	if runs := startAndWait(t, env, "other"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("other job: %s, want succeeded", runs[0].Status)
	}

	// A newer INSERT supersedes the failure.
	failV2.Store(false)
	apply(t, env, shellJob("report", "echo v3", "web1"))
	settled(t, env)
	tg, _ = env.Client.Target(ctx, "web1")
	if tg.Status != muster.StatusNormal {
		t.Fatalf("status %q after the superseding INSERT, want normal", tg.Status)
	}
	list, _ := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Job: "report"})
	if list[1].Status != muster.InstructionSuperseded {
		t.Errorf("the failed INSERT is %q, want superseded", list[1].Status)
	}
	if runs := startAndWait(t, env, "report"); runs[0].Steps[0].Output != "v3\n" {
		t.Errorf("output %q, want v3", runs[0].Steps[0].Output)
	}
}

func TestStartIsIdempotent(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	apply(t, env, shellJob("once", "echo run", "web1", "web2"))
	settled(t, env)

	body := httpapi.StartBody{IdempotencyKey: "deploy-42"}
	first, err := env.Client.StartJob(ctx, "once", body)
	if err != nil {
		t.Fatal(err)
	}
	again, err := env.Client.StartJob(ctx, "once", body)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || fmt.Sprint(again.Runs) != fmt.Sprint(first.Runs) {
		t.Fatalf("second start %+v, want the first %+v replayed", again, first)
	}
	settled(t, env)
	hist, _ := env.Client.History(ctx, "once", "", 10)
	testenv.Eventually(t, wait, "two runs recorded", func() bool {
		hist, _ = env.Client.History(ctx, "once", "", 10)
		return len(hist) == 2
	})
	starts, _ := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Operation: "START"})
	if len(starts) != 2 {
		t.Errorf("%d STARTs posted, want 2 (one per target)", len(starts))
	}
}

func TestStartOfARunningJobIsSkipped(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("slow", "sleep 30", "web1"))
	settled(t, env)
	first, err := env.Client.StartJob(ctx, "slow", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the first run to be running", func() bool {
		runs, _ := env.Client.Runs(ctx, first.Refs()[:1], 0)
		return len(runs) == 1 && runs[0].Status == muster.RunRunning
	})
	runs := startAndWait(t, env, "slow")
	if runs[0].Status != muster.RunSkipped || !strings.Contains(runs[0].Message, "already running") {
		t.Errorf("second run %s %q, want skipped, already running", runs[0].Status, runs[0].Message)
	}
	if failed, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Errors: true}); err != nil || len(failed) != 0 {
		t.Errorf("a START of a running job became an instruction error: %+v (%v)", failed, err)
	}
}

func TestAgentRoutesNeedAClientCertificate(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Master.CA.Pool()}}}
	for _, r := range []struct{ method, path string }{
		{"GET", agentproto.PathInstructions + "?after=0"},
		{"POST", agentproto.PathAcks},
		{"POST", agentproto.PathRuns},
		{"POST", agentproto.PathResync},
	} {
		req, _ := http.NewRequest(r.method, env.Master.URL+r.path, strings.NewReader("{}"))
		req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a client certificate: %d, want 401", r.method, r.path, resp.StatusCode)
		}
	}
}

func TestProtocolVersionIsChecked(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Master.CA.Pool()}}}
	for _, tc := range []struct {
		version int
		want    string
	}{
		{agentproto.Version + 1, fmt.Sprintf("the target speaks protocol %d, newer than this master's %d", agentproto.Version+1, agentproto.Version)},
		{agentproto.MinVersion - 1, fmt.Sprintf("the target speaks protocol %d, older than the oldest this master accepts (%d; this master speaks %d)", agentproto.MinVersion-1, agentproto.MinVersion, agentproto.Version)},
	} {
		req, _ := http.NewRequest("POST", env.Master.URL+agentproto.PathEnlist, strings.NewReader("{}"))
		req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(tc.version))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body jsonhttp.ErrorBody
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(body.Error.Message, tc.want) {
			t.Errorf("protocol %d: got %d %q, want 426 naming both versions", tc.version, resp.StatusCode, body.Error.Message)
		}
	}
}

func TestATargetSeesOnlyItsOwnInstructions(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	apply(t, env, shellJob("a", "true", "web1"), shellJob("b", "true", "web2"))
	settled(t, env)
	env.Target("web1").Stop(t)
	apply(t, env, shellJob("a", "echo changed", "web1"), shellJob("b", "echo changed", "web2"))

	// web1's certificate, used by hand, asking for web2's list.
	hc := agentClient(t, env, "web1")
	req, _ := http.NewRequest("GET", env.Master.URL+agentproto.PathInstructions+"?after=0&wait=0&target=web2", nil)
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var poll agentproto.PollResponse
	json.NewDecoder(resp.Body).Decode(&poll)
	resp.Body.Close()
	for _, in := range poll.Instructions {
		if in.Job != "a" {
			t.Errorf("web1 received %s %s, an instruction of another target", in.Operation, in.Job)
		}
	}
	if len(poll.Instructions) == 0 {
		t.Errorf("web1 received nothing; want its own pending INSERT of a")
	}

	// Acking web2's sequence numbers with web1's certificate leaves web2's list alone.
	before, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Target: "web2"})
	if err != nil || len(before) == 0 {
		t.Fatalf("web2's download list: %d instructions (%v), want its INSERTs of b", len(before), err)
	}
	var acks []agentproto.Ack
	for _, in := range before {
		acks = append(acks, agentproto.Ack{Seq: in.Seq, OK: false, Error: "forged"})
	}
	body, _ := json.Marshal(agentproto.AckRequest{Acks: acks})
	req, _ = http.NewRequest("POST", env.Master.URL+agentproto.PathAcks, strings.NewReader(string(body)))
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The master takes web1's acks for what web1 holds: none of these.
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("web1's acks of web2's instructions: %d, want 204, acknowledging nothing", resp.StatusCode)
	}
	after, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Target: "web2"})
	if err != nil || len(after) != len(before) {
		t.Fatalf("web2's download list after the forged acks: %d instructions (%v), want %d", len(after), err, len(before))
	}
	for i := range after {
		if after[i].Error == "forged" {
			t.Errorf("web1 changed web2's instruction %d", after[i].Seq)
		}
	}

	// A run uploaded by web1 for job b (sent only to web2) is refused.
	runs, _ := json.Marshal(agentproto.RunsRequest{Runs: []agentproto.RunReport{{Revision: 1, Run: agentproto.Run{
		Job: "b", Target: "web2", RunID: "forged-run", Status: muster.RunSucceeded, StartedAt: time.Now()}}}})
	req, _ = http.NewRequest("POST", env.Master.URL+agentproto.PathRuns, strings.NewReader(string(runs)))
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rr agentproto.RunsResponse
	json.NewDecoder(resp.Body).Decode(&rr)
	resp.Body.Close()
	if len(rr.Results) != 1 || rr.Results[0].OK {
		t.Errorf("web1's forged run for web2's job: %+v, want refused", rr.Results)
	}

	// A run an hour ahead of the master's clock is refused, unless the
	// upload shows the target's clock is that far ahead (sent_at).
	for _, ahead := range []bool{false, true} {
		runID := fmt.Sprintf("ahead-%v", ahead)
		later := time.Now().Add(time.Hour)
		runs, _ := json.Marshal(agentproto.RunsRequest{Runs: []agentproto.RunReport{{Revision: 1, Run: agentproto.Run{
			Job: "a", Target: "web1", RunID: runID, Status: muster.RunRunning, StartedAt: later}}}})
		path := env.Master.URL + agentproto.PathRuns
		if ahead {
			path += "?" + agentproto.QuerySentAt + "=" + url.QueryEscape(later.Format(time.RFC3339Nano))
		}
		req, _ = http.NewRequest("POST", path, strings.NewReader(string(runs)))
		req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
		resp, err = hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rr agentproto.RunsResponse
		json.NewDecoder(resp.Body).Decode(&rr)
		resp.Body.Close()
		switch {
		case len(rr.Results) != 1:
			t.Errorf("a run an hour ahead (sent_at given: %v): %d results", ahead, len(rr.Results))
		case rr.Results[0].OK != ahead:
			t.Errorf("a run an hour ahead (sent_at given: %v): %+v", ahead, rr.Results[0])
		case !ahead && !strings.Contains(rr.Results[0].Error, "started_at"):
			t.Errorf("the refusal does not name started_at: %q", rr.Results[0].Error)
		}
	}
}

// agentClient returns an HTTP client presenting a target's certificate.
func agentClient(t *testing.T, env *testenv.Env, name string) *http.Client {
	t.Helper()
	dir := filepath.Join(env.Dir, "target-"+name)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: env.Master.CA.Pool(), Certificates: []tls.Certificate{cert},
	}}}
}
