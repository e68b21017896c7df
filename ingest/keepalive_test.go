package ingest_test

import (
	"fmt"
	"testing"
	"time"

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
	const keepAlive = 2 * time.Second
	h := start(t, b.URL, func(c *ingest.MQTTConfig) { c.KeepAlive, c.NoEmergencyConnection = keepAlive, true })

	before := ingest.PingsSent(h.sub)
	if before < 0 {
		t.Fatal("the telemetry connection has no buffered connection of its own")
	}
	n := 0
	for end := time.Now().Add(3 * keepAlive); time.Now().Before(end); n++ {
		h.publish(t, fmt.Sprintf("city/traffic/S-%d", n%20),
			[]byte(fmt.Sprintf(`{"ts":"%s","lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2}`, ts())))
		time.Sleep(5 * time.Millisecond)
	}
	if got := ingest.PingsSent(h.sub) - before; got != 0 {
		t.Errorf("%d PINGREQs during %v of traffic with a keepalive of %v, want none", got, 3*keepAlive, keepAlive)
	}
	waitFor(t, "every reading stored", func() bool { return h.count(t, `SELECT count(*) FROM traffic_readings`) == n })
	// Idle, the connection is pinged as before (and the count above could
	// have seen one).
	waitFor(t, "a PINGREQ on the idle connection", func() bool { return ingest.PingsSent(h.sub) > before })
	if !h.sub.Connected() {
		t.Error("the connection was lost")
	}
}
