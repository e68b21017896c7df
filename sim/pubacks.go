package sim

import (
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// PubAcks tells which QoS 1 publishes a paho client has had acknowledged
// by the broker. A publish token is not that: when the client reconnects,
// paho resends what it had in flight (resume) and completes each original
// token at once, without error, with a new token in its place for the
// resent message (claimID; eclipse-paho/paho.mqtt.golang#563, documented
// in its README since #565). A caller that stops, or loses the connection
// again, before the resent message's PUBACK would count as acknowledged a
// message the broker never stored. The fault suite's "lost" messages on
// NATS after a broker restart were those (docs/operations.md).
//
// PubAcks is the client's store (SetStore): paho deletes an outbound
// publish from it when the broker's PUBACK for it arrives, and only then
// (persistInbound, before it completes the token). Each Put of a packet
// id starts a generation; a PUBACK marks the id's current generation
// acknowledged.
//
// One goroutine publishes on a client (so between Publish storing id N
// and Sent reading N's generation, no other publish can take N).
type PubAcks struct {
	mqtt.Store
	mu      sync.Mutex
	gen     map[uint16]uint64 // latest Put per packet id
	acked   map[uint16]uint64 // latest generation acknowledged per id
	waiters map[uint16][]ackWaiter
}

// Sent is one publish: its packet id and generation.
type Sent struct {
	id  uint16
	gen uint64
}

type ackWaiter struct {
	gen uint64
	ch  chan struct{}
}

// WithPubAcks sets a PubAcks as the options' store and returns it.
func WithPubAcks(o *mqtt.ClientOptions) *PubAcks {
	a := &PubAcks{Store: mqtt.NewMemoryStore(), gen: map[uint16]uint64{},
		acked: map[uint16]uint64{}, waiters: map[uint16][]ackWaiter{}}
	o.SetStore(a)
	return a
}

// outbound returns the packet id of paho's outbound store keys ("o.<id>").
func outbound(key string) (uint16, bool) {
	if len(key) < 3 || key[:2] != "o." {
		return 0, false
	}
	var id uint32
	for _, c := range key[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + uint32(c-'0')
		if id > 0xffff {
			return 0, false
		}
	}
	return uint16(id), true
}

func (a *PubAcks) Put(key string, m packets.ControlPacket) {
	if id, ok := outbound(key); ok {
		if _, pub := m.(*packets.PublishPacket); pub {
			a.mu.Lock()
			a.gen[id]++
			a.mu.Unlock()
		}
	}
	a.Store.Put(key, m)
}

func (a *PubAcks) Del(key string) {
	if id, ok := outbound(key); ok {
		if _, pub := a.Store.Get(key).(*packets.PublishPacket); !pub {
			a.Store.Del(key)
			return
		}
		a.mu.Lock()
		g := a.gen[id]
		a.acked[id] = g
		ws := a.waiters[id]
		keep := ws[:0]
		for _, w := range ws {
			if w.gen <= g {
				close(w.ch)
			} else {
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			delete(a.waiters, id)
		} else {
			a.waiters[id] = keep
		}
		a.mu.Unlock()
	}
	a.Store.Del(key)
}

// Sent names the publish whose token Publish just returned (QoS 1).
func (a *PubAcks) Sent(tok mqtt.Token) Sent {
	pt, ok := tok.(*mqtt.PublishToken)
	if !ok || pt.MessageID() == 0 {
		return Sent{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return Sent{id: pt.MessageID(), gen: a.gen[pt.MessageID()]}
}

// Acked: the broker's PUBACK for s has arrived.
func (a *PubAcks) Acked(s Sent) bool {
	if s.gen == 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked[s.id] >= s.gen
}

// Done is closed when the broker's PUBACK for s arrives (perhaps never:
// the caller bounds the wait).
func (a *PubAcks) Done(s Sent) <-chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.gen != 0 && a.acked[s.id] >= s.gen {
		close(ch)
		return ch
	}
	if s.gen != 0 {
		a.waiters[s.id] = append(a.waiters[s.id], ackWaiter{s.gen, ch})
	}
	return ch
}
