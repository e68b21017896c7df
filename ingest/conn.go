package ingest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
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

	// onPublish, when set, takes every PUBLISH packet read from the
	// connection, parsed here (readPacket); paho reads only the other
	// packets (CONNACK, SUBACK, PINGRESP, ...), from pass. Only paho's
	// reader goroutine calls Read, so these need no lock.
	onPublish func(*inMessage)
	pass      []byte

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	err     error // first write error; later writes return it
	closed  bool
	wake    chan struct{}
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
	if b.onPublish == nil {
		n, err := b.r.Read(p)
		if err != nil {
			err = b.readErr(err)
		}
		return n, err
	}
	for len(b.pass) == 0 {
		if err := b.readPacket(); err != nil {
			return 0, b.readErr(err)
		}
	}
	n := copy(p, b.pass)
	b.pass = b.pass[n:]
	return n, nil
}

func (b *bufferedConn) readErr(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	return err
}

// readPacket reads one MQTT 3.1.1 packet: a PUBLISH goes to onPublish,
// anything else to pass, for paho. Taking PUBLISH packets here spares
// each message paho's read path: a fixed header read a byte at a time, a
// packet struct, a store key formatted, two channel hops through paho's
// goroutines and its router, about a fifth of iocd's CPU at full load
// (docs/ingest.md, sixth sitting). onPublish runs on the reading
// goroutine, so messages keep the connection's order and, when it
// blocks, nothing more is read: TCP pushes back on the broker as before.
func (b *bufferedConn) readPacket() error {
	h, err := b.r.ReadByte()
	if err != nil {
		return err
	}
	var lenBytes [4]byte
	n, size := 0, 0
	for shift := 0; ; shift += 7 {
		if n == 4 {
			return errors.New("mqtt: malformed remaining length")
		}
		c, err := b.r.ReadByte()
		if err != nil {
			return err
		}
		lenBytes[n] = c
		n++
		size |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if h>>4 != 3 { // not PUBLISH: paho's
		pkt := make([]byte, 1+n+size)
		pkt[0] = h
		copy(pkt[1:], lenBytes[:n])
		if _, err := io.ReadFull(b.r, pkt[1+n:]); err != nil {
			return err
		}
		b.pass = pkt
		return nil
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(b.r, body); err != nil {
		return err
	}
	m, err := parsePublish(h, body)
	if err != nil {
		return err
	}
	m.conn = b
	b.onPublish(m)
	return nil
}

// inMessage is a PUBLISH read by bufferedConn, as the mqtt.Message the
// subscriber takes from paho otherwise.
type inMessage struct {
	topic         string
	payload       []byte
	id            uint16
	qos           byte
	dup, retained bool
	conn          *bufferedConn
}

func (m *inMessage) Duplicate() bool   { return m.dup }
func (m *inMessage) Qos() byte         { return m.qos }
func (m *inMessage) Retained() bool    { return m.retained }
func (m *inMessage) Topic() string     { return m.topic }
func (m *inMessage) MessageID() uint16 { return m.id }
func (m *inMessage) Payload() []byte   { return m.payload }

// Ack sends the PUBACK of a QoS 1 message on its own connection
// (bufferedConn.puback); QoS 0 needs none. The subscriber never asks for
// QoS 2.
func (m *inMessage) Ack() {
	if m.qos == 1 {
		m.conn.puback(m.id)
	}
}

// parsePublish reads a PUBLISH packet's flags (h) and body: topic length
// and topic, the packet id when QoS > 0, then the payload, which keeps
// body's bytes.
func parsePublish(h byte, body []byte) (*inMessage, error) {
	m := &inMessage{qos: (h >> 1) & 3, dup: h&0x08 != 0, retained: h&0x01 != 0}
	if m.qos == 3 {
		return nil, errors.New("mqtt: PUBLISH with QoS 3")
	}
	if len(body) < 2 {
		return nil, errors.New("mqtt: PUBLISH without a topic")
	}
	tl := int(body[0])<<8 | int(body[1])
	rest := body[2:]
	if tl > len(rest) {
		return nil, fmt.Errorf("mqtt: PUBLISH topic of %d bytes in a body of %d", tl, len(body))
	}
	m.topic, rest = string(rest[:tl]), rest[tl:]
	if m.qos > 0 {
		if len(rest) < 2 {
			return nil, errors.New("mqtt: PUBLISH without a packet id")
		}
		m.id, rest = uint16(rest[0])<<8|uint16(rest[1]), rest[2:]
	}
	m.payload = rest
	return m, nil
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
// the connection; onPublish, if not nil, takes the PUBLISH packets of
// every connection (bufferedConn.readPacket).
func openBufferedConnection(tlsConf *tls.Config, onPublish func(*inMessage)) mqtt.OpenConnectionFunc {
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
		b.onPublish = onPublish
		return b, nil
	}
}
