package jsonhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// attempt is about the size of what request bodies decode to.
type attempt struct {
	Name, Status, Output, Message string
	Attempt, Exit                 int
	Duration                      int64
}

type batch struct {
	Attempts []attempt `json:"attempts"`
	Note     string    `json:"note"`
}

func decode(body io.Reader, limit int64) (batch, error) {
	r := httptest.NewRequest(http.MethodPost, "/", body)
	var b batch
	err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, limit, &b)
	return b, err
}

func TestDecodeJSON(t *testing.T) {
	deep := strings.Repeat(`{"a":`, jsonhttp.MaxDepth) + "1" + strings.Repeat("}", jsonhttp.MaxDepth)
	for _, tc := range []struct {
		name  string
		body  string
		limit int64
		code  string
	}{
		{"a body within its limit", `{"attempts":[{"Name":"a"}],"note":"x"}`, 1 << 10, ""},
		{"braces inside strings are not structure", `{"note":"` + strings.Repeat(`{[\"\\`, 100) + `"}`, 1 << 10, ""},
		{"over the byte limit", `{"note":"` + strings.Repeat("x", 2000) + `"}`, 1 << 10, muster.ETOOLARGE},
		{"objects count against the limit", `{"attempts":[` + strings.Repeat(`{},`, 20) + `{}]}`, 1 << 10, muster.ETOOLARGE},
		{"nested deeper than MaxDepth", `{"attempts":[],"note":"","x":` + deep + `}`, 1 << 20, muster.EINVALID},
		{"an unknown field", `{"attempts":[],"extra":1}`, 1 << 10, muster.EINVALID},
		{"trailing data", `{"attempts":[]} {}`, 1 << 10, muster.EINVALID},
		{"a stray closing bracket", `{"attempts":[]}]`, 1 << 10, muster.EINVALID},
		{"not JSON", `attempts`, 1 << 10, muster.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(strings.NewReader(tc.body), tc.limit)
			if got := muster.ErrorCode(err); got != tc.code {
				t.Errorf("code %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

// deadlineReader is a body whose connection passed its read deadline.
type deadlineReader struct{}

func (deadlineReader) Read([]byte) (int, error) {
	return 0, fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded)
}

func TestDecodeJSONBodyTooSlow(t *testing.T) {
	_, err := decode(io.MultiReader(strings.NewReader(`{"attempts":[`), deadlineReader{}), 1<<10)
	if got := muster.ErrorCode(err); got != muster.ETIMEOUT {
		t.Errorf("code %q (%v), want %q", got, err, muster.ETIMEOUT)
	}
}

// A body of empty objects, the cheapest on the wire to decode into large
// structs, decodes to a small multiple of its limit at most: it is refused
// once its objects count past the limit.
func TestDecodeJSONBoundsWhatABodyDecodesTo(t *testing.T) {
	const limit = 4 << 20
	body := `{"attempts":[` + strings.Repeat(`{},`, limit/4) + `{}]}` // 3 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decode(strings.NewReader(body), limit)
	runtime.ReadMemStats(&after)
	if muster.ErrorCode(err) != muster.ETOOLARGE {
		t.Errorf("%v, want too large", err)
	}
	// Without the count, the million empty objects would decode to attempts
	// of 96 bytes each: 96 MiB, and the slice's growth as much again.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*limit {
		t.Errorf("decoding allocated %d MiB for a body limited to %d MiB; want at most %d MiB", alloc>>20, limit>>20, 4*limit>>20)
	}
}

type item struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
}

func decodeList(body string, maxItems int, maxItem int64) ([]item, error) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	return jsonhttp.DecodeList[item](httptest.NewRecorder(), r, 1<<20, "items", maxItems, maxItem)
}

func TestDecodeList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		items int
		code  string
	}{
		{"a list", `{"items":[{"id":1},{"id":2,"text":"b"}]}`, 2, ""},
		{"an empty list", `{"items":[]}`, 0, ""},
		{"null", `{"items":null}`, 0, ""},
		{"no field", `{}`, 0, ""},
		{"an unknown field", `{"items":[],"more":1}`, 0, muster.EINVALID},
		{"an unknown field in an item", `{"items":[{"id":1,"more":1}]}`, 0, muster.EINVALID},
		{"a key twice in an item", `{"items":[{"id":1},{"id":1,"id":2}]}`, 0, muster.EINVALID},
		{"a key in another case in an item", `{"items":[{"ID":1}]}`, 0, muster.EINVALID},
		{"the field in another case", `{"Items":[]}`, 0, muster.EINVALID},
		{"the field twice", `{"items":[],"items":[]}`, 0, muster.EINVALID},
		{"not a list", `{"items":{"id":1}}`, 0, muster.EINVALID},
		{"not an object", `[{"id":1}]`, 0, muster.EINVALID},
		{"too many items", `{"items":[{},{},{},{}]}`, 0, muster.EINVALID},
		{"an item over its size", `{"items":[{"text":"` + strings.Repeat("x", 200) + `"}]}`, 0, muster.ETOOLARGE},
		{"trailing data", `{"items":[]}{}`, 0, muster.EINVALID},
		{"cut short", `{"items":[{"id":1}`, 0, muster.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := decodeList(tc.body, 3, 100)
			if got := muster.ErrorCode(err); got != tc.code || len(items) != tc.items {
				t.Errorf("%d items, code %q (%v); want %d, %q", len(items), got, err, tc.items, tc.code)
			}
		})
	}
}

// A list's items are found whole however the body arrives, a byte at a
// time included: strings holding brackets, commas and escaped quotes, white
// space anywhere, an item that is not an object (null decodes to nothing;
// a number is refused as encoding/json refuses it).
// A key of an item given twice, or spelled in another case, is refused
// naming the item and the key, whether the item is decoded by encoding/json
// or first offered to a decoder of its own, which leaves it to
// encoding/json.
func TestDecodeListRefusesKeysNotSpelledExactly(t *testing.T) {
	declined := func([]byte, *item) bool { return false }
	for _, fast := range []func([]byte, *item) bool{nil, declined} {
		for body, want := range map[string]string{
			`{"items":[{"id":1},{"id":1,"id":2}]}`:     "items[1].id: given twice",
			`{"items":[{"id":1,"Text":"a"}]}`:          `items[0].Text: no such field; keys are case-sensitive: "text"`,
			`{"items":[{"text":"a","t\u0065xt":"b"}]}`: "items[0].text: given twice",
		} {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			n := 0
			err := jsonhttp.StreamList(httptest.NewRecorder(), r, 1<<20, "items", 10, 1<<10, 1<<10, fast,
				func(items []item) error { n += len(items); return nil })
			if muster.ErrorCode(err) != muster.EINVALID || muster.ErrorMessage(err) != want || n != 0 {
				t.Errorf("%s (a decoder of its own: %v): %d items, %v; want none, invalid: %s", body, fast != nil, n, err, want)
			}
		}
	}
}

func TestDecodeListFindsItemsWhole(t *testing.T) {
	items := []item{{1, `a "quoted" [text], {with} brackets\`}, {2, "line\nbreak"}, {3, ""}, {4, "é 😀"}}
	want := `{"items":[{"id":1,"text":"a \"quoted\" [text], {with} brackets\\"},{"id":2,"text":"line\nbreak"},` +
		`{"id":3},{"text":"\u00e9 \ud83d\ude00","id":4}]}`
	spaced := " { \"items\" :\n[ {\"id\":1,\"text\":\"a \\\"quoted\\\" [text], {with} brackets\\\\\"} ,\t{\"id\":2,\"text\":\"line\\nbreak\"} , " +
		"{\"id\":3}, {\"text\":\"é 😀\",\"id\":4} ] } \n"
	for name, body := range map[string]string{"compact": want, "spaced": spaced} {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(body)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r := httptest.NewRequest(http.MethodPost, "/", src)
			got, err := jsonhttp.DecodeList[item](httptest.NewRecorder(), r, 1<<20, "items", 10, 1<<10)
			if err != nil || !slices.Equal(got, items) {
				t.Errorf("%s (a byte at a time: %v): %+v, %v; want %+v", name, oneByte, got, err, items)
			}
		}
	}
	for body, code := range map[string]string{
		`{"items":[null,{"id":1}]}`:  "",
		`{"items":[1]}`:              muster.EINVALID,
		`{"items":["x"]}`:            muster.EINVALID,
		`{"items":[{"id":1}}]}`:      muster.EINVALID,
		`{"items":[{"id":1},]}`:      muster.EINVALID,
		`{"items":[{"id":1} {}]}`:    muster.EINVALID,
		`{"items":[{"id":"1"}]}`:     muster.EINVALID,
		`{"items":[{"id":1}]`:        muster.EINVALID,
		`{"items":[{"id":1,"text":"`: muster.EINVALID,
		`{"it\u0065ms":[]}`:          "",
		`{"items":nul}`:              muster.EINVALID,
		`{"items":[]} x`:             muster.EINVALID,
		``:                           muster.EINVALID,
	} {
		r := httptest.NewRequest(http.MethodPost, "/", iotest.OneByteReader(strings.NewReader(body)))
		_, err := jsonhttp.DecodeList[item](httptest.NewRecorder(), r, 1<<20, "items", 10, 1<<10)
		if got := muster.ErrorCode(err); got != code {
			t.Errorf("%s: code %q (%v), want %q", body, got, err, code)
		}
	}
}

// DecodeList holds one item's bytes at a time: a body of many items costs
// about what they decode to, where decoding the body whole costs the
// decoder's buffer of the whole body besides, grown by doubling.
func TestDecodeListHoldsOneItemAtATime(t *testing.T) {
	text := strings.Repeat("x", 256<<10)
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range 64 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d,"text":"%s"}`, i, text)
	}
	b.WriteString("]}")
	body := b.String() // 16 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	items, err := jsonhttp.DecodeList[item](httptest.NewRecorder(), r, 32<<20, "items", 100, 1<<20)
	runtime.ReadMemStats(&after)
	if err != nil || len(items) != 64 {
		t.Fatalf("%d items, %v; want 64", len(items), err)
	}
	// Decoded whole (DecodeJSON), the same body allocates 80 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(body))*5/4 {
		t.Errorf("decoding a %d MiB body allocated %d MiB; want at most 5/4 of it", len(body)>>20, alloc>>20)
	}
}
