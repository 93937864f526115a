package target

import (
	"strings"
	"testing"
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
