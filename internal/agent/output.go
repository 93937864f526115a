package agent

import (
	"fmt"
	"sync"
)

// output keeps a step's combined stdout and stderr within a limit: the first
// half of the limit as written, and the last half as a ring, with a line in
// between saying how many bytes were dropped. Memory stays bounded whatever
// the step writes.
type output struct {
	mu    sync.Mutex
	limit int
	head  []byte
	tail  []byte // a ring once full: the oldest byte is at start
	start int
	total int64
}

func newOutput(limit int) *output { return &output{limit: limit} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(p)
	o.total += int64(n)
	if room := o.limit/2 - len(o.head); room > 0 {
		k := min(room, len(p))
		o.head = append(o.head, p[:k]...)
		p = p[k:]
	}
	tailCap := o.limit - o.limit/2
	if len(p) >= tailCap {
		// Only the last tailCap bytes of p survive.
		o.tail = append(o.tail[:0], p[len(p)-tailCap:]...)
		o.start = 0
		return n, nil
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
	return n, nil
}

// String returns the kept output.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := string(o.head)
	if dropped := o.total - int64(len(o.head)) - int64(len(o.tail)); dropped > 0 {
		s += fmt.Sprintf("\n[muster: %d bytes of output dropped here; the first and last %d bytes are kept]\n", dropped, o.limit/2)
	}
	return s + string(o.tail[o.start:]) + string(o.tail[:o.start])
}

// written returns how many bytes have been written in all.
func (o *output) written() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}
