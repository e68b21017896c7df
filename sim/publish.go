package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrDrainTimeout marks publishes still unacknowledged when the run gave up
// waiting for them.
var ErrDrainTimeout = errors.New("not acknowledged before the drain timeout")

// publisher is one MQTT connection with a bounded window of QoS 1
// publishes in flight: one goroutine publishes, another waits for the
// acknowledgements in order and frees window slots. Waiting for each
// publish in turn would cap a connection at one message per round trip.
type publisher struct {
	client  mqtt.Client
	pubacks *PubAcks // what the broker really acknowledged (see PubAcks)
	in      chan Message
	window  chan struct{}
	acks    chan inflight
	stats   *stats
	obs     func(Message)
}

type inflight struct {
	tok  mqtt.Token
	sent Sent
	msg  Message
}

// NewMQTTOptions are the client options iocsim and its load tool use: a
// clean session (a simulator has nothing to resume), automatic reconnects,
// and for plain TCP a read buffer (see bufferedConn).
func NewMQTTOptions(broker, clientID string) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	if u, err := url.Parse(broker); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		o.SetCustomOpenConnectionFn(dialBuffered)
	}
	return o.
		AddBroker(broker).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(false)
}

// Connect connects a paho client and waits for the outcome.
func Connect(ctx context.Context, opts *mqtt.ClientOptions) (mqtt.Client, error) {
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", opts.Servers[0].Redacted(), err)
	}
	return c, nil
}

func newPublisher(ctx context.Context, cfg *Config, i int, st *stats) (*publisher, error) {
	opts := NewMQTTOptions(cfg.Broker, fmt.Sprintf("%s-%d", cfg.ClientID, i))
	pa := WithPubAcks(opts)
	c, err := Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &publisher{
		client:  c,
		pubacks: pa,
		in:      make(chan Message, 64),
		window:  make(chan struct{}, cfg.Window),
		acks:    make(chan inflight, cfg.Window),
		stats:   st,
		obs:     cfg.Observe,
	}, nil
}

// publish sends until in is closed, or ctx ends (then what is still queued
// is dropped unsent).
func (p *publisher) publish(ctx context.Context) {
	defer close(p.acks)
	for m := range p.in {
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return
		}
		tok := p.client.Publish(m.Topic, 1, false, m.Payload)
		p.stats.sent(&m)
		p.acks <- inflight{tok: tok, sent: p.pubacks.Sent(tok), msg: m}
	}
}

// acknowledge counts acknowledgements in order until publish is done; once
// drain is closed it waits for each at most until the drain deadline. A
// message counts as acknowledged when the broker's PUBACK for it arrived,
// not when its token completed: after a reconnect paho completes the
// tokens of what it resends before the broker has answered (PubAcks).
func (p *publisher) acknowledge(drain <-chan struct{}, timeout time.Duration) {
	var (
		deadline <-chan time.Time
		expired  bool
	)
	// wait waits for done, bounded by the drain deadline once draining.
	wait := func(done <-chan struct{}) bool {
		select {
		case <-done:
			return true
		case <-drain:
		}
		if deadline == nil {
			deadline = time.After(timeout)
		}
		if expired {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		select {
		case <-done:
			return true
		case <-deadline:
			expired = true
			return false
		}
	}
	for f := range p.acks {
		err := ErrDrainTimeout
		if wait(f.tok.Done()) {
			err = f.tok.Error()
		}
		if err == nil && !p.pubacks.Acked(f.sent) {
			// Completed by a resend: wait for the resent message's PUBACK.
			if !wait(p.pubacks.Done(f.sent)) {
				err = ErrDrainTimeout
			}
		}
		p.stats.done(&f.msg, err)
		if err == nil && p.obs != nil {
			p.obs(f.msg)
		}
		<-p.window
	}
}

// pool is the set of connections; a device always uses the same one, so its
// messages stay in order.
type pool struct {
	pubs []*publisher
}

func (p *pool) route(device string) *publisher {
	if len(p.pubs) == 1 {
		return p.pubs[0]
	}
	h := fnv.New32a()
	h.Write([]byte(device))
	return p.pubs[h.Sum32()%uint32(len(p.pubs))]
}

// run starts the goroutines of every connection; the returned function
// closes the inputs, waits for acknowledgements (bounded by timeout) and
// disconnects.
func (p *pool) run(ctx context.Context, timeout time.Duration) (stop func()) {
	drain := make(chan struct{})
	var wg sync.WaitGroup
	for _, pub := range p.pubs {
		wg.Add(2)
		go func() { defer wg.Done(); pub.publish(ctx) }()
		go func() { defer wg.Done(); pub.acknowledge(drain, timeout) }()
	}
	return func() {
		for _, pub := range p.pubs {
			close(pub.in)
		}
		close(drain)
		wg.Wait()
		for _, pub := range p.pubs {
			pub.client.Disconnect(250)
		}
	}
}

// bufferedConn puts buffers under paho. Its packet reader reads the fixed
// header a byte at a time, which on a bare socket is three or four system
// calls per acknowledgement; and it writes every packet with its own
// system call. Those calls were most of the load generator's CPU, which
// competes with the broker for the same cores. Reads go through a
// bufio.Reader; writes are coalesced: Write appends to a buffer and wakes
// one flusher goroutine, so a burst of packets leaves in one call while a
// lone packet leaves at once.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	buf     []byte
	err     error         // the flusher's last error, returned by the next Write
	wake    chan struct{} // capacity 1: wake-ups merge
	closed  chan struct{}
	closeMu sync.Once
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *bufferedConn) flush() {
	var out []byte
	for {
		select {
		case <-c.wake:
		case <-c.closed:
			return
		}
		c.mu.Lock()
		out, c.buf = c.buf, out[:0]
		c.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := c.Conn.Write(out); err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
	}
}

func (c *bufferedConn) Close() error {
	c.closeMu.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func dialBuffered(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c := &bufferedConn{Conn: nc, r: bufio.NewReaderSize(nc, 32<<10),
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.flush()
	return c, nil
}
