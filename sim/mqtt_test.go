package sim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func testBroker() string {
	if u := os.Getenv("IOC_MQTT_URL"); u != "" {
		return u
	}
	return "tcp://127.0.0.1:1883"
}

// A few hundred messages, valid and malformed, over the real broker: a
// subscriber gets every acknowledged one, byte for byte, and the valid
// ones parse.
func TestPublishOverMosquitto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("iocsimtest-%d-%d", os.Getpid(), time.Now().UnixNano())

	type key [32]byte
	sum := func(topic string, p []byte) key {
		return sha256.Sum256(append([]byte(topic+"\x00"), p...))
	}
	var (
		mu       sync.Mutex
		received = map[key]int{}
		nrecv    int
	)
	sub, err := Connect(ctx, NewMQTTOptions(testBroker(), prefix+"-sub").SetOrderMatters(true))
	if err != nil {
		t.Skipf("no MQTT broker at %s: %v", testBroker(), err)
	}
	defer sub.Disconnect(100)
	tok := sub.Subscribe(prefix+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		received[sum(m.Topic(), m.Payload())]++
		nrecv++
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	var (
		omu   sync.Mutex
		acked []Message
	)
	cfg := smallConfig(t)
	cfg.Broker, cfg.Prefix, cfg.ClientID = testBroker(), prefix, prefix
	cfg.Rate, cfg.Count, cfg.Conns, cfg.Window = RateMax, 400, 2, 50
	cfg.Start = time.Time{} // now: the ts are current
	cfg.BadRatio = 0.1
	cfg.Observe = func(m Message) { omu.Lock(); acked = append(acked, m); omu.Unlock() }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Total.Sent != 400 || st.Total.Acked != 400 || len(acked) != 400 {
		t.Fatalf("sent %d, acked %d, observed %d", st.Total.Sent, st.Total.Acked, len(acked))
	}
	if st.Bad.Sent == 0 {
		t.Error("no malformed message among 400 at ratio 0.1")
	}
	for ctx.Err() == nil {
		mu.Lock()
		n := nrecv
		mu.Unlock()
		if n >= len(acked) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range acked {
		k := sum(m.Topic, m.Payload)
		if received[k] == 0 {
			t.Errorf("not received: %s %.100q", m.Topic, m.Payload)
			continue
		}
		received[k]--
		if m.Bad != "" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Errorf("valid message does not parse: %v", err)
		}
		if got := Check(prefix, m.Topic, m.Payload, time.Now()); len(got) != 0 {
			t.Errorf("valid message fails %v on arrival: %s", got, m.Payload)
		}
	}
	if nrecv != 400 {
		t.Errorf("subscriber got %d messages, want 400", nrecv)
	}
}
