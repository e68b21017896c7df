package ingest

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// noStore is a paho Store that keeps nothing. paho's default memory store
// puts every inbound QoS 1 PUBLISH in a map until its PUBACK is written
// (a key built per message, a map insert and a delete under a lock: ~8 %
// of iocd's CPU at 30,000 msgs/s), for nothing this subscriber needs:
//   - it never publishes at QoS > 0, so there is no outbound message to
//     resend after a reconnect;
//   - on resume paho discards stored inbound QoS 1 PUBLISHes anyway; the
//     broker redelivers what was not acknowledged (persistent session);
//   - subscriptions are not resumed from the store (ResumeSubs is off):
//     onConnect subscribes again.
type noStore struct{}

var _ mqtt.Store = noStore{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
