package ingest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/ingest"
)

// TestEmergencyConnectionStoresOnceAcksBoth: every emergency signal comes
// on both connections; it is stored once, the telemetry copy is either
// acknowledged after its twin committed or written (then found stored),
// and a second session with the same client ids gets nothing redelivered:
// the broker holds no unacknowledged copy on either session.
func TestEmergencyConnectionStoresOnceAcksBoth(t *testing.T) {
	b := brokertest.Start(t)
	pool, _ := dbtest.New(t)
	id := fmt.Sprintf("iocd-emerg-%d", os.Getpid())
	type run struct {
		ing  *ingest.Ingester
		sub  *ingest.Subscriber
		stop func()
	}
	startRun := func() run {
		ing, err := ingest.New(ingest.Config{
			Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
				LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute},
			BatchSize: 500, Buffer: 5000, Writers: 2, TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
		}, pool, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: b.URL, ClientID: id, Prefix: "city"}, ing, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { ing.Run(ctx); done <- struct{}{} }()
		go func() { sub.Run(ctx); done <- struct{}{} }()
		waitFor(t, "both connections subscribed", func() bool { return sub.Connected() && sub.EmergencyConnected() })
		return run{ing, sub, func() { cancel(); <-done; <-done }}
	}
	r := startRun()
	h := &harness{pool: pool, ing: r.ing, pub: publisher(t, b.URL, id+"-pub")}
	const n = 60
	for i := range n {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		h.publish(t, fmt.Sprintf("city/emergency/SRC-%d", i%5),
			[]byte(fmt.Sprintf(`{"ts":"%s","lat":21.029,"lon":105.851,"type":"medical","priority":2,"channel":"call_115","id":"e%d"}`, now, i)))
		h.publish(t, "city/traffic/S-1", []byte(fmt.Sprintf(`{"ts":"%s","lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2,"id":"t%d"}`, now, i)))
	}
	m := r.ing.Metrics()
	twins := func(outcome string) float64 { return testutil.ToFloat64(m.Twins.WithLabelValues(outcome)) }
	received := func() float64 {
		return testutil.ToFloat64(m.Received.WithLabelValues("traffic")) + testutil.ToFloat64(m.Received.WithLabelValues("emergency"))
	}
	waitFor(t, "every telemetry copy of a signal handled", func() bool {
		return twins("acknowledged")+twins("written") == n && testutil.ToFloat64(m.Acked) == received()
	})
	if got := h.count(t, `SELECT count(*) FROM emergency_signals`); got != n {
		t.Errorf("%d signals stored, want %d", got, n)
	}
	if got := h.count(t, `SELECT count(*) FROM traffic_readings`); got != n {
		t.Errorf("%d readings stored, want %d", got, n)
	}
	// Received counts what reached the ingester: n readings and n
	// signals, plus the telemetry copies that were written (duplicates).
	if got, want := received(), 2*n+twins("written"); got != want {
		t.Errorf("received %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(m.Duplicates); got != twins("written") {
		t.Errorf("%v duplicates, want one per written copy (%v)", got, twins("written"))
	}
	t.Logf("telemetry copies: %v acknowledged on their twin's commit, %v written", twins("acknowledged"), twins("written"))
	r.stop()

	r = startRun()
	defer r.stop()
	time.Sleep(2 * time.Second)
	m = r.ing.Metrics()
	if got := received() + twins("acknowledged") + twins("written"); got != 0 {
		t.Errorf("the next session got %v messages: some copy was left unacknowledged", got)
	}
}

func publisher(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })
	return pub
}
