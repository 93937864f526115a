package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

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
	return muster.Errorf(muster.EINVALID, "the request body is not valid: %v", err)
}

// DecodeList decodes a request body of the form {"<field>": [item, ...]} a
// list item at a time, so that the decoder holds one item's bytes at a
// time rather than the whole body's, and returns the items. The body is
// bounded by limit as Body bounds it; the list holds at most maxItems
// items, each at most maxItem bytes as sent. A body with no field, or null
// for it, is an empty list.
func DecodeList[T any](w http.ResponseWriter, r *http.Request, limit int64, field string, maxItems int, maxItem int64) ([]T, error) {
	var all []T
	err := StreamList(w, r, limit, field, maxItems, maxItem, limit, func(items []T) error {
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
func StreamList[T any](w http.ResponseWriter, r *http.Request, limit int64, field string, maxItems int, maxItem, batch int64, flush func([]T) error) error {
	body := NewBody(w, r, limit)
	in := &itemReader{r: body, max: maxItem}
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	var items []T
	count, since := 0, int64(0)
	fail := func(err error) error {
		if errors.Is(err, errItemTooLarge) {
			return muster.Errorf(muster.ETOOLARGE, "%s[%d]: at most %d bytes as sent", field, count, maxItem)
		}
		return body.Err(err)
	}
	if err := expectDelim(dec, '{'); err != nil {
		return fail(err)
	}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		switch key, _ := tok.(string); {
		case key != field:
			return muster.Errorf(muster.EINVALID, "the request body is not valid: json: unknown field %q", key)
		case seen:
			return muster.Errorf(muster.EINVALID, "%s: given twice", field)
		}
		seen = true
		tok, err = dec.Token()
		if err != nil {
			return fail(err)
		}
		if tok == nil {
			continue // null
		}
		if tok != json.Delim('[') {
			return muster.Errorf(muster.EINVALID, "%s: a list is required", field)
		}
		for dec.More() {
			if count == maxItems {
				return muster.Errorf(muster.EINVALID, "%s: at most %d in one request", field, maxItems)
			}
			in.start = dec.InputOffset()
			var item T
			if err := dec.Decode(&item); err != nil {
				return fail(err)
			}
			items = append(items, item)
			count++
			since += dec.InputOffset() - in.start
			in.start = dec.InputOffset()
			if since >= batch {
				if err := flush(items); err != nil {
					return err
				}
				clear(items) // what flush was given is garbage now
				items, since = items[:0], 0
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fail(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
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

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%v where %v belongs", tok, d)
	}
	return nil
}

// errItemTooLarge ends a list whose item is over its size.
var errItemTooLarge = errors.New("list item too large")

// itemReader lets a decoder read at most max bytes past the start of the
// list item it decodes: the decoder buffers a whole item before it decodes
// it, and would otherwise buffer one as large as the body.
type itemReader struct {
	r     io.Reader
	max   int64
	start int64 // the offset the current item starts at, or after
	read  int64
}

func (ir *itemReader) Read(p []byte) (int, error) {
	room := ir.start + ir.max - ir.read
	if room <= 0 {
		return 0, errItemTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := ir.r.Read(p)
	ir.read += int64(n)
	return n, err
}
