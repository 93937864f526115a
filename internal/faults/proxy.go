package faults

import (
	"net"
	"sync"
)

// Proxy is a TCP proxy on loopback that a test puts between a target and
// its master to cut the target off: Drop closes every connection and
// refuses new ones (a peer that resets), Stall stops forwarding bytes
// while keeping connections open (a black hole: nothing is refused, nothing
// arrives), Heal forwards again. A stalled connection resumes where it
// stopped, as TCP does after a partition shorter than its retry limit.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	mode  mode
	conns map[*pipe]struct{}
	gate  *sync.Cond // broadcast when the mode changes
	wg    sync.WaitGroup
	// Accepted counts connections accepted, refused ones included.
	accepted int
}

type mode int

const (
	forward mode = iota
	drop
	stall
)

// pipe is one proxied connection.
type pipe struct{ client, server net.Conn }

func (p *pipe) close() {
	p.client.Close()
	p.server.Close()
}

// NewProxy listens on 127.0.0.1 and forwards to upstream (host:port).
func NewProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[*pipe]struct{}{}}
	p.gate = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where the proxy listens.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted is how many connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Drop closes every connection and refuses new ones until Heal.
func (p *Proxy) Drop() {
	p.mu.Lock()
	p.dropLocked()
	p.mu.Unlock()
}

func (p *Proxy) dropLocked() {
	p.mode = drop
	for c := range p.conns {
		c.close()
		delete(p.conns, c)
	}
	p.gate.Broadcast()
}

// Stall stops forwarding bytes, in both directions, until Heal. New
// connections are accepted and stall too.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.mode = stall
	p.gate.Broadcast()
	p.mu.Unlock()
}

// Heal forwards again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.mode = forward
	p.gate.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.dropLocked()
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		refuse := p.mode == drop
		p.mu.Unlock()
		if refuse {
			if tc, ok := client.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a dead peer's kernel answers
			}
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		c := &pipe{client: client, server: server}
		p.mu.Lock()
		if p.mode == drop {
			p.mu.Unlock()
			c.close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(c, c.server, c.client)
		go p.copy(c, c.client, c.server)
	}
}

// copy forwards src to dst, a chunk at a time, holding each chunk while
// the proxy stalls.
func (p *Proxy) copy(c *pipe, dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.mode == stall {
				p.gate.Wait()
			}
			dropped := p.mode == drop
			p.mu.Unlock()
			if dropped {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // the end of either side ends the pair
		}
	}
}
