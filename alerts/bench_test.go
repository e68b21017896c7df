package alerts

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"ioc/ingest"
)

// benchRules is the default set padded to 50 rules: threshold variants on
// traffic (most of the traffic is traffic), camera matches and counts.
func benchRules(b *testing.B) *RuleSet {
	rs := mustRules(b)
	for i := 0; len(rs.Rules) < 50; i++ {
		switch i % 5 {
		case 0, 1, 2:
			rs.Rules = append(rs.Rules, Rule{ID: fmt.Sprintf("slow-%d", i), Type: "threshold", Source: "traffic",
				IncidentKind: "traffic_congestion", Severity: "minor", Hold: Duration(time.Duration(3+i%5) * time.Minute),
				Where: []Cond{{"speed_kmh", "<", 10 + float64(i%7)}, {"occupancy", ">", 0.55 + float64(i%5)/100}}})
		case 3:
			rs.Rules = append(rs.Rules, Rule{ID: fmt.Sprintf("cam-%d", i), Type: "match", Source: "camera",
				IncidentKind: "intrusion", Severity: "moderate", Events: []string{"intrusion", "wrong_way"}, MinConfidence: 0.97})
		case 4:
			rs.Rules = append(rs.Rules, Rule{ID: fmt.Sprintf("cluster-%d", i), Type: "count", Source: "camera",
				IncidentKind: "stalled", Severity: "minor", Events: []string{"stalled_vehicle"}, MinConfidence: 0.9,
				Count: 4, RadiusM: 200, Window: Duration(5 * time.Minute)})
		}
	}
	if err := rs.Validate(); err != nil {
		b.Fatal(err)
	}
	return rs
}

// benchObservations: 10,000 devices (9,000 traffic sensors, 1,000
// cameras) reporting in turn, background values like the simulator's
// (rarely over any threshold).
func benchObservations(n int) []*ingest.Observation {
	rng := rand.New(rand.NewPCG(1, 2))
	events := []string{"illegal_parking", "crowd", "wrong_way", "stalled_vehicle", "intrusion", "camera_tamper"}
	out := make([]*ingest.Observation, n)
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range out {
		dev := i % 10000
		ts := base.Add(time.Duration(i/10000) * time.Minute).Add(time.Duration(dev) * time.Millisecond)
		lon, lat := 105.75+float64(dev%100)*0.002, 20.95+float64(dev/100)*0.002
		if dev < 9000 {
			out[i] = &ingest.Observation{Kind: ingest.KindTraffic, DeviceID: fmt.Sprintf("tfc-%05d", dev), TS: ts, Lon: lon, Lat: lat,
				SpeedKmh: 12 + rng.Float64()*40, Occupancy: rng.Float64() * 0.62, Volume: 20, IntervalS: 60, HasSpeed: true}
		} else {
			out[i] = &ingest.Observation{Kind: ingest.KindCamera, DeviceID: fmt.Sprintf("cam-%05d", dev), TS: ts, Lon: lon, Lat: lat,
				Event: events[rng.IntN(len(events))], Confidence: 0.55 + rng.Float64()*0.44}
		}
	}
	return out
}

// BenchmarkEvaluate measures observations per second through the rule
// evaluator (one goroutine, as in the engine) with 50 rules over 10,000
// devices. Triggers are counted, not written.
func BenchmarkEvaluate(b *testing.B) {
	rs := benchRules(b)
	obs := benchObservations(200000)
	ev := compile(rs, fakeGeo{})
	triggers := 0
	emit := func(Trigger) { triggers++ }
	// Warm the per-device state, as in steady operation.
	for _, o := range obs[:20000] {
		ev.observe(o, emit)
	}
	// Later minutes keep moving the windows forward.
	shift := time.Duration(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(obs)
		if k == 0 && i > 0 {
			shift += 20 * time.Minute
		}
		o := *obs[k]
		o.TS = o.TS.Add(shift)
		ev.observe(&o, emit)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "obs/s")
	b.ReportMetric(float64(triggers)/float64(b.N)*1e6, "triggers/Mobs")
}
