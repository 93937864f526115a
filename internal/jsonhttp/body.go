package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"

	"github.com/musterhq/muster"
)

// MaxDepth bounds how deeply a request body may nest objects and arrays.
// Every request type nests a few levels; the decoder's own bound (10,000)
// would let a small body cost a deep recursion.
const MaxDepth = 32

// ValueCost is what each object and array in a request body counts against
// the body's limit, besides its bytes. Each decodes to a struct or a slice
// of structs of about this size however few bytes it takes on the wire ({}
// is two), so with it a body decodes to about its limit at most, where
// without it a body of empty objects would decode to fifty times its size.
const ValueCost = 128

// Body is a request body read as JSON within a limit: at most limit bytes,
// each object and array counting ValueCost more, nested at most MaxDepth
// deep. It is what DecodeJSON reads; a handler that decodes a large body a
// piece at a time reads it too, and turns what the decoder returns into
// the reply with Err.
type Body struct {
	r     *http.Request
	limit int64
	src   io.Reader
	used  int64 // bytes read, plus ValueCost for each object and array
	depth int
	str   bool // inside a string
	esc   bool // after a backslash inside a string
	err   error
}

// errTooDeep and errOverLimit end a body that breaks its bounds.
var (
	errTooDeep   = errors.New("too deep")
	errOverLimit = errors.New("over the limit")
)

// NewBody returns r's body, bounded by limit.
func NewBody(w http.ResponseWriter, r *http.Request, limit int64) *Body {
	return &Body{r: r, limit: limit, src: http.MaxBytesReader(w, r.Body, limit)}
}

// Read reads the body, failing once it breaks a bound.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	b.scan(p[:n])
	if b.err != nil {
		return 0, b.err
	}
	return n, err
}

// scan follows the structure of p, which comes after what was scanned
// before: strings are skipped a run at a time, and each object and array
// opened is counted and nested.
func (b *Body) scan(p []byte) {
	b.used += int64(len(p))
	for i := 0; i < len(p); i++ {
		if b.str {
			if b.esc {
				b.esc = false
				continue
			}
			j := bytes.IndexAny(p[i:], `"\`)
			if j < 0 {
				break
			}
			i += j
			if p[i] == '\\' {
				b.esc = true
			} else {
				b.str = false
			}
			continue
		}
		switch p[i] {
		case '"':
			b.str = true
		case '{', '[':
			b.used += ValueCost
			if b.depth++; b.depth > MaxDepth {
				b.err = errTooDeep
				return
			}
		case '}', ']':
			b.depth--
		}
	}
	if b.used > b.limit {
		b.err = errOverLimit
	}
}

// Cost is what body, a JSON request body, counts against its limit (see
// Body): its bytes, and ValueCost for each object and array.
func Cost(body []byte) int64 {
	b := Body{limit: math.MaxInt64}
	b.scan(body)
	return b.used
}

// CheckContentType refuses a request whose body is declared as something
// else than JSON: application/json, or a type ending in +json, in UTF-8 if
// it names a charset. A body without a Content-Type is read as JSON. A
// browser sends a form or text/plain body across sites without asking
// first; what was not meant for a JSON API is not read as JSON.
func CheckContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" || ct == "application/json" { // what muster's clients send, without parsing
		return nil
	}
	typ, params, err := mime.ParseMediaType(ct)
	if err == nil && (typ == "application/json" || strings.HasPrefix(typ, "application/") && strings.HasSuffix(typ, "+json")) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return muster.Errorf(muster.EINVALID, "Content-Type: the request body must be JSON (application/json, in UTF-8), not %q", ct)
}

// Err returns the error to answer with for err, met while decoding the
// body: too large, nested too deep, too slow to arrive, canceled, or not
// valid JSON of the expected shape.
func (b *Body) Err(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return muster.Errorf(muster.ETOOLARGE, "the request body is over its limit of %d bytes", b.limit)
	case errors.Is(err, errOverLimit):
		return muster.Errorf(muster.ETOOLARGE, "the request body is over its limit of %d bytes (each JSON object or array counts %d bytes more)", b.limit, ValueCost)
	case errors.Is(err, errTooDeep):
		return muster.Errorf(muster.EINVALID, "the request body nests objects and arrays more than %d deep", MaxDepth)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return muster.Wrap(muster.ETIMEOUT, err, "the request body did not arrive in time")
	case b.r.Context().Err() != nil:
		return muster.Wrap(muster.ECANCELED, b.r.Context().Err(), "the request was canceled")
	case errors.Is(err, context.Canceled):
		return muster.Wrap(muster.ECANCELED, err, "the request was canceled")
	}
	return DecodeFailure(err)
}

// DecodeList decodes a request body of the form {"<field>": [item, ...]} a
// list item at a time, so that the decoder holds one item's bytes at a
// time rather than the whole body's, and returns the items. The body is
// bounded by limit as Body bounds it; the list holds at most maxItems
// items, each at most maxItem bytes as sent. A body with no field, or null
// for it, is an empty list.
func DecodeList[T any](w http.ResponseWriter, r *http.Request, limit int64, field string, maxItems int, maxItem int64) ([]T, error) {
	var all []T
	err := StreamList(w, r, limit, field, maxItems, maxItem, limit, nil, func(items []T) error {
		all = append(all, items...)
		return nil
	})
	return all, err
}

// StreamList decodes a body as DecodeList does, and hands the items to
// flush as they are decoded, in batches of about batch bytes as sent (an
// item larger than batch in a batch of its own), so that a handler can
// write them and let them go before the rest arrive. An error flush
// returns ends the decoding and is returned; items already flushed stay
// flushed when a later part of the body turns out not to be valid.
//
// fast, when not nil, decodes an item first (see Lexer); an item it does
// not take (it returns false) is decoded by encoding/json, once its keys
// are checked (CheckKeys). fast must not take a key given twice or spelled
// otherwise than its field.
func StreamList[T any](w http.ResponseWriter, r *http.Request, limit int64, field string, maxItems int, maxItem, batch int64,
	fast func(data []byte, item *T) bool, flush func([]T) error) error {
	if err := CheckContentType(r); err != nil {
		return err
	}
	body := NewBody(w, r, limit)
	in := &listReader{src: body, max: maxItem, first: firstRead(r.ContentLength)}
	var items []T
	count, since := 0, int64(0)
	fail := func(err error) error {
		if errors.Is(err, errItemTooLarge) {
			return muster.Errorf(muster.ETOOLARGE, "%s[%d]: at most %d bytes as sent", field, count, maxItem)
		}
		return body.Err(err)
	}
	// The items are decoded one at a time from the body's bytes, each
	// found whole first: encoding/json's Decoder would scan each twice.
	slow := newItemDecoder()
	itemType := reflect.TypeFor[T]()
	if err := in.expect('{'); err != nil {
		return fail(err)
	}
	seen := false
	for next := byte('{'); ; {
		c, err := in.peek()
		if err != nil {
			return fail(err)
		}
		if c == '}' {
			in.pos++
			break
		}
		if next == ',' {
			if err := in.expect(','); err != nil {
				return fail(err)
			}
		}
		next = ','
		key, err := in.key()
		if err != nil {
			return fail(err)
		}
		switch {
		case key != field:
			return muster.Errorf(muster.EINVALID, "the request body is not valid: json: unknown field %q", key)
		case seen:
			return muster.Errorf(muster.EINVALID, "%s: given twice", field)
		}
		seen = true
		if err := in.expect(':'); err != nil {
			return fail(err)
		}
		if c, err = in.peek(); err != nil {
			return fail(err)
		}
		if c != '[' {
			v, err := in.value()
			if err != nil {
				return fail(err)
			}
			if string(v) != "null" {
				return muster.Errorf(muster.EINVALID, "%s: a list is required", field)
			}
			continue
		}
		in.pos++
		for first := true; ; first = false {
			if c, err = in.peek(); err != nil {
				return fail(err)
			}
			if c == ']' {
				in.pos++
				break
			}
			if !first {
				if err := in.expect(','); err != nil {
					return fail(err)
				}
			}
			if count == maxItems {
				return muster.Errorf(muster.EINVALID, "%s: at most %d in one request", field, maxItems)
			}
			data, err := in.value()
			if err != nil {
				return fail(err)
			}
			var item T
			if fast == nil || !fast(data, &item) {
				var zero T
				item = zero
				// fast takes only keys spelled exactly, each once.
				if err := checkKeys(data, itemType, field, count, false); err != nil {
					return err
				}
				if err := slow.decode(data, &item); err != nil {
					return fail(err)
				}
			}
			items = append(items, item)
			count++
			since += int64(len(data))
			if since >= batch {
				if err := flush(items); err != nil {
					return err
				}
				clear(items) // what flush was given is garbage now
				items, since = items[:0], 0
			}
		}
	}
	if _, err := in.peek(); err != io.EOF {
		if err == nil {
			return muster.Errorf(muster.EINVALID, "the request body holds more than one JSON value")
		}
		return fail(err)
	}
	if len(items) > 0 {
		return flush(items)
	}
	return nil
}

// itemDecoder decodes list items with encoding/json, one Decoder for all:
// each item's bytes are fed to it in turn, followed by a space that ends
// a number. Its buffer, grown to the largest item, is kept.
type itemDecoder struct {
	feed *itemFeed
	dec  *json.Decoder
}

func newItemDecoder() *itemDecoder {
	f := &itemFeed{}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	return &itemDecoder{feed: f, dec: dec}
}

// decode decodes data, one JSON value, into v.
func (d *itemDecoder) decode(data []byte, v any) error {
	d.feed.data, d.feed.space = data, true
	if err := d.dec.Decode(v); err != nil {
		return err
	}
	if len(d.feed.data) > 0 || d.dec.More() {
		return errors.New("json: a list item holds more than one value")
	}
	return nil
}

// itemFeed is what an itemDecoder reads: an item, then a space, then the
// end of the input until the next item.
type itemFeed struct {
	data  []byte
	space bool
}

func (f *itemFeed) Read(p []byte) (int, error) {
	n := copy(p, f.data)
	f.data = f.data[n:]
	if n < len(p) && len(f.data) == 0 && f.space {
		p[n] = ' '
		n++
		f.space = false
	}
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	return n, nil
}

// listReader reads a JSON body a token at a time, and a list item whole.
type listReader struct {
	src   io.Reader
	max   int64 // bytes an item may take
	first int   // the size of the first buffer
	buf   []byte
	pos   int // the next byte of buf to read
	err   error
}

// minRead is the least a read asks of the body, once past the first
// buffer.
const minRead = 32 << 10

// firstRead is the size of a body's first buffer: the body whole when its
// length is known and smaller than minRead, or 4 KiB. Ten thousand targets
// uploading a run each at once (a fan-out's first uploads) then hold about
// their bodies' size each, not minRead.
func firstRead(length int64) int {
	if length >= 0 && length < minRead {
		return int(length) + 1 // + 1: the read that finds the end
	}
	return 4 << 10
}

// more reads more of the body, dropping buf[:keep] first; it returns how
// far what was kept moved back.
func (l *listReader) more(keep int) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n := copy(l.buf, l.buf[keep:])
	l.buf = l.buf[:n]
	l.pos -= keep
	switch free := cap(l.buf) - len(l.buf); {
	case l.buf == nil:
		l.buf = make([]byte, 0, max(l.first, 1))
	case free == 0, cap(l.buf) >= minRead && free < minRead:
		// A first buffer smaller than minRead grows only once full: the
		// read that finds the end of a body it holds whole needs no more.
		grown := make([]byte, len(l.buf), max(2*cap(l.buf), len(l.buf)+minRead))
		copy(grown, l.buf)
		l.buf = grown
	}
	for {
		m, err := l.src.Read(l.buf[len(l.buf):cap(l.buf)])
		l.buf = l.buf[:len(l.buf)+m]
		if err != nil {
			l.err = err
		}
		if m > 0 || err != nil {
			if m > 0 {
				return keep, nil
			}
			return keep, err
		}
	}
}

// peek returns the next byte that is not white space, reading more as
// needed; io.EOF at the end of the body.
func (l *listReader) peek() (byte, error) {
	for {
		for l.pos < len(l.buf) {
			switch c := l.buf[l.pos]; c {
			case ' ', '\t', '\n', '\r':
				l.pos++
			default:
				return c, nil
			}
		}
		if _, err := l.more(l.pos); err != nil {
			return 0, err
		}
	}
}

// expect reads the byte c, after white space.
func (l *listReader) expect(c byte) error {
	got, err := l.peek()
	switch {
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case err != nil:
		return err
	case got != c:
		return fmt.Errorf("invalid character %q where %q belongs", got, c)
	}
	l.pos++
	return nil
}

// key reads an object's key.
func (l *listReader) key() (string, error) {
	if c, err := l.peek(); err != nil || c != '"' {
		return "", l.expect('"')
	}
	v, err := l.value()
	if err != nil {
		return "", err
	}
	var key string
	err = json.Unmarshal(v, &key)
	return key, err
}

// value reads one JSON value whole, after white space, and returns its
// bytes, which hold until the next read. It finds where the value ends
// (strings, and objects and arrays closed as deep as they were opened);
// whether what it holds is valid is the decoder's to say.
func (l *listReader) value() ([]byte, error) {
	if _, err := l.peek(); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	start, i := l.pos, l.pos
	depth, str := 0, false
	for {
		for ; i < len(l.buf); i++ {
			c := l.buf[i]
			if str {
				q := closingQuote(l.buf, i)
				if q < 0 {
					i = len(l.buf) - 1
					continue
				}
				i, str = q, false
				if depth == 0 {
					return l.took(start, i+1)
				}
				continue
			}
			switch c {
			case '"':
				str = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 {
					return l.took(start, i)
				}
				if depth--; depth == 0 {
					return l.took(start, i+1)
				}
			case ',', ' ', '\t', '\n', '\r':
				if depth == 0 {
					return l.took(start, i)
				}
			}
		}
		if int64(i-start) > l.max {
			return nil, errItemTooLarge
		}
		moved, err := l.more(start)
		start, i = start-moved, i-moved
		if err == io.EOF {
			if depth == 0 && !str && i > start {
				return l.took(start, i) // a number or literal last in the body
			}
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
	}
}

// took ends a value at end.
func (l *listReader) took(start, end int) ([]byte, error) {
	if int64(end-start) > l.max {
		return nil, errItemTooLarge
	}
	l.pos = end
	return l.buf[start:end], nil
}

// errItemTooLarge ends a list whose item is over its size.
var errItemTooLarge = errors.New("list item too large")

// closingQuote returns where the string open before p[i] ends: its first
// quote from i on after an even number of backslashes (one after an odd
// number is escaped); -1 when p holds none.
func closingQuote(p []byte, i int) int {
	for {
		j := bytes.IndexByte(p[i:], '"')
		if j < 0 {
			return -1
		}
		i += j
		k := i
		for p[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i
		}
		i++
	}
}
