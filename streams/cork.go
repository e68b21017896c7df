package streams

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkConn lets a connection's writer gather the frames it has ready into
// one write: gorilla/websocket writes each message with its own write
// call, and with thousands of sockets each taking many small device
// updates a second the system calls, not the encoding, were the gateway's
// main cost (a CPU profile under `iocsim ws`: 40 % in syscall.write).
//
// The writer's data frames do not go through gorilla at all: each is
// framed once for every client (wireFrame) and its bytes are appended to
// the batch (frame). gorilla writes the control frames (pings, pongs from
// the reader goroutine, the close) through Write, whole frames under mu,
// so frames never interleave.
type corkConn struct {
	net.Conn
	timeout time.Duration // the write deadline of each flush
	mu      sync.Mutex    // held across the underlying write: writes never interleave
	corked  bool
	buf     *[]byte
}

// wireFrame is payload as one final, unmasked text frame of RFC 6455
// section 5.2, as a server sends it (no compression: the upgrader does
// not offer it).
func wireFrame(payload []byte) []byte {
	n := len(payload)
	b := make([]byte, 0, n+10)
	b = append(b, 0x81) // FIN, opcode 1 (text)
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// frame adds a ready-made frame to the batch; the writer calls it only
// while corked (a frame outside a batch is written at once).
func (c *corkConn) frame(wire []byte) {
	c.Write(wire)
}

// corkBufs holds the batch buffers between batches, so an idle
// connection holds none.
var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// corkLimit is the batch size at which the writer flushes without waiting
// for its queue to empty.
const corkLimit = 64 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork starts a batch: writes are held until flush.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	if c.buf == nil {
		c.buf = corkBufs.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// held is the size of the batch so far.
func (c *corkConn) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return 0
	}
	return len(*c.buf)
}

// flush writes the batch under the write deadline and ends it.
func (c *corkConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil {
		return nil
	}
	var err error
	if len(*c.buf) > 0 {
		if c.timeout > 0 {
			c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		}
		_, err = c.Conn.Write(*c.buf)
	}
	if cap(*c.buf) <= 4*corkLimit { // an outsized snapshot's buffer is left to the GC
		*c.buf = (*c.buf)[:0]
		corkBufs.Put(c.buf)
	}
	c.buf = nil
	return err
}

// corkWriter hands the upgrader a corkConn when it hijacks the request's
// connection.
type corkWriter struct {
	http.ResponseWriter
	timeout time.Duration // the connection's write deadline per flush
	conn    *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc, timeout: w.timeout}
	return w.conn, brw, nil
}

func (w *corkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
