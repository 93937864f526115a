package jobfile

import (
	"encoding/json"
	"testing"
)

// jsonLen counts a text as encoding/json writes it, quotes aside, so that
// the size a file is checked at is the size the master counts.
func TestJSONLenIsWhatEncodingJSONWrites(t *testing.T) {
	texts := []string{"", "plain", `a"b\c`, "line\nbreak\ttab\r", "<&>", "\x00\x1f", "\b\f", "\u2028\u2029", "é€😀", "\uFFFD", "bad\xffbyte", "\xc3"}
	checked := 0
	for _, s := range texts {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jsonLen(s), len(b)-2; got != want {
			t.Errorf("jsonLen(%q) = %d, want %d (%s)", s, got, want, b)
		}
		checked++
	}
	if checked != len(texts) {
		t.Fatalf("checked %d texts, want %d", checked, len(texts))
	}
}
