package faults

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"ioc/sim"
)

// The suite counts as acknowledged what the simulator's publishers were
// acknowledged, so they must count PUBACKs and not paho's tokens. After a
// reconnect paho resends what it had in flight and completes the original
// tokens at once, without error, before the broker has answered
// (sim.PubAcks). The suite's rare "loss" on NATS after a broker restart
// was that: the load stopped (it ends a second after the fault when
// recovery is fast) and disconnected its publishers between the reconnect
// and the resent messages' PUBACKs, and the messages counted as
// acknowledged had never reached the broker.
//
// Here the simulator publishes through a proxy to a real nats-server
// (deploy/nats/nats.conf); the proxy holds its publishes (partition), cuts
// the connection and lets it reconnect with 2 s of latency each way, so
// that between the reconnect and the PUBACKs of the resent messages there
// are seconds. The moment anything more is counted as acknowledged, or
// the broker receives a resent message, the proxy cuts again and the
// simulator stops. Everything it counted must be at the broker.
func TestSimCountsPubAcksNotTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server")
	}
	root, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logw io.Writer = io.Discard
	if os.Getenv("IOC_TEST_LOG") == "1" {
		logw = os.Stderr
	}
	broker, err := StartNATS(ctx, root, t.TempDir(), false, 1, logw)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	// What the broker stored: a QoS 1 subscriber straight on the broker.
	idRE := regexp.MustCompile(`"id":"([^"]+)"`)
	var mu sync.Mutex
	stored := map[string]bool{}
	newStored := make(chan struct{}, 1)
	sub, err := sim.Connect(ctx, sim.NewMQTTOptions("tcp://"+broker.Addrs()[0], "pubacks-test-sub").
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			if s := idRE.FindSubmatch(m.Payload()); s != nil {
				mu.Lock()
				stored[string(s[1])] = true
				mu.Unlock()
				select {
				case newStored <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("city/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	px, err := NewProxy(broker.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	var observed []string
	nObserved := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(observed)
	}
	s, err := sim.New(sim.Config{
		Broker: "tcp://" + px.Addr, ClientID: "pubacks-test", Conns: 1, Window: 200,
		Seed: 14, Rate: 100, Sensors: 30, Cameras: 3, Sources: 1, Units: 2, RunID: "pubacks",
		WardsPath:    filepath.Join(root, "..", "shared", "data", "hanoi", "wards.geojson"),
		DrainTimeout: 300 * time.Millisecond,
		Observe: func(m sim.Message) {
			if m.ID == "" || m.Bad != "" {
				return
			}
			mu.Lock()
			observed = append(observed, m.ID)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(simCtx) }()
	defer func() { stopSim(); <-simDone }()

	for nObserved() < 50 {
		select {
		case <-ctx.Done():
			t.Fatal("no acknowledgements from the broker")
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Publishes held: tokens pending, nothing reaches the broker.
	px.Partition()
	time.Sleep(time.Second)
	before := nObserved()
	mu.Lock()
	nStored := len(stored)
	mu.Unlock()
	// The held bytes are dropped (Cut before Heal), the publisher
	// reconnects through a slow path and resends what it had in flight.
	px.SetLatency(2 * time.Second)
	px.Cut()
	px.Heal()
	if err := px.Restore(); err != nil {
		t.Fatal(err)
	}
	// Until the broker has a resent message (or 20 s), watch for anything
	// more counted as acknowledged; then cut, so that neither the other
	// resent messages nor their PUBACKs get through, and stop.
	deadline := time.After(20 * time.Second)
watch:
	for {
		select {
		case <-newStored:
			mu.Lock()
			n := len(stored)
			mu.Unlock()
			if n > nStored {
				break watch
			}
		case <-deadline:
			break watch
		case <-time.After(5 * time.Millisecond):
			if nObserved() > before {
				break watch
			}
		}
	}
	px.Cut()
	stopSim()
	<-simDone
	simDone <- nil // for the deferred stop

	// Everything counted as acknowledged is at the broker (give its
	// delivery to the subscriber a moment).
	var missing []string
	for range 50 {
		mu.Lock()
		missing = missing[:0]
		for _, id := range observed {
			if !stored[id] {
				missing = append(missing, id)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d counted as acknowledged before the partition, %d in all; the broker stored %d", before, nObserved(), len(stored))
	if len(missing) > 0 {
		t.Fatalf("%d messages counted as acknowledged never reached the broker, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}
