package master

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	v1 "github.com/musterhq/muster/internal/agentproto/v1"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// benchRequest returns a POST of body, as a target sends it.
func benchRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// BenchmarkDecodeAcks decodes what a target acknowledges after a poll that
// brought it ten instructions: the body of POST /agent/v1/acks.
func BenchmarkDecodeAcks(b *testing.B) {
	var req agentproto.AckRequest
	for i := range 10 {
		req.Acks = append(req.Acks, agentproto.Ack{Seq: int64(1000 + i), OK: true})
	}
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var got agentproto.AckRequest
		if err := jsonhttp.DecodeJSON(httptest.NewRecorder(), benchRequest(body), maxAckBody, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRuns returns an upload of n finished runs of one step each.
func benchRuns(n int) agentproto.RunsRequest {
	at := time.Date(2026, 12, 7, 5, 40, 0, 0, time.UTC)
	done, code := at.Add(12*time.Millisecond), 0
	var req agentproto.RunsRequest
	for range n {
		req.Runs = append(req.Runs, agentproto.RunReport{Revision: 2, Run: agentproto.Run{Job: "fleet", Target: "sim-04711",
			RunID: "019af2c4-6a1e-7b3c-9d2e-5f4a3b2c1d0e", Status: muster.RunSucceeded, Trigger: muster.TriggerOperator,
			StartedAt: at, FinishedAt: &done, DurationMS: 12,
			Steps: []agentproto.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code, StartedAt: at, DurationMS: 11}}},
			Output: []agentproto.OutputChunk{{Attempt: 1, Data: "done\n"}}})
	}
	return req
}

// BenchmarkDecodeRuns decodes an upload of 100 runs, the body of POST
// /agent/v1/runs, as the master does: in protocol 2 through the hand-written
// decoder, in protocol 1 through encoding/json.
func BenchmarkDecodeRuns(b *testing.B) {
	req := benchRuns(100)
	body, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("protocol=2", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			n := 0
			err := jsonhttp.StreamList(httptest.NewRecorder(), benchRequest(body), maxRunsBody, "runs", len(req.Runs), maxRunReport,
				runsWriteChunk, (&runReports{}).decode, func(reports []agentproto.RunReport) error { n += len(reports); return nil })
			if err != nil || n != len(req.Runs) {
				b.Fatalf("%d runs, %v", n, err)
			}
		}
	})
	for i := range req.Runs {
		req.Runs[i].Output = nil // protocol 1 uploads no output
	}
	old, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("protocol=1", func(b *testing.B) {
		body := old
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			n := 0
			err := jsonhttp.StreamList(httptest.NewRecorder(), benchRequest(body), maxRunsBody, "runs", len(req.Runs), maxRunReport,
				runsWriteChunk, nil, func(reports []v1.RunReport) error { n += len(reports); return nil })
			if err != nil || n != len(req.Runs) {
				b.Fatalf("%d runs, %v", n, err)
			}
		}
	})
}
