package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// A rollout started over the API goes on across a restart of the master:
// the wave under way when the master stops ends after it is back, and the
// master posts the next one.
func TestRolloutGoesOnAcrossARestart(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets = "deploy", []string{"web1", "web2"}
	j.Steps = []muster.Step{{Name: "roll", Shell: "sleep 2; echo rolled"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		var err error
		res, err = env.Client.StartJob(ctx, "deploy", httpapi.StartBody{IdempotencyKey: "roll-1",
			Rollout: &muster.RolloutSpec{Batch: "1"}})
		return err == nil
	})
	if res.Rollout == nil || res.Rollout.Waves != 2 || len(res.Runs) != 1 || res.Runs[0].Target != "web1" {
		t.Fatalf("start: %+v, want a rollout of 2 waves beginning with web1", res)
	}
	env.RestartMaster()
	var ro muster.Rollout
	testenv.Eventually(t, 60*time.Second, "the rollout to end", func() bool {
		var err error
		ro, err = env.Client.Rollout(ctx, "deploy", res.Rollout.ID)
		return err == nil && !ro.Active()
	})
	if ro.State != muster.RolloutDone || ro.Succeeded != 2 || ro.Wave != 2 {
		t.Fatalf("after the restart: %+v, want done with 2 succeeded", ro)
	}
	again, err := env.Client.StartJob(ctx, "deploy", httpapi.StartBody{IdempotencyKey: "roll-1", Rollout: &muster.RolloutSpec{Batch: "1"}})
	if err != nil || !again.Replayed || again.Rollout.ID != ro.ID {
		t.Errorf("the retried request: %+v %v, want the first rollout replayed", again, err)
	}
}

// Bad rollout fields are refused with invalid (400), naming the field; an
// unknown rollout is not found.
func TestRolloutRefusedOverAPI(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets = "deploy", []string{"web1"}
	j.Steps = []muster.Step{{Name: "roll", Shell: "true"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[muster.RolloutSpec]string{
		{Batch: "0"}:                   `rollout.batch: "0" is not a number of targets (1 or more) or a percentage such as 25%`,
		{Batch: "200%"}:                `rollout.batch: "200%" is not a percentage above 0% and at most 100%`,
		{Batch: "1", MaxFailures: -2}:  `rollout.max_failures: -2 is negative; give 0 (halt at the first failure) or more`,
		{Batch: "1%", MaxFailures: -1}: `rollout.max_failures: -1 is negative; give 0 (halt at the first failure) or more`,
	} {
		_, err := env.Client.StartJob(ctx, "deploy", httpapi.StartBody{Rollout: &spec})
		if muster.ErrorCode(err) != muster.EINVALID || err.Error() != want {
			t.Errorf("%+v: %v, want %s %q", spec, err, muster.EINVALID, want)
		}
	}
	if ros, err := env.Client.Rollouts(ctx, "deploy"); err != nil || len(ros) != 0 {
		t.Errorf("rollouts after refusals: %+v %v, want none", ros, err)
	}
	if _, err := env.Client.Rollout(ctx, "deploy", 7); muster.ErrorCode(err) != muster.ENOTFOUND {
		t.Errorf("rollout 7: %v, want %s", err, muster.ENOTFOUND)
	}
}
