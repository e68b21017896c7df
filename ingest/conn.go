package ingest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// paho reads each packet's fixed header a byte at a time and writes each
// packet with its own call: on a raw socket that is several syscalls per
// message received and one per acknowledgement, a third of iocd's CPU at
// full load. bufferedConn reads through a 64 KiB buffer and hands writes
// to a flusher goroutine that sends everything queued in one syscall, so
// the burst of PUBACKs after a commit goes out together. Order is kept;
// writes block only when 1 MiB is queued.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	err     error // first write error; later writes return it
	closed  bool
	wake    chan struct{}

	// pahoWrote is when paho last wrote a packet (Unix ns); pings counts
	// the PINGREQs it wrote. See pahoQuiet.
	pahoWrote atomic.Int64
	pings     atomic.Int64
}

const maxQueuedWrite = 1 << 20

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), wake: make(chan struct{}, 1)}
	b.cond = sync.NewCond(&b.mu)
	go b.flusher()
	return b
}

// Read returns the flusher's write error, once there is one, in place of
// whatever ended the read (see flusher).
func (b *bufferedConn) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.mu.Lock()
		if b.err != nil {
			err = b.err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.pending) >= maxQueuedWrite && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.err != nil || b.closed {
		err := b.err
		b.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	b.pahoWrote.Store(time.Now().UnixNano())
	if len(p) == 2 && p[0] == 0xC0 { // PINGREQ
		b.pings.Add(1)
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// puback queues the PUBACK of message id (MQTT 3.1.1: 0x40, length 2,
// the id), written by the flusher like any packet, without paho's
// acknowledgement path (a packet and a closure allocated, a store key
// formatted, and two channel hops through paho's goroutines per message).
// Every packet paho writes is one Write, so a PUBACK never lands inside
// another packet. False when the connection has failed or is closed: the
// acknowledgement is dropped, as paho drops those of a lost connection,
// and the broker redelivers the message. The flusher is woken only when
// the queue was empty, so a burst of acknowledgements after a commit
// costs one wake-up, not one per message.
func (b *bufferedConn) puback(id uint16) bool {
	b.mu.Lock()
	for len(b.pending) >= maxQueuedWrite && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.err != nil || b.closed {
		b.mu.Unlock()
		return false
	}
	wake := len(b.pending) == 0
	b.pending = append(b.pending, 0x40, 2, byte(id>>8), byte(id))
	b.mu.Unlock()
	if wake {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// pahoQuiet reports whether paho has written nothing for d. With every
// PUBACK written by puback, paho would write nothing while traffic flows,
// and its keepalive pings whenever its last write is older than the
// keepalive, then wants the PINGRESP within the ping timeout. Under
// sustained load that PINGREQ queues behind the PUBACKs the broker has
// not read yet: Mosquitto 2.0 reads one packet per connection per pass of
// its event loop, so iocd's acknowledgements back up by megabytes
// (ss, docs/ingest.md, seventh sitting) and the PINGRESP came 10-13 s
// later: a reconnect, and everything unacknowledged redelivered. So
// heldMessage.ack sends one PUBACK through paho whenever paho has been
// quiet for a while, which keeps paho's idea of the last write fresh:
// paho pings only an idle connection, as it did before direct PUBACKs.
func (b *bufferedConn) pahoQuiet(d time.Duration) bool {
	return time.Since(time.Unix(0, b.pahoWrote.Load())) >= d
}

func (b *bufferedConn) flusher() {
	var out []byte
	for range b.wake {
		for {
			b.mu.Lock()
			if len(b.pending) == 0 || b.err != nil {
				closed := b.closed
				b.mu.Unlock()
				if closed {
					return
				}
				break
			}
			out, b.pending = b.pending, out[:0]
			b.cond.Broadcast()
			b.mu.Unlock()
			b.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := b.Conn.Write(out); err != nil {
				b.mu.Lock()
				b.err = err
				b.cond.Broadcast()
				b.mu.Unlock()
				// Wake paho's reader with this error so that it reconnects.
				// Not by closing the socket: paho ignores a read error that
				// says "use of closed network connection" (it takes it for
				// its own Disconnect), and the connection would then be
				// declared lost only by the keepalive, 30 s + 10 s later,
				// its subscription dead meanwhile. Seen after a broker
				// crash (docs/operations.md). paho closes the socket when
				// it handles the error.
				b.Conn.SetReadDeadline(time.Now())
			}
		}
	}
}

// Close sends what is queued (best effort, briefly) and closes.
func (b *bufferedConn) Close() error {
	deadline := time.Now().Add(500 * time.Millisecond)
	b.mu.Lock()
	for len(b.pending) > 0 && b.err == nil && time.Now().Before(deadline) {
		b.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		b.mu.Lock()
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return b.Conn.Close()
}

// openBufferedConnection dials tcp:// or ssl:// brokers for paho and wraps
// the connection; opened, if not nil, is told of each new connection
// before paho reads from it.
func openBufferedConnection(tlsConf *tls.Config, opened func(*bufferedConn)) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		d := &net.Dialer{Timeout: opts.ConnectTimeout}
		var c net.Conn
		var err error
		switch uri.Scheme {
		case "tcp", "mqtt":
			c, err = d.Dial("tcp", uri.Host)
		case "ssl", "tls", "mqtts", "tcps":
			conf := tlsConf
			if conf == nil {
				conf = &tls.Config{}
			}
			c, err = tls.DialWithDialer(d, "tcp", uri.Host, conf)
		default:
			return nil, errors.New("unsupported broker scheme " + uri.Scheme)
		}
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		b := newBufferedConn(c)
		if opened != nil {
			opened(b)
		}
		return b, nil
	}
}
