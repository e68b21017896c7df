package ingest

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Emergency signals reach iocd twice: on the emergency connection (its
// own subscription to <prefix>/emergency/#, see Subscriber) and on the
// telemetry connection, whose <prefix>/# filter covers them too (MQTT
// cannot subscribe to "everything but"). The emergency copy is the fast
// one; the telemetry copy is the safety net. twins keeps the second copy
// from costing a second write:
//
//   - when the emergency copy commits (stored or rejected), its digest
//     (sha256 of topic and payload) is remembered for twinKeep;
//   - a telemetry copy whose digest is remembered is acknowledged at once:
//     the same bytes on the same topic are already committed, and would
//     store nothing new;
//   - a telemetry copy that comes first waits (holding its share of the
//     byte budget) until its twin commits, then is acknowledged; after
//     twinWait without its twin, or as soon as the emergency connection
//     loses its subscription, it is written like any message.
//
// So a telemetry copy is acknowledged only once identical bytes have
// committed, or after it has itself committed: nothing is lost if the
// emergency connection is down or its copy never comes.
type twins struct {
	mu        sync.Mutex
	committed map[[32]byte]time.Time
	order     []twinMark // committed digests, oldest first (expiry)
	waiting   map[[32]byte][]twinWaiter
	max       int // committed digests kept at most
}

type twinMark struct {
	d  [32]byte
	at time.Time
}

type twinWaiter struct {
	h     *heldMessage
	since time.Time
}

const (
	twinKeep = 30 * time.Second // how long a committed digest is remembered
	twinWait = time.Second      // how long a telemetry copy waits for its twin
	twinMax  = 1 << 16
)

func newTwins() *twins {
	return &twins{committed: map[[32]byte]time.Time{}, waiting: map[[32]byte][]twinWaiter{}, max: twinMax}
}

func twinDigest(topic string, payload []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// arrived takes a telemetry copy: true if its twin has committed (the
// caller acknowledges it), false if it now waits for its twin.
func (t *twins) arrived(d [32]byte, h *heldMessage, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.committed[d]; ok {
		return true
	}
	t.waiting[d] = append(t.waiting[d], twinWaiter{h, now})
	return false
}

// done records that the emergency copy with digest d has committed and
// returns the telemetry copies that waited for it (to acknowledge).
func (t *twins) done(d [32]byte, now time.Time) []*heldMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.committed[d]; !ok {
		t.committed[d] = now
		t.order = append(t.order, twinMark{d, now})
	}
	t.expire(now)
	ws := t.waiting[d]
	delete(t.waiting, d)
	out := make([]*heldMessage, len(ws))
	for i, w := range ws {
		out[i] = w.h
	}
	return out
}

// expire forgets committed digests older than twinKeep, and the oldest
// beyond max. Forgetting only costs a write: a later telemetry copy then
// waits and is written. Called with mu held.
func (t *twins) expire(now time.Time) {
	n := 0
	for n < len(t.order) && (now.Sub(t.order[n].at) > twinKeep || len(t.order)-n > t.max) {
		delete(t.committed, t.order[n].d)
		n++
	}
	if n > 0 {
		t.order = append(t.order[:0], t.order[n:]...)
	}
}

// overdue returns the telemetry copies that waited longer than twinWait,
// or all of them when all is set (the emergency connection is not
// subscribed, or iocd is stopping): they are to be written.
func (t *twins) overdue(now time.Time, all bool) []*heldMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	var out []*heldMessage
	for d, ws := range t.waiting {
		kept := ws[:0]
		for _, w := range ws {
			if all || now.Sub(w.since) >= twinWait {
				out = append(out, w.h)
			} else {
				kept = append(kept, w)
			}
		}
		if len(kept) == 0 {
			delete(t.waiting, d)
		} else {
			t.waiting[d] = kept
		}
	}
	return out
}
