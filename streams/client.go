package streams

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"ioc/api"
)

// frame is one encoded server frame, shared by every client it goes to.
type frame struct {
	pm   *websocket.PreparedMessage
	size int
	seq  int64 // an incident event's seq; 0 for other frames
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
	queue        []frame // incident events and control frames, in order
	queued       int     // bytes in queue
	// latest holds device and unit updates, latest per id; sent at most
	// every Config.UpdateInterval.
	latest    map[string]frame
	lastFlush time.Time
	flushing  []frame // the updates of the round being written
	lastSent  int64   // the highest incident seq queued
	closing   int     // a close code once the gateway decided to close
	reason    string

	wake chan struct{} // capacity 1: writes merge
	done chan struct{} // closed when the reader ends
}

func newClient(g *Gateway, conn *websocket.Conn, cork *corkConn, c api.Caller, token string) *client {
	return &client{g: g, conn: conn, cork: cork, caller: c, token: token, latest: map[string]frame{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
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

// update offers a device or unit update; the newest per id wins.
func (c *client) update(key, layer string, f frame, ward string, lon, lat float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view == nil || !c.live || !c.view.has(layer) || !c.view.place(ward, lon, lat) {
		return
	}
	if _, ok := c.latest[key]; ok {
		metricCoalesced.Inc()
	}
	c.latest[key] = f
	c.signal()
}

// control queues a frame outside the incident order (heartbeat, status,
// wards) for a live client.
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

// nextFrame takes the next frame to write: the ordered queue first, one
// frame at a time (so what is queued is what has not been written, and a
// client that stops reading overflows its queue instead of blocking the
// writer), then the coalesced updates once their interval has passed
// (arming *flush otherwise). closing: the gateway decided to close.
func (c *client) nextFrame(flush *<-chan time.Time) (f frame, ok, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing != 0 {
		return frame{}, false, true
	}
	if len(c.queue) > 0 {
		f = c.queue[0]
		c.queue[0] = frame{}
		c.queue = c.queue[1:]
		c.queued -= f.size
		return f, true, false
	}
	if len(c.latest) == 0 {
		return frame{}, false, false
	}
	interval := c.g.cfg.UpdateInterval
	if c.flushing == nil {
		if wait := interval - time.Since(c.lastFlush); wait > 0 {
			if *flush == nil {
				*flush = time.After(wait)
			}
			return frame{}, false, false
		}
		// Take this round's updates; newer ones arriving meanwhile wait
		// for the next round.
		c.flushing = make([]frame, 0, len(c.latest))
		for k, f := range c.latest {
			c.flushing = append(c.flushing, f)
			delete(c.latest, k)
		}
		c.lastFlush = time.Now()
	}
	f = c.flushing[0]
	if c.flushing = c.flushing[1:]; len(c.flushing) == 0 {
		c.flushing = nil
	}
	return f, true, false
}

// write runs the connection's only writer until the socket ends.
func (c *client) write() {
	cfg := c.g.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	defer c.conn.Close()
	var flush <-chan time.Time
	deadline := func() { c.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout)) }
	for {
		select {
		case <-c.wake:
		case <-flush:
			flush = nil
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				return
			}
			continue
		case <-c.done:
			return
		}
		// What is ready goes out in one write (corkConn), flushed early
		// when the batch grows large.
		c.cork.cork()
		n := 0
		for {
			f, ok, closing := c.nextFrame(&flush)
			if closing {
				c.cork.flush()
				c.mu.Lock()
				code, reason := c.closing, c.reason
				c.mu.Unlock()
				msg := websocket.FormatCloseMessage(code, reason)
				c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
				return
			}
			if !ok {
				break
			}
			deadline()
			if err := c.conn.WritePreparedMessage(f.pm); err != nil {
				return
			}
			n++
			if c.cork.held() >= corkLimit {
				if c.cork.flush() != nil {
					return
				}
				c.cork.cork()
			}
		}
		if c.cork.flush() != nil {
			return
		}
		metricDelivered.Add(float64(n))
	}
}
