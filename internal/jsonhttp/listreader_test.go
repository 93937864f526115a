package jsonhttp

import (
	"io"
	"strings"
	"testing"
)

// A small body is read into a buffer of its size (of 4 KiB when its length
// is not known), not of minRead: ten thousand small uploads at once hold
// their bodies, not 32 KiB each. A larger body grows it as it comes.
func TestListReaderBufferFitsTheBody(t *testing.T) {
	small := `{"runs":[{"a":1},{"a":2}]}`
	large := `{"runs":[` + strings.Repeat(`{"a":1},`, 20000) + `{"a":2}]}`
	cases := []struct {
		body   string
		length int64
		want   func(c int) bool
		what   string
	}{
		{small, int64(len(small)), func(c int) bool { return c == len(small)+1 }, "its length + 1"},
		{small, -1, func(c int) bool { return c == 4<<10 }, "4 KiB"},
		{large, int64(len(large)), func(c int) bool { return c >= len(large) }, "all of it"},
	}
	for _, tc := range cases {
		l := &listReader{src: strings.NewReader(tc.body), max: 1 << 20, first: firstRead(tc.length)}
		reads := 0
		for {
			_, err := l.more(0)
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			reads++
		}
		if string(l.buf) != tc.body {
			t.Fatalf("length %d: read %d bytes of %d", tc.length, len(l.buf), len(tc.body))
		}
		if reads == 0 || !tc.want(cap(l.buf)) {
			t.Errorf("length %d of %d bytes: a buffer of %d after %d reads, want %s", tc.length, len(tc.body), cap(l.buf), reads, tc.what)
		}
	}
}
