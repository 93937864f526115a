package agent

import (
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

func TestOutputKeepsHeadAndTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"under the limit", []string{"hello\n"}, "hello\n"},
		{"exactly the limit", []string{"0123456789"}, "0123456789"},
		{"one big write", []string{"abcdefghijklmnopqrstuvwxyz"}, "abcde\n[muster: 16 bytes of output dropped here; the first and last 5 bytes are kept]\nvwxyz"},
		{"many small writes", strings.Split("abcdefghijklmnopqrstuvwxyz", ""), "abcde\n[muster: 16 bytes of output dropped here; the first and last 5 bytes are kept]\nvwxyz"},
		{"mixed", []string{"abc", "defgh", "ijklmnopq", "rs", "tuvwxyz"}, "abcde\n[muster: 16 bytes of output dropped here; the first and last 5 bytes are kept]\nvwxyz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutput(10)
			for _, w := range tc.writes {
				o.Write([]byte(w))
			}
			if got := o.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOutputMemoryIsBounded(t *testing.T) {
	o := newOutput(1 << 10)
	chunk := []byte(strings.Repeat("x", 4096))
	for i := 0; i < 10000; i++ {
		o.Write(chunk)
	}
	if cap(o.head) > 1<<10 || cap(o.tail) > 1<<10 {
		t.Errorf("head %d and tail %d bytes kept for a 1 KiB limit", cap(o.head), cap(o.tail))
	}
	if o.written() != 4096*10000 {
		t.Errorf("written %d", o.written())
	}
}

func TestFitRunKeepsUploadsBounded(t *testing.T) {
	big := strings.Repeat("a", 3<<20) + strings.Repeat("z", 3<<20)
	r := muster.Run{Steps: []muster.StepAttempt{{Output: big}, {Output: big}, {Output: "small"}}}
	fitRun(&r, 1<<20)
	if n := runSize(r); n > 1<<20+4096 {
		t.Errorf("run size %d after fitting to 1 MiB", n)
	}
	out := r.Steps[0].Output
	if !strings.HasPrefix(out, "aaa") || !strings.HasSuffix(out, "zzz") || !strings.Contains(out, "kept on the target only") {
		t.Errorf("a cut output keeps its head and tail and says so: %q…%q", out[:20], out[len(out)-20:])
	}
	if r.Steps[2].Output != "small" {
		t.Errorf("a small output was cut: %q", r.Steps[2].Output)
	}
}
