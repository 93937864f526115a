package agent

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// output keeps what one step attempt writes (stdout and stderr together)
// within a limit, and hands it out in chunks to be stored as it comes: the
// first half of the limit as it is written, then, when the attempt ends,
// the last half, kept until then in a ring, after a line saying how many
// bytes were dropped in between. Memory stays within the limit whatever
// the step writes, no byte is handed out twice, and every chunk is valid
// UTF-8: a run of invalid bytes becomes one U+FFFD as it is written, and
// what is kept and counted is the text so made, so that what is kept stays
// within the limit however many replacements it takes.
type output struct {
	mu      sync.Mutex
	limit   int
	why     string // what set the limit, for the line about dropped bytes
	head    []byte // written into the head and not yet handed out
	room    int    // what the head may still take
	kept    int    // bytes the head took
	tail    []byte // a ring once full: the oldest byte is at start
	start   int
	total   int64  // bytes of text written
	partial []byte // the first bytes of a character the next write may end
	invalid bool   // the text written so far ends with a U+FFFD of invalid bytes
	clean   []byte // a buffer for the text of a write
}

// newOutput keeps limit bytes of an attempt's output; why names the
// setting behind the limit.
func newOutput(limit int, why string) *output {
	return &output{limit: limit, why: why, room: limit / 2}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keep(o.text(p))
	return len(p), nil
}

// text returns what p, written after what was written before, reads as:
// valid UTF-8, a run of invalid bytes made one U+FFFD, and the first bytes
// of a character at its end held back until the next write ends it (or
// final gives up on it).
func (o *output) text(p []byte) []byte {
	if len(o.partial) == 0 && utf8.Valid(p) {
		if len(p) > 0 {
			o.invalid = false
		}
		return p
	}
	b := p
	if len(o.partial) > 0 {
		b = append(o.partial, p...)
		o.partial = nil
	}
	out := o.clean[:0]
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			out, o.invalid = append(out, c), false
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			if !utf8.FullRune(b[i:]) {
				o.partial = append([]byte(nil), b[i:]...)
				break
			}
			if !o.invalid {
				out, o.invalid = append(out, "\uFFFD"...), true
			}
			i++
			continue
		}
		out, o.invalid = append(out, b[i:i+size]...), false
		i += size
	}
	o.clean = out
	return out
}

// keep keeps text: into the head while it has room, cut between
// characters, then into the ring of the tail.
func (o *output) keep(p []byte) {
	o.total += int64(len(p))
	if k := min(o.room, len(p)); k > 0 {
		if k < len(p) {
			// The head is full: it ends before a character it cannot
			// hold whole.
			for k > 0 && !utf8.RuneStart(p[k]) {
				k--
			}
		}
		o.head = append(o.head, p[:k]...)
		o.room -= k
		o.kept += k
		p = p[k:]
		if len(p) > 0 {
			o.room = 0
		}
	}
	tailCap := o.limit - o.limit/2
	if tailCap == 0 {
		return
	}
	if len(p) >= tailCap {
		// Only the last tailCap bytes of p survive.
		o.tail = append(o.tail[:0], p[len(p)-tailCap:]...)
		o.start = 0
		return
	}
	for len(p) > 0 {
		if len(o.tail) < tailCap {
			k := min(tailCap-len(o.tail), len(p))
			o.tail = append(o.tail, p[:k]...)
			p = p[k:]
			continue
		}
		k := min(tailCap-o.start, len(p))
		copy(o.tail[o.start:], p[:k])
		o.start = (o.start + k) % tailCap
		p = p[k:]
	}
}

// take hands out what the head holds that was not handed out yet, but for
// a character whose last bytes have not been written yet.
func (o *output) take() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	cut := len(o.head) - incompleteSuffix(o.head)
	chunk := strings.ToValidUTF8(string(o.head[:cut]), "\uFFFD")
	o.head = append(o.head[:0], o.head[cut:]...)
	return chunk
}

// final hands out the rest, once the attempt has ended: what is left of
// the head, the line about the bytes dropped, if any, and the tail.
func (o *output) final() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		// A character the step never finished.
		o.partial = nil
		if !o.invalid {
			o.keep([]byte("\uFFFD"))
			o.invalid = true
		}
	}
	tail := append(o.tail[o.start:len(o.tail):len(o.tail)], o.tail[:o.start]...)
	kept := int64(o.kept) + int64(len(tail))
	dropped := o.total - kept
	head := o.head
	o.head, o.tail, o.start = nil, nil, 0
	if dropped <= 0 {
		// Nothing dropped: the tail goes on where the head stopped.
		return strings.ToValidUTF8(string(head)+string(tail), "\uFFFD")
	}
	// The tail begins wherever the ring cut it: skip a character's
	// continuation bytes.
	for i := 0; i < utf8.UTFMax-1 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	return strings.ToValidUTF8(string(head), "\uFFFD") + o.dropNote(dropped) + strings.ToValidUTF8(string(tail), "\uFFFD")
}

// dropNote is the line standing for dropped bytes.
func (o *output) dropNote(dropped int64) string {
	if o.limit < 2 {
		return fmt.Sprintf("[muster: %d bytes of output dropped: %s]\n", dropped, o.why)
	}
	return fmt.Sprintf("\n[muster: %d bytes of output dropped here (%s); the first and last %d bytes are kept]\n", dropped, o.why, o.limit/2)
}

// incompleteSuffix is how many bytes at the end of b begin a UTF-8
// character whose last bytes are missing.
func incompleteSuffix(b []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if c := b[len(b)-i]; utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}
