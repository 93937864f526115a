package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// BenchmarkDispatch is the dispatch path in one process, for a CPU profile
// of all of it (operator client, master, target, step spawn):
//
//	go test -run '^$' -bench Dispatch -cpuprofile cpu.pprof ./internal/bench
//
// Its time per operation is start → finished run recorded; `muster bench
// dispatch` measures the same with each daemon in its own process.
func BenchmarkDispatch(b *testing.B) {
	env := testenv.New(b, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets = "dispatch", []string{"web1"}
	j.Steps = []muster.Step{{Name: "main", Shell: "true"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := env.Client.StartJob(ctx, "dispatch", httpapi.StartBody{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			runs, err := env.Client.Runs(ctx, res.Refs()[:1], 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if len(runs) == 1 && runs[0].Status.Finished() {
				if runs[0].Status != muster.RunSucceeded {
					b.Fatalf("run %s: %s %q", runs[0].RunID, runs[0].Status, runs[0].Message)
				}
				break
			}
		}
	}
}
