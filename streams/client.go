package streams

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"ioc/api"
)

// frame is one encoded server frame, shared by every client it goes to.
type frame struct {
	wire []byte // the whole websocket frame, header and payload (wireFrame)
	size int
	msgs int   // websocket messages in wire when more than one (a round of single frames)
	seq  int64 // an incident event's seq; 0 for other frames
	// A device or unit update also keeps its object (body), for the
	// groups of clients that take updates in batches (group.go).
	body []byte
	unit bool
}

// client is one websocket connection.
type client struct {
	g      *Gateway
	conn   *websocket.Conn
	cork   *corkConn // conn's network connection
	caller api.Caller
	token  string // the credential, rechecked while the socket lives

	mu   sync.Mutex // guards what follows; never held across I/O
	view *view      // nil until the first subscribe
	// live is false while a snapshot or resume is being made: incident
	// events for the new view wait in pending, and are sent after it
	// (those it already includes are dropped by seq).
	live         bool
	pending      []frame
	pendingBytes int
	// queue holds what is to be written, in order: incident events,
	// control frames and the rounds of device and unit updates of the
	// client's group (group.go).
	queue    []frame
	queued   int   // bytes in queue
	lastSent int64 // the highest incident seq queued
	closing  int   // a close code once the gateway decided to close
	reason   string

	// The writer is a goroutine that runs while there is something to
	// write and ends when there is none, so an idle socket holds no
	// goroutine but its reader. There is at most one (writing).
	writing bool
	pingDue bool // the ping timer fired
	pinger  *time.Timer
	ended   bool // the reader ended: the writer closes the socket
}

func newClient(g *Gateway, conn *websocket.Conn, cork *corkConn, c api.Caller, token string) *client {
	return &client{g: g, conn: conn, cork: cork, caller: c, token: token}
}

// startPings arms the ping timer.
func (c *client) startPings() {
	c.pinger = time.AfterFunc(c.g.cfg.PingInterval, func() {
		c.mu.Lock()
		c.pingDue = true
		c.signal()
		c.mu.Unlock()
	})
}

// end tells the writer that the reader has ended.
func (c *client) end() {
	c.mu.Lock()
	c.ended = true
	c.signal()
	c.mu.Unlock()
}

// signal makes sure a writer looks at the client: it starts one if none
// is running (a running one finds the new work before it ends). Call
// with c.mu held.
func (c *client) signal() {
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// enqueue adds f to the ordered queue; a client whose queue would pass
// the bound is closed as a slow consumer. Call with c.mu held.
func (c *client) enqueue(f frame) {
	if c.closing != 0 {
		return
	}
	if c.queued+f.size > c.g.cfg.QueueBytes {
		c.slow()
		return
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	c.signal()
}

// slow closes a client that fell too far behind. Call with c.mu held.
func (c *client) slow() {
	if c.closing == 0 {
		metricSlowConsumers.Inc()
		c.g.slowCloses.Add(1)
		c.g.cfg.Log.Info("streams: slow consumer closed", "user", c.caller.Name, "queued_bytes", c.queued)
	}
	c.closeLocked(CloseSlowConsumer, "slow_consumer")
}

// closeLocked asks the writer to close the socket. Call with c.mu held.
func (c *client) closeLocked(code int, reason string) {
	if c.closing == 0 {
		c.closing, c.reason = code, reason
		c.signal()
	}
}

func (c *client) close(code int, reason string) {
	c.mu.Lock()
	c.closeLocked(code, reason)
	c.mu.Unlock()
}

// incident offers an incident event to the client.
func (c *client) incident(f frame, k incidentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view == nil || !c.view.incident(k) {
		return
	}
	if !c.live {
		if c.pendingBytes+f.size > c.g.cfg.QueueBytes {
			c.slow()
			return
		}
		c.pending = append(c.pending, f)
		c.pendingBytes += f.size
		return
	}
	if f.seq > c.lastSent {
		c.enqueue(f)
		c.lastSent = f.seq
	}
}

// control queues a frame outside the incident order (heartbeat, status,
// wards, a round of updates) for a live client.
func (c *client) control(f frame, needLayer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view == nil || !c.live || (needLayer != "" && !c.view.has(needLayer)) {
		return
	}
	c.enqueue(f)
}

// goLive ends a snapshot or resume: first what it made, then the events
// that arrived meanwhile and are not already in it.
func (c *client) goLive(first []frame, seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range first {
		c.enqueue(f)
	}
	c.lastSent = seq
	for _, f := range c.pending {
		if f.seq > c.lastSent {
			c.enqueue(f)
			c.lastSent = f.seq
		}
	}
	c.pending, c.pendingBytes, c.live = nil, 0, true
}

// What the writer does next (next).
type action int

const (
	actFrame action = iota // write the frame
	actPing                // write a ping
	actFlush               // nothing more now: write out the batch, then ask again
	actIdle                // nothing at all: the writer ends
	actClose               // write the close frame and close the socket
	actEnd                 // the reader ended: close the socket
)

// next tells the writer what to do: the queue one frame at a time (so
// what is queued is what has not been written, and a client that stops
// reading overflows its queue instead of blocking the writer). held is
// the writer's unflushed batch; the writer ends (writing = false) only
// with nothing held, so a writer started later never shares a batch.
func (c *client) next(held int) (f frame, act action) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ended:
		return frame{}, actEnd
	case c.closing != 0:
		return frame{}, actClose
	case c.pingDue:
		c.pingDue = false
		return frame{}, actPing
	case len(c.queue) > 0:
		f = c.queue[0]
		c.queue[0] = frame{}
		c.queue = c.queue[1:]
		c.queued -= f.size
		return f, actFrame
	case held > 0:
		return frame{}, actFlush
	}
	c.writing = false
	return frame{}, actIdle
}

// write is the connection's writer: it runs until there is nothing to
// write (or the socket ends). What is ready goes out in one write
// (corkConn), flushed early when the batch grows large.
func (c *client) write() {
	cfg := c.g.cfg
	n := 0
	flush := func() bool {
		err := c.cork.flush()
		metricDelivered.Add(float64(n))
		n = 0
		return err == nil
	}
	closeSocket := func() {
		c.pinger.Stop()
		c.conn.Close()
	}
	c.cork.cork()
	for {
		f, act := c.next(c.cork.held())
		switch act {
		case actFrame:
			// The writer is corked here: the frame joins the batch, and
			// the flush writes it under the write deadline.
			c.cork.frame(f.wire)
			n += max(f.msgs, 1)
			if c.cork.held() >= corkLimit {
				if !flush() {
					c.fail()
					closeSocket()
					return
				}
				c.cork.cork()
			}
		case actPing:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.fail()
				closeSocket()
				return
			}
			c.pinger.Reset(cfg.PingInterval)
		case actFlush:
			if !flush() {
				c.fail()
				closeSocket()
				return
			}
			c.cork.cork()
		case actIdle:
			c.cork.flush() // nothing held: only ends the batch
			return
		case actClose:
			flush()
			c.mu.Lock()
			code, reason := c.closing, c.reason
			c.mu.Unlock()
			c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
			c.fail()
			closeSocket()
			return
		case actEnd:
			c.cork.flush()
			closeSocket()
			return
		}
	}
}

// fail marks a writer that ends with the socket: nothing starts another.
func (c *client) fail() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}
