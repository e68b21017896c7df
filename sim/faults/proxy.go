package faults

import (
	"net"
	"sync"
	"time"
)

// Proxy relays TCP connections from a loopback port to the first target
// that accepts, and can break the path: Cut (connections closed, new ones
// refused), Partition (bytes and new connections held, nothing closed, as
// when packets are dropped), Latency (every chunk delivered d later, in
// order, pipelined). A list of targets makes it the load balancer in front
// of a broker cluster: a connection goes to the first node that answers.
type Proxy struct {
	Addr    string
	targets []string

	mu          sync.Mutex
	ln          net.Listener
	conns       map[net.Conn]struct{}
	latency     time.Duration
	partitioned bool
	healed      chan struct{} // closed when a partition ends
	closed      bool
}

// NewProxy listens on a free loopback port.
func NewProxy(targets ...string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), targets: targets, conns: map[net.Conn]struct{}{}, healed: make(chan struct{})}
	close(p.healed)
	p.serve(ln)
	return p, nil
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
}

// gate returns the channel that is closed when no partition holds
// traffic back, and the current latency.
func (p *Proxy) gate() (<-chan struct{}, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healed, p.latency
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) relay(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	// A partition holds new connections too: the client's SYN went out,
	// nothing came back.
	g, _ := p.gate()
	<-g
	var s net.Conn
	var err error
	for _, t := range p.targets {
		if s, err = net.DialTimeout("tcp", t, 2*time.Second); err == nil {
			break
		}
	}
	if s == nil {
		p.untrack(c)
		return
	}
	if !p.track(s) {
		s.Close()
		p.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(s, c); done <- struct{}{} }()
	go func() { p.pipe(c, s); done <- struct{}{} }()
	<-done
	p.untrack(c)
	p.untrack(s)
	<-done
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst; the reader stamps each chunk, the writer waits
// for the gate and the chunk's due time, so latency does not serialise
// round trips and a partition holds bytes (up to the queue, then TCP
// pushes back on the sender).
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		g, lat := p.gate()
		<-g
		if d := time.Until(ch.at.Add(lat)); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(ch.b); err != nil {
			src.Close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore listens again after Cut.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	if p.ln != nil || p.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

// Partition holds all traffic, both ways, and new connections, until Heal.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.partitioned {
		p.partitioned = true
		p.healed = make(chan struct{})
	}
}

// Heal ends a partition; held bytes flow again (what the endpoints did
// meanwhile, such as closing on a timeout, is theirs).
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.partitioned {
		p.partitioned = false
		close(p.healed)
	}
}

// SetLatency delays every chunk, both ways, by d (0: none).
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Close stops the proxy for good.
func (p *Proxy) Close() {
	p.Heal()
	p.Cut()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}
