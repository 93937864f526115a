package agent

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
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
