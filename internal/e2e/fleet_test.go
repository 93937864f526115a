package e2e_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// holds reports whether the target's local store holds the job.
func holds(t *testing.T, env *testenv.Env, name, job string) bool {
	t.Helper()
	runs, err := env.Target(name).Main.Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(runs, job)
}

// Group targeting is live, end to end: a target that joins a group
// receives and runs the group's jobs; one that leaves has them deleted.
func TestLiveGroupsEndToEnd(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	if err := env.Client.CreateGroup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	j := shellJob("deploy", "echo deployed on $MUSTER_TARGET")
	j.Groups = []string{"web"}
	apply(t, env, j)
	if _, err := env.Client.GroupMembers(ctx, "web", []string{"web1", "web2"}, false); err != nil {
		t.Fatal(err)
	}
	settled(t, env)
	if runs := startAndWait(t, env, "deploy"); len(runs) != 2 {
		t.Fatalf("%d runs, want one per member", len(runs))
	}
	js, err := env.Client.Job(ctx, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if len(js.Outcomes) != 2 {
		t.Fatalf("the job has %d outcomes, want one per member", len(js.Outcomes))
	}
	for _, o := range js.Outcomes {
		if !slices.Equal(o.Via, []string{"group:web"}) {
			t.Errorf("%s is there via %v, want [group:web]", o.Target, o.Via)
		}
	}

	if _, err := env.Client.GroupMembers(ctx, "web", []string{"web2"}, true); err != nil {
		t.Fatal(err)
	}
	settled(t, env)
	if holds(t, env, "web2", "deploy") || !holds(t, env, "web1", "deploy") {
		t.Errorf("after web2 left: web1 holds %v, web2 holds %v; want only web1", holds(t, env, "web1", "deploy"), holds(t, env, "web2", "deploy"))
	}
}

// A paused target fires no schedules and records STARTs as skipped; it
// learns of the pause at once, and keeps it across a restart.
func TestPauseAndResume(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	tick := shellJob("tick", "true", "web1")
	tick.Schedules = []muster.Schedule{{Cron: "* * * * * *"}}
	apply(t, env, tick, shellJob("manual", "true", "web1"))
	settled(t, env)
	if _, err := env.Client.Pause(ctx, httpapi.PauseBody{Targets: []string{"web1"}}, true); err != nil {
		t.Fatal(err)
	}
	tg, _ := env.Client.Target(ctx, "web1")
	if !slices.Contains(tg.Flags, muster.FlagPaused) {
		t.Errorf("flags %v, want paused", tg.Flags)
	}
	// The paused state reaches the target without waiting for a poll
	// interval: a START right after is skipped.
	testenv.Eventually(t, wait, "a START to be skipped as paused", func() bool {
		r := startAndWait(t, env, "manual")[0]
		return r.Status == muster.RunSkipped && r.Message == "the target is paused"
	})
	env.Target("web1").Stop(t)
	env.StartTarget("web1")
	before := len(scheduledRuns(t, env, "tick"))
	r := startAndWait(t, env, "manual")[0]
	if r.Status != muster.RunSkipped {
		t.Errorf("after a restart the target forgot it is paused: %s", r.Status)
	}
	if after := len(scheduledRuns(t, env, "tick")); after != before {
		t.Errorf("a paused target fired its schedule: %d runs became %d", before, after)
	}
	if _, err := env.Client.Pause(ctx, httpapi.PauseBody{Targets: []string{"web1"}}, false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "schedules to fire again", func() bool { return len(scheduledRuns(t, env, "tick")) > before })
	if r := startAndWait(t, env, "manual")[0]; r.Status != muster.RunSucceeded {
		t.Errorf("after resume: %s", r.Status)
	}
}

// Posted SET-POLL, SYNC-TIME and RE-ENLIST reach the target and show in
// its status; force-poll refreshes it.
func TestPostedServerInstructions(t *testing.T) {
	clock := &testenv.Clock{}
	clock.Advance(2500 * time.Millisecond) // the target's clock runs 2.5 s ahead
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target:  func(c *targetConfig) { c.Now = clock.Now },
	})
	ctx := context.Background()
	for _, req := range []httpapi.PostRequest{
		{Operation: "set-poll", Value: 300},
		{Operation: "sync-time", Targets: []string{"web1"}},
		{Operation: "re-enlist"},
	} {
		if _, err := env.Client.Post(ctx, req); err != nil {
			t.Fatalf("post %s: %v", req.Operation, err)
		}
	}
	settled(t, env)
	// A force poll reaches the target once it holds a poll open again.
	testenv.Eventually(t, wait, "a force poll to reach a held poll", func() bool {
		res, err := env.Client.ForcePoll(ctx, "web1")
		return err == nil && res.Connected
	})
	var tg muster.Target
	testenv.Eventually(t, wait, "the new poll interval and clock offset", func() bool {
		tg, _ = env.Client.Target(ctx, "web1")
		return tg.PollInterval == 300 && tg.ClockOffsetMS != nil
	})
	if off := *tg.ClockOffsetMS; off < 2400 || off > 2600 {
		t.Errorf("measured offset %d ms, want about 2500", off)
	}
	if failed, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Errors: true}); err != nil || len(failed) != 0 {
		t.Errorf("failed instructions: %+v (%v)", failed, err)
	}
	// Invalid combinations are refused.
	for _, bad := range []httpapi.PostRequest{
		{Operation: "set-poll"}, {Operation: "set-poll", Value: 5}, {Operation: "insert"},
		{Operation: "sync-time", Job: "x"}, {Operation: "start", Value: 3}, {Operation: "defect"}, {Operation: "launch"},
	} {
		if _, err := env.Client.Post(ctx, bad); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("post %+v: %v, want invalid", bad, err)
		}
	}
}

// Resync re-sends a target every job; dismantling deletes every target.
func TestResyncAndDismantle(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	apply(t, env, shellJob("a", "true", "web1", "web2"), shellJob("b", "true", "web1"))
	settled(t, env)
	done, err := env.Client.Resync(ctx, httpapi.ResyncBody{Targets: []string{"web1"}})
	if err != nil || !slices.Equal(done, []string{"web1"}) {
		t.Fatalf("resync: %v %v", done, err)
	}
	list, _ := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Target: "web1"})
	var ops []string
	for _, in := range list[len(list)-3:] {
		ops = append(ops, string(in.Operation)+" "+in.Job)
	}
	if want := []string{"DELETE ", "INSERT a", "INSERT b"}; !slices.Equal(ops, want) {
		t.Errorf("resync posted %v, want %v", ops, want)
	}
	settled(t, env)
	if !holds(t, env, "web1", "a") || !holds(t, env, "web1", "b") {
		t.Error("after the resync web1 does not hold both jobs")
	}

	deleted, err := env.Client.DeleteAllTargets(ctx, false)
	if err != nil || len(deleted) != 2 {
		t.Fatalf("dismantle: %v %v", deleted, err)
	}
	for _, name := range []string{"web1", "web2"} {
		waitExit(t, env.Target(name))
	}
	if left, err := env.Client.Targets(ctx, ""); err != nil || len(left) != 0 {
		t.Errorf("targets after dismantling: %+v (%v)", left, err)
	}
}

// An orphaned target (the master forgot it) is refused with advice; after
// a forced defect it enlists again.
func TestOrphanedTargetReEnlists(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	env.Target("web1").Stop(t)
	if err := env.Client.DeleteTarget(ctx, "web1", true); err != nil {
		t.Fatal(err)
	}
	// Its certificate is refused, saying what to do.
	hc := agentClient(t, env, "web1")
	req, _ := http.NewRequest("GET", env.Master.URL+agentproto.PathInstructions+"?after=0&wait=0", nil)
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := jsonhttp.DecodeError(resp)
	resp.Body.Close()
	if !strings.Contains(body.Error(), "run `muster defect --force` on it, then enlist it again") {
		t.Errorf("an orphan's poll: %v", body)
	}
	if _, err := agent.Defect(ctx, targetCfg(env, "web1"), true); err != nil {
		t.Fatal(err)
	}
	env.AddTarget("web1")
}

// A target whose protocol is newer than the master's is refused at poll,
// with both versions named.
func TestNewerTargetProtocolRefusedAtPoll(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	hc := agentClient(t, env, "web1")
	req, _ := http.NewRequest("GET", env.Master.URL+agentproto.PathInstructions+"?after=0&wait=0", nil)
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version+1))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = jsonhttp.DecodeError(resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(err.Error(), "newer than this master's") {
		t.Errorf("got %d %v", resp.StatusCode, err)
	}
}

// A master's data directory cannot be enlisted in a master.
func TestMasterCannotEnlist(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	_, err := agent.Enlist(context.Background(), agent.EnlistOptions{
		MasterURL: env.Master.URL, Token: env.Token("self"), Name: "self", DataDir: filepath.Join(env.Dir, "master"),
	})
	if err == nil || !strings.Contains(err.Error(), "a master's data directory") {
		t.Errorf("enlisting the master's data directory: %v", err)
	}
}

// A master's data directory cannot be enlisted when its catalog is kept
// elsewhere either (sqlite:PATH, or PostgreSQL): it holds the CA, whose
// ca.pem an enlistment would replace with another master's.
func TestMasterWithCatalogElsewhereCannotEnlist(t *testing.T) {
	catalogFile := filepath.Join(t.TempDir(), "catalog.db")
	env := testenv.New(t, testenv.Options{Master: func(c *master.Config) { c.Store = "sqlite:" + catalogFile }})
	dir := filepath.Join(env.Dir, "master")
	env.StopMaster()
	caBefore, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	other := testenv.New(t, testenv.Options{})
	_, err = agent.Enlist(context.Background(), agent.EnlistOptions{
		MasterURL: other.Master.URL, Token: other.Token("self"), Name: "self", DataDir: dir,
	})
	if err == nil || !strings.Contains(err.Error(), "a master's data directory") {
		t.Errorf("enlisting the data directory of a master whose catalog is elsewhere: %v", err)
	}
	caAfter, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(caAfter) != string(caBefore) {
		t.Errorf("the master's %s was replaced", pki.CACertFile)
	}
	env.StartMaster("127.0.0.1:0") // and the master still starts, with its own CA
}

// An enlistment whose reply never arrived (the connection cut after the
// master committed it) is run again with the same token, and succeeds:
// the target kept the key it asked a certificate for, and the master
// answers the repeat as the enlistment it made. The target then polls.
func TestEnlistAgainAfterALostReply(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	dir := filepath.Join(env.Dir, "target-web1") // where env starts web1 from
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	token := env.Token("web1")

	// The first attempt, as the target sends it, its reply dropped.
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, agent.EnlistKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "web1")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseEnlistToken(token)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: pki.PinnedTLSConfig(tok.CAFingerprint, "127.0.0.1")}
	defer tr.CloseIdleConnections()
	var lost agentproto.EnlistResponse
	err = jsonhttp.Do(ctx, &http.Client{Transport: tr}, jsonhttp.Request{Method: http.MethodPost, URL: env.Master.URL + agentproto.PathEnlist,
		In:     agentproto.EnlistRequest{Token: token, Name: "web1", CSR: csr, PollInterval: muster.DefaultPollInterval, Protocol: agentproto.Version},
		Out:    &lost,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
	if err != nil {
		t.Fatal(err)
	}

	got, err := agent.Enlist(ctx, agent.EnlistOptions{MasterURL: env.Master.URL, Token: token, Name: "web1", DataDir: dir})
	if err != nil {
		t.Fatalf("enlisting again with the same token: %v", err)
	}
	if got.UID != lost.UID {
		t.Errorf("enlisted again as uid %s, want the first enlistment's %s", got.UID, lost.UID)
	}
	if _, err := os.Stat(filepath.Join(dir, agent.EnlistKeyFile)); !os.IsNotExist(err) {
		t.Errorf("the enlistment's key file is left once enlisted: %v", err)
	}
	env.StartTarget("web1")
	testenv.Eventually(t, 10*time.Second, "web1 polls", func() bool {
		tg, err := env.Client.Target(ctx, "web1")
		return err == nil && tg.LastPoll != nil && tg.LastPoll.After(tg.EnlistedAt)
	})
	ts, err := env.Client.Targets(ctx, "")
	if err != nil || len(ts) != 1 {
		t.Errorf("targets: %v, %v; want web1 once", ts, err)
	}
}
