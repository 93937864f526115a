package agent

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a trace writer the test reads while the target runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// A traced target writes one line for each START's run, its hops in order,
// the last the step's start as the master records it.
func TestStartTrace(t *testing.T) {
	tm := startTestMaster(t)
	trace := &lockedBuffer{}
	m := tm.enlist(t, "web1", func(c *Config) { c.Trace = trace })
	runTarget(t, m)
	tm.apply(t, shellJob("traced", []string{"web1"}, "true", "true"))
	tm.settled(t)
	var ids []string
	for range 2 {
		id := tm.start(t, "traced")[0]
		tm.finished(t, id)
		ids = append(ids, id)
	}
	lines := trace.lines()
	if len(lines) != 2 {
		t.Fatalf("%d trace lines for 2 runs of two steps each, want one a run:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
	runs := tm.finished(t, ids...)
	checked := 0
	for i, line := range lines {
		var st StartTrace
		if err := json.Unmarshal(line, &st); err != nil {
			t.Fatal(err)
		}
		if st.RunID != ids[i] {
			t.Errorf("line %d is run %s, want %s", i, st.RunID, ids[i])
		}
		if !(st.ReplyWritten > 0 && st.ReplyWritten <= st.ReplyRead && st.ReplyRead <= st.Committed && st.Committed <= st.ExecReturned) {
			t.Errorf("run %s: hops %+v, want reply written ≤ read ≤ committed ≤ exec returned", st.RunID, st)
		}
		for _, r := range runs {
			if r.RunID != st.RunID {
				continue
			}
			checked++
			if d := time.Unix(0, st.ExecReturned).Sub(r.Steps[0].StartedAt); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("run %s: exec returned %s from the first step's start as recorded, want the same moment", st.RunID, d)
			}
		}
	}
	if checked != 2 {
		t.Errorf("checked %d traces against the master's runs, want 2", checked)
	}
}

// Without a trace writer nothing is traced, and nothing is kept for it.
func TestNoTrace(t *testing.T) {
	if tr := newTracer(nil); tr != nil || tr.reply(time.Now()) != nil {
		t.Errorf("newTracer(nil) = %v, want nil and no trace", tr)
	}
}
