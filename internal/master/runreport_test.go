package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// runReportSeeds are run reports as targets write them, and in forms they
// do not, which runReports must either decode as encoding/json does
// or leave to it.
func runReportSeeds() []string {
	code := 2
	at := time.Date(2026, 12, 6, 7, 10, 2, 123456789, time.UTC)
	done := at.Add(12 * time.Millisecond)
	reports := []agentproto.RunReport{
		{},
		{Revision: 1, Run: agentproto.Run{Job: "ingest", Target: "web-1", RunID: "ingest-000000001", Status: muster.RunSucceeded,
			Trigger: "schedule:every-minute", StartedAt: at, FinishedAt: &done, DurationMS: 12,
			Steps: []agentproto.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code, StartedAt: at, DurationMS: 11}}},
			Output: []agentproto.OutputChunk{{Data: "backup of /var/lib/app done: 1523 files, 48 MiB\n"}}},
		{Revision: 7, Run: agentproto.Run{Job: "j", RunID: "r", Status: muster.RunRunning, Message: "<a & b> \"quoted\" \\ \t é 😀 \u2028",
			StartedAt: at.In(time.FixedZone("", -5*3600)), Steps: []agentproto.StepAttempt{{Name: "one", Message: "m\x01"}, {Name: "two", Attempt: -3}}},
			Output: []agentproto.OutputChunk{{Attempt: 1, Offset: 1 << 40, Data: "\x00\x1f\x7f"}, {Attempt: 0, Offset: 3, Data: ""}}},
	}
	var out []string
	for _, r := range reports {
		b, err := json.Marshal(r)
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
		var indented bytes.Buffer
		json.Indent(&indented, b, "", "\t")
		out = append(out, indented.String())
	}
	return append(out,
		`{"revision":1,"run":{"steps":[],"finished_at":null},"output":null}`,
		`{"revision":1,"run":{"steps":null},"output":[]}`,
		`{"Revision":1}`,              // another case: encoding/json's
		`{"revision":1,"revision":2}`, // twice
		`{"revision":1,"extra":2}`,    // unknown: refused
		`{"revision":1e3}`, `{"revision":1.0}`, `{"revision":01}`, `{"revision":-0}`, `{"revision":-}`,
		`{"revision":99999999999999999999}`, `{"revision":"1"}`, `{"revision":null}`,
		`{"run":{"job":"a\u00e9\ud83d\ude00b\u0041\/"}}`, // escapes, a surrogate pair
		`{"run":{"job":"\ud800"}}`,                       // a lone surrogate
		"{\"run\":{\"job\":\"a\xffb\"}}",                 // invalid UTF-8
		"{\"run\":{\"job\":\"a\nb\"}}",                   // a control character
		`{"run":{"job":null,"started_at":null}}`,
		`{"run":{"started_at":"2026-12-06T07:10:02+01:00"}}`,
		`{"run":{"started_at":"2026-12-06T07:10:02Z "}}`,
		`{"run":{"started_at":"2026-12-06T07:10:02\u005a"}}`,
		`{"run":{"started_at":"not a time"}}`,
		`{"run":{"steps":[{"exit_code":null},{"exit_code":-1}]}}`,
		`{"run":{"steps":[{"exit_code":1.5}]}}`,
		`{"run":null}`, `{"run":[]}`, `{"output":[null]}`, `{"output":{}}`,
		`{"revision":1,}`, `{"revision":1`, `{"revision" 1}`, `{,}`, `[]`, `null`, ` {} `,
	)
}

// What runReports decodes, encoding/json decodes the same; and it
// decodes what targets write.
func TestDecodeRunReportIsEncodingJSON(t *testing.T) {
	seeds := runReportSeeds()
	for i, s := range seeds {
		ok := checkDecodeRunReport(t, s)
		if plain := i < 6 && i%2 == 0; plain && !ok {
			t.Errorf("a report as a target writes it was left to encoding/json: %s", s)
		}
	}
	// Random changes to a report as targets write it.
	rng := rand.New(rand.NewPCG(3, 4))
	base := seeds[2]
	for range 3000 {
		b := []byte(base)
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = byte(rng.IntN(128))
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				const special = `"{}[],:\ 0-e`
				b = append(b[:i], append([]byte{special[rng.IntN(len(special))]}, b[i:]...)...)
			}
		}
		checkDecodeRunReport(t, string(b))
	}
}

func FuzzDecodeRunReport(f *testing.F) {
	for _, s := range runReportSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkDecodeRunReport(t, s) })
}

// checkDecodeRunReport checks that runReports decodes s as
// encoding/json does, if it decodes it, and reports whether it did.
func checkDecodeRunReport(t *testing.T, s string) bool {
	t.Helper()
	// Twice with the same decoder: the second reads the names it keeps.
	var d runReports
	var got, again agentproto.RunReport
	if !d.decode([]byte(s), &got) {
		return false
	}
	if !d.decode([]byte(s), &again) || !reflect.DeepEqual(got, again) {
		t.Errorf("%s decoded again: %+v, first %+v", s, again, got)
	}
	var want agentproto.RunReport
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	err := dec.Decode(&want)
	if err == nil && dec.More() {
		err = fmt.Errorf("more after the value")
	}
	if err != nil {
		t.Errorf("decoded what encoding/json refuses (%v): %s", err, s)
	} else if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", s, got, want)
	}
	return true
}

// BenchmarkDecodeRunReport decodes the report a target uploads when a
// START's step has begun: one run, running, one step, each upload with a
// decoder of its own, as each request has.
func BenchmarkDecodeRunReport(b *testing.B) {
	at := time.Date(2026, 12, 7, 5, 40, 0, 0, time.UTC)
	data, err := json.Marshal(agentproto.RunReport{Revision: 1, Run: agentproto.Run{Job: "fleet", Target: "sim-04711",
		RunID: "019af2c4-6a1e-7b3c-9d2e-5f4a3b2c1d0e", Status: muster.RunRunning, Trigger: muster.TriggerOperator, StartedAt: at,
		Steps: []agentproto.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptRunning, StartedAt: at}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var d runReports
		var rep agentproto.RunReport
		if !d.decode(data, &rep) {
			b.Fatalf("not decoded: %s", data)
		}
	}
}
