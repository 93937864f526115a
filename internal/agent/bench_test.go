package agent

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// benchTarget is a target daemon with its store open and nothing running:
// enough to apply instructions.
func benchTarget(b *testing.B) *Main { return newTestMain(b) }

func payload(b *testing.B, v any) json.RawMessage {
	p, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// Applying an instruction: its effect, the cursor and the ack in one
// local transaction, committed with synchronous=FULL (an fsync).
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	job := muster.NewJob()
	job.Name = "backup"
	job.Steps = []muster.Step{{Name: "dump", Shell: "pg_dump app > /var/backups/app.sql"}}
	job.Schedules = []muster.Schedule{{Name: "nightly", Cron: "30 2 * * *"}}

	b.Run("INSERT", func(b *testing.B) {
		m := benchTarget(b)
		seq := int64(0)
		b.ReportAllocs()
		for b.Loop() {
			seq++
			job.Version = seq
			in := agentproto.Instruction{Seq: seq, Operation: muster.OpInsert, Job: job.Name, Payload: payload(b, job)}
			if _, err := m.apply(ctx, in, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A START that reaches the target after its expiry is recorded as a
	// skipped run: the same transaction as a run that is launched, without
	// the launch.
	b.Run("START recorded", func(b *testing.B) {
		m := benchTarget(b)
		job.Version = 1
		if _, err := m.apply(ctx, agentproto.Instruction{Seq: 1, Operation: muster.OpInsert, Job: job.Name, Payload: payload(b, job)}, time.Now()); err != nil {
			b.Fatal(err)
		}
		seq := int64(1)
		expired := time.Now().Add(-time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			seq++
			p := agentproto.StartPayload{RunID: "run-" + strconv.FormatInt(seq, 10), ExpiresAt: expired}
			in := agentproto.Instruction{Seq: seq, Operation: muster.OpStart, Job: job.Name, Payload: payload(b, p)}
			if _, err := m.apply(ctx, in, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Reading a poll reply: the keys checked (a key given twice or spelled in
// another case refused) and then decoded, the reply and each INSERT's
// payload, against decoding alone. An empty reply is a held poll that
// ended; a full one a resync.
func BenchmarkPollReplyDecode(b *testing.B) {
	job := muster.NewJob()
	job.Name = "backup"
	job.Steps = []muster.Step{{Name: "dump", Shell: "pg_dump app > /var/backups/app.sql", Env: map[string]string{"PGHOST": "db1", "PGUSER": "backup"}}}
	job.Schedules = []muster.Schedule{{Name: "nightly", Cron: "30 2 * * *"}}
	for _, n := range []int{0, 200} {
		reply := agentproto.PollResponse{Epoch: "a1c9f3865fe7040f", Protocol: agentproto.Version, ServerTime: time.Now(), Instructions: []agentproto.Instruction{}}
		for i := range n {
			job.Name, job.Version = "backup"+strconv.Itoa(i), int64(i+1)
			reply.Instructions = append(reply.Instructions, agentproto.Instruction{Seq: int64(i + 1), Operation: muster.OpInsert, Job: job.Name,
				Payload: payload(b, agentproto.JobFromDomain(job))})
		}
		data := payload(b, reply)
		b.Run(strconv.Itoa(n)+" INSERTs/decoded", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var r agentproto.PollResponse
				if err := json.Unmarshal(data, &r); err != nil {
					b.Fatal(err)
				}
				for _, in := range r.Instructions {
					var j agentproto.InsertPayload
					if err := json.Unmarshal(in.Payload, &j); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(strconv.Itoa(n)+" INSERTs/checked", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var r agentproto.PollResponse
				if err := jsonhttp.CheckReplyKeys(data, reflect.TypeOf(&r)); err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(data, &r); err != nil {
					b.Fatal(err)
				}
				for _, in := range r.Instructions {
					var j agentproto.InsertPayload
					if err := decodeStrict(in, &j); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// A run's life as the uploader sends it: each attempt begins and ends,
// each change saved and uploaded, with a KiB of output an attempt. The
// bytes sent per run are reported: the output goes once, but each report
// carries the run whole, every attempt so far, so a run of n attempts
// sends its attempts about n²/2 times over.
func BenchmarkRunUploadByAttempts(b *testing.B) {
	ctx := context.Background()
	line := strings.Repeat("x", 1023) + "\n"
	for _, n := range []int{10, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			m := benchTarget(b)
			runs, sent := 0, 0
			for b.Loop() {
				runs++
				r := muster.Run{RunID: "run-" + strconv.Itoa(runs), Job: "loop", Status: muster.RunRunning, StartedAt: time.Now().UTC()}
				for i := range n {
					r.Steps = append(r.Steps, muster.StepAttempt{Name: "step" + strconv.Itoa(i%muster.MaxSteps), Status: muster.AttemptRunning, StartedAt: time.Now().UTC()})
					for phase := range 2 {
						var out []outputChunk
						if phase == 1 {
							r.Steps[i].Status = muster.AttemptSucceeded
							out = []outputChunk{{attempt: i, data: line}}
						}
						if err := m.store.saveRun(ctx, r, out); err != nil {
							b.Fatal(err)
						}
						up, err := m.store.unsentRuns(ctx, defaultUploadLimits())
						if err != nil {
							b.Fatal(err)
						}
						body, err := json.Marshal(agentproto.RunsRequest{Runs: up.reports})
						if err != nil {
							b.Fatal(err)
						}
						sent += len(body)
						results := make([]agentproto.RunResult, len(up.reports))
						for k, rep := range up.reports {
							results[k] = agentproto.RunResult{RunID: rep.Run.RunID, OK: true}
						}
						if err := m.store.markUploaded(ctx, up, results); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(sent)/float64(runs), "bytes-sent/run")
			b.ReportMetric(float64(n*len(line)), "output-bytes/run")
		})
	}
}
