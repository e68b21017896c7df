package ingest

import (
	"testing"
	"time"
)

// benchPayloads are what iocsim publishes (iocsim load's mix): traffic
// readings with an RFC 3339 or an epoch-milliseconds ts, a unit position,
// a camera event.
var benchPayloads = []struct {
	kind    Kind
	payload string
}{
	{KindTraffic, `{"id":"mx6gsk63-3","ts":"2026-11-22T14:59:00.619+07:00","lat":21.052629,"lon":105.753473,"speed_kmh":42.7,"volume":5,"occupancy":0.034,"interval_s":60,"lane":3}`},
	{KindTraffic, `{"id":"mx6gsk63-2","ts":1795334340619,"lat":20.949964,"lon":105.788368,"speed_kmh":36.9,"volume":13,"occupancy":0.035,"interval_s":60}`},
	{KindUnit, `{"id":"mx6gsk63-1","ts":"2026-11-22T14:59:00.619+07:00","lat":21.015514,"lon":105.826841,"kind":"ambulance","status":"available","speed_kmh":0.0,"heading_deg":256}`},
	{KindCamera, `{"id":"mx6gsk63-9","ts":"2026-11-22T14:59:00.619+07:00","lat":21.0,"lon":105.8,"event":"crowd","confidence":0.71,"count":40,"zone":"A"}`},
}

// BenchmarkDecode measures Decode (validation included) per message over
// the mix above.
func BenchmarkDecode(b *testing.B) {
	payloads := make([][]byte, len(benchPayloads))
	for i, p := range benchPayloads {
		payloads[i] = []byte(p.payload)
	}
	now := testNow
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j := i % len(payloads)
		obs, rejs := Decode(testLimits, benchPayloads[j].kind, "dev-1", payloads[j], now)
		if len(obs) != 1 || len(rejs) != 0 {
			b.Fatalf("%s: %+v", benchPayloads[j].payload, rejs)
		}
	}
}

var _ = time.Second
