package ingest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/ingest"
)

// TestNoPingWhileTrafficFlows: paho pings a connection only when it has
// been quiet for the keepalive. Acknowledgements written past paho do not
// count as paho's writes, so without the occasional acknowledgement through
// paho it would ping every keepalive under load, and a PINGRESP queued
// behind the acknowledgements the broker has not read yet can miss the
// ping timeout (docs/ingest.md, seventh sitting). While readings flow the
// telemetry connection sends no PINGREQ; once they stop, it does.
func TestNoPingWhileTrafficFlows(t *testing.T) {
	b := brokertest.Start(t)
	pool, _ := dbtest.New(t)
	ing, err := ingest.New(ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute},
		BatchSize: 500, BatchWait: 5 * time.Millisecond, Buffer: 5000, Writers: 2,
		TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
	}, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	const keepAlive = 2 * time.Second
	id := fmt.Sprintf("iocd-keepalive-%d", os.Getpid())
	sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: b.URL, ClientID: id, Prefix: "city",
		KeepAlive: keepAlive, NoEmergencyConnection: true}, ing, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { ing.Run(ctx); done <- struct{}{} }()
	go func() { sub.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	waitFor(t, "subscriber connected", func() bool { return sub.Connected() })
	h := &harness{pool: pool, ing: ing, pub: publisher(t, b.URL, id+"-pub")}

	before := ingest.PingsSent(sub)
	if before < 0 {
		t.Fatal("the telemetry connection has no buffered connection of its own")
	}
	n := 0
	for end := time.Now().Add(3 * keepAlive); time.Now().Before(end); n++ {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		h.publish(t, fmt.Sprintf("city/traffic/S-%d", n%20),
			[]byte(fmt.Sprintf(`{"ts":"%s","lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2}`, now)))
		time.Sleep(5 * time.Millisecond)
	}
	if got := ingest.PingsSent(sub) - before; got != 0 {
		t.Errorf("%d PINGREQs during %v of traffic with a keepalive of %v, want none", got, 3*keepAlive, keepAlive)
	}
	waitFor(t, "every reading stored", func() bool { return h.count(t, `SELECT count(*) FROM traffic_readings`) == n })
	// Idle, the connection is pinged as before (and the count above could
	// have seen one).
	waitFor(t, "a PINGREQ on the idle connection", func() bool { return ingest.PingsSent(sub) > before })
	if !sub.Connected() {
		t.Error("the connection was lost")
	}
}
