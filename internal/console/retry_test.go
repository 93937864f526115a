package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Retrying a failed START from a target's page leads to the page of the
// run it starts, as starting a job on one target does: the operator
// follows the new run rather than looking for it.
func TestRetriedStartLeadsToItsRun(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1"}, []muster.Step{{Name: "copy", Shell: "cp a b"}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	res, err := s.db.StartJob(ctx, catalog.StartRequest{Job: "report"}, master)
	if err != nil {
		t.Fatal(err)
	}
	web1, err := s.db.Store().FindTargetByName(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Ack(ctx, web1.ID, []catalog.AckRow{{Seq: res.Runs[0].Seq, Status: muster.InstructionFailed, Error: "no room"}}); err != nil {
		t.Fatal(err)
	}
	c, token := s.signIn(catalog.RoleOperator)
	resp, err := c.PostForm(s.srv.URL+"/instructions/web1/"+strconv.FormatInt(res.Runs[0].Seq, 10)+"/retry", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || len(loc) < len("/runs/web1/") || loc[:len("/runs/web1/")] != "/runs/web1/" {
		t.Errorf("retry: %d to %q, want 303 to the new run's page, /runs/web1/…", resp.StatusCode, loc)
	}
	if loc == "/runs/web1/"+res.Runs[0].RunID+"?started=1" {
		t.Errorf("retry leads to the refused run's page %q, want the new run's", loc)
	}
}

// The page of a run just started waits for its target to report it; a
// link to a run "just started" on a target that is not enlisted, to which
// no START went, is a page that does not exist, not one that waits
// forever saying the START was sent.
func TestStartedRunOnNoTargetIsNotFound(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleReader)
	status, body := s.get(c, "/runs/nope/01a251e3-1c30-728e-b92c-6dbd99182db9?started=1")
	if status != http.StatusNotFound || strings.Contains(body, "sent the START") {
		t.Errorf("a started run on a target not enlisted: %d, want 404:\n%s", status, body)
	}
	if status, _ := s.get(c, "/runs/web1/01a251e3-1c30-728e-b92c-6dbd99182db9?started=1"); status != http.StatusOK {
		t.Errorf("a started run not yet reported on web1: %d, want 200, the page waiting for it", status)
	}
}

// refuse has target acknowledge its one instruction of job as refused,
// saying why, and returns it.
func (s *site) refuse(ctx context.Context, target, job, why string) muster.Instruction {
	s.t.Helper()
	ins, err := s.db.FindInstructions(ctx, catalog.InstructionFilter{Target: target, Job: job})
	if err != nil || len(ins) != 1 {
		s.t.Fatalf("the instruction of %s on %s: %v %v", job, target, ins, err)
	}
	t, err := s.db.Store().FindTargetByName(ctx, target)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.db.Ack(ctx, t.ID, []catalog.AckRow{{Seq: ins[0].Seq, Status: muster.InstructionFailed, Error: why}}); err != nil {
		s.t.Fatal(err)
	}
	return ins[0]
}

// A target is blocked by its failed instruction however many were posted
// to it since: its page shows that instruction, with Retry and Delete,
// beside the newest of its download list.
func TestTargetPageShowsAnOldFailedInstruction(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	bad, busy := muster.NewJob(), muster.NewJob()
	bad.Name, bad.Targets, bad.Steps = "bad", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}
	busy.Name, busy.Targets, busy.Steps = "busy", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{bad, busy}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	in := s.refuse(ctx, "web1", "bad", "no such proxy")
	for range 210 {
		if _, err := s.db.StartJob(ctx, catalog.StartRequest{Job: "busy"}, master); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := s.signIn(catalog.RoleOperator)
	_, body := s.get(c, "/targets/web1")
	seq := strconv.FormatInt(in.Seq, 10)
	if !strings.Contains(body, `data-seq="`+seq+`" data-status="failed"`) || !strings.Contains(body, `action="/instructions/web1/`+seq+`/retry"`) {
		t.Errorf("web1's page, 210 instructions after the one that blocks it, does not show instruction %s with Retry", seq)
	}
}

// A job's page says which targets refused its definition, and why, beside
// their last run: the target runs the job as it was, or not at all, until
// the instruction is retried or deleted.
func TestJobPageShowsTheTargetsThatRefusedIt(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1", "web2"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	in := s.refuse(ctx, "web1", "report", `run_as "backup": proxy not found`)
	c, _ := s.signIn(catalog.RoleReader)
	status, body := s.get(c, "/jobs/report")
	if status != http.StatusOK {
		t.Fatalf("the job's page: %d", status)
	}
	refused := regexp.MustCompile(`<p class="refused" data-seq="(\d+)"><a href="/targets/(\w+)"><span class="badge i-failed">INSERT refused</span></a> <span class="error">([^<]*)</span>`).FindAllStringSubmatch(body, -1)
	if len(refused) != 1 || refused[0][1] != strconv.FormatInt(in.Seq, 10) || refused[0][2] != "web1" || refused[0][3] != `run_as &#34;backup&#34;: proxy not found` {
		t.Errorf("the refusals shown: %q, want web1's INSERT, saying why", refused)
	}
	// web2, which took the job, shows no refusal.
	if n := strings.Count(body, `class="refused"`); n != 1 {
		t.Errorf("the page shows %d refusals, want web1's only", n)
	}
}
