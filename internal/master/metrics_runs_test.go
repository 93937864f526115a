package master

import (
	"context"
	"net/http"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
)

// muster_runs_total counts every run the master records finished, once:
// those its targets upload, and those it records itself, a START never run
// (skipped) and a run of a target that left (abandoned). A commit another
// master tells of is that master's to count.
func TestRunsTotalCountsEveryRunEnd(t *testing.T) {
	m := testMaster(t, nil)
	ctx := context.Background()
	web1, web2 := enlist(t, m, "web1"), enlist(t, m, "web2")
	applyJob(t, m, "deploy", "web1", "web2")

	// web1 uploads a finished run, twice.
	for range 2 {
		w := serve(m, web1.tls, http.MethodPost, agentproto.PathRuns, agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("deploy", "r1", "ok")}})
		if w.Code != http.StatusOK {
			t.Fatalf("upload: %d %s", w.Code, w.Body)
		}
	}
	// A START to web2, deleted before web2 collects it.
	res, err := m.Catalog.StartJob(ctx, catalog.StartRequest{Job: "deploy", Targets: []string{"web2"}}, m.Self())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Catalog.DeleteInstruction(ctx, web2.name, res.Runs[0].Seq, m.Self()); err != nil {
		t.Fatal(err)
	}
	// web2 reports a run running, and is deleted with --force.
	running := finishedRun("deploy", "r2", "")
	running.Run.Status, running.Run.FinishedAt, running.Run.Steps[0].Status = muster.RunRunning, nil, muster.AttemptRunning
	running.Run.Steps[0].ExitCode = nil
	if w := serve(m, web2.tls, http.MethodPost, agentproto.PathRuns, agentproto.RunsRequest{Runs: []agentproto.RunReport{running}}); w.Code != http.StatusOK {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	if err := m.Catalog.DeleteTarget(ctx, web2.name, true, m.Self()); err != nil {
		t.Fatal(err)
	}
	// Another master's commit, as its notification would bring it.
	Heard(m, catalog.Commit{Runs: []string{"x"}, Ended: []catalog.RunEnd{{Job: "deploy", Status: muster.RunFailed}}})

	for status, want := range map[muster.RunStatus]float64{
		muster.RunSucceeded: 1, muster.RunSkipped: 1, muster.RunAbandoned: 1, muster.RunFailed: 0,
	} {
		if got := RunsEnded(m, "deploy", status); got != want {
			t.Errorf(`muster_runs_total{job="deploy",status=%q} = %v, want %v`, status, got, want)
		}
	}
}
