package sqlstore

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// AppendSteps writes what json.Marshal writes, byte for byte: the column
// holds the same text whichever wrote it.
func TestAppendStepsIsJSONMarshal(t *testing.T) {
	code := 3
	at := time.Date(2026, 12, 6, 7, 10, 2, 123456700, time.FixedZone("", 2*3600))
	cases := map[string][]muster.StepAttempt{
		"nil":   nil,
		"empty": {},
		"plain": {{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code, StartedAt: at, DurationMS: 11}},
		"escapes": {{Name: "a\"b\\c<d>e&f", Attempt: -2, Status: muster.AttemptFailed, Output: "\x00\x01\b\f\n\r\t\x1f\x7f é \u2028\u2029 \xff\xfe end",
			Message: "ünïcode 😀 \xc3", StartedAt: time.Time{}, DurationMS: -1}},
		"two": {{Name: "one", Status: muster.AttemptRunning, StartedAt: at.UTC()}, {Name: "two", Message: "m", StartedAt: at.Local()}},
	}
	// Random bytes, half of them among those escaped or special.
	const special = "<>&\"\\\n\x00\xe2\x80\xa8aé"
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[j] = special[rng.IntN(len(special))]
			}
		}
		cases[string(rune('A'+i%26))+string(b)] = []muster.StepAttempt{{Name: string(b), Output: string(b[len(b)/2:]), Message: string(b[:len(b)/2]),
			StartedAt: at.Add(time.Duration(rng.Int64N(1e15)))}}
	}
	for name, steps := range cases {
		want, err := json.Marshal(steps)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendSteps([]byte("prefix"), steps)
		if err != nil || string(got) != "prefix"+string(want) {
			t.Errorf("%q:\n got %s (%v)\nwant prefix%s", name, got, err, want)
		}
	}
}

// A time json.Marshal cannot write fails the encoding as it fails
// json.Marshal.
func TestAppendStepsYearOutOfRange(t *testing.T) {
	steps := []muster.StepAttempt{{Name: "x", StartedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if _, err := json.Marshal(steps); err == nil {
		t.Fatal("json.Marshal took year 10000")
	}
	if b, err := AppendSteps(nil, steps); err == nil {
		t.Errorf("AppendSteps wrote year 10000: %s", b)
	}
}
