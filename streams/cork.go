package streams

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// corkConn lets a connection's writer gather the frames it has ready into
// one write: gorilla/websocket writes each message with its own write
// call, and with thousands of sockets each taking many small device
// updates a second the system calls, not the encoding, were the gateway's
// main cost (a CPU profile under `iocsim ws`: 40 % in syscall.write).
// gorilla still frames every message and serialises its own writers
// (control frames from the reader goroutine included); corkConn only
// holds the bytes of the writer's batch until flush.
type corkConn struct {
	net.Conn
	mu     sync.Mutex // held across the underlying write: writes never interleave
	corked bool
	buf    *[]byte
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

// flush writes the batch (under the write deadline gorilla set for its
// last frame) and ends it.
func (c *corkConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil {
		return nil
	}
	var err error
	if len(*c.buf) > 0 {
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
	conn *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: nc}
	return w.conn, brw, nil
}

func (w *corkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
