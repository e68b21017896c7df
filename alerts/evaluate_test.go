package alerts

import (
	"testing"
	"time"

	"ioc/ingest"
)

func mustRules(t testing.TB) *RuleSet {
	t.Helper()
	rs, err := ParseRules(DefaultRules)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func traffic(dev string, at time.Duration, speed, occ float64) *ingest.Observation {
	return &ingest.Observation{Kind: ingest.KindTraffic, DeviceID: dev, TS: t0.Add(at), Lon: 105.85, Lat: 21.03,
		SpeedKmh: speed, Occupancy: occ, Volume: 10, IntervalS: 60, HasSpeed: true}
}

func camera(dev string, at time.Duration, event string, conf float64, lon, lat float64) *ingest.Observation {
	return &ingest.Observation{Kind: ingest.KindCamera, DeviceID: dev, TS: t0.Add(at), Lon: lon, Lat: lat, Event: event, Confidence: conf}
}

type fakeGeo struct{ fence bool }

func (fakeGeo) Ward(lon, lat float64) (string, bool) { return "00004", true }
func (fakeGeo) WardName(string) string               { return "Phường Ba Đình" }
func (g fakeGeo) InFence(tag string, _, _ float64, _ time.Time) bool {
	return g.fence && tag == "pedestrian_zone"
}

func run(ev *evaluator, obs ...*ingest.Observation) []Trigger {
	var out []Trigger
	for _, o := range obs {
		ev.observe(o, func(t Trigger) { out = append(out, t) })
	}
	return out
}

func TestThresholdHeldThenCleared(t *testing.T) {
	ev := compile(mustRules(t), fakeGeo{})
	var obs []*ingest.Observation
	for m := 0; m <= 5; m++ {
		obs = append(obs, traffic("s1", time.Duration(m)*time.Minute, 10, 0.7))
	}
	got := run(ev, obs...)
	if len(got) != 1 || got[0].Kind != "traffic_congestion" || !got[0].Condition || got[0].Evidence[0].ObservedAt != t0.Add(5*time.Minute) {
		t.Fatalf("after 5 min held: %+v", got)
	}
	if got := run(ev, traffic("s1", 6*time.Minute, 9, 0.8)); len(got) != 0 {
		t.Fatalf("still held, fired again: %+v", got)
	}
	if got := run(ev, traffic("s1", 5*time.Minute+30*time.Second, 40, 0.2)); len(got) != 0 {
		t.Fatalf("an older reading moved the window: %+v", got)
	}
	got = run(ev, traffic("s1", 7*time.Minute, 40, 0.2))
	if len(got) != 1 || !got[0].Clear || got[0].DeviceID != "s1" {
		t.Fatalf("clear: %+v", got)
	}
	// Held for 4 minutes only, or only one of the two conditions: nothing.
	ev = compile(mustRules(t), fakeGeo{})
	obs = nil
	for m := 0; m <= 4; m++ {
		obs = append(obs, traffic("s2", time.Duration(m)*time.Minute, 10, 0.7), traffic("s3", time.Duration(m)*time.Minute, 10, 0.5))
	}
	obs = append(obs, traffic("s2", 5*time.Minute, 20, 0.7), traffic("s3", 10*time.Minute, 10, 0.5))
	if got := run(ev, obs...); len(got) != 0 {
		t.Fatalf("not held: %+v", got)
	}
	// A gap in the readings restarts the window.
	ev = compile(mustRules(t), fakeGeo{})
	if got := run(ev, traffic("s4", 0, 10, 0.7), traffic("s4", 10*time.Minute, 10, 0.7)); len(got) != 0 {
		t.Fatalf("gap counted as held: %+v", got)
	}
}

func TestCountWithinRadiusAndWindow(t *testing.T) {
	ev := compile(mustRules(t), fakeGeo{})
	lon, lat := 105.85, 21.03
	got := run(ev,
		camera("c1", 0, "crowd", 0.9, lon, lat),
		camera("c2", 30*time.Second, "crowd", 0.9, lon+0.01, lat), // ~1 km away
		camera("c3", 60*time.Second, "crowd", 0.5, lon, lat),      // confidence too low
		camera("c4", 90*time.Second, "crowd", 0.9, lon+0.001, lat),
	)
	if len(got) != 0 {
		t.Fatalf("2 near events counted as 3: %+v", got)
	}
	got = run(ev, camera("c5", 100*time.Second, "crowd", 0.9, lon, lat+0.001))
	if len(got) != 1 || got[0].Kind != "crowd" || len(got[0].Evidence) != 3 {
		t.Fatalf("third crowd within 300 m and 2 min: %+v", got)
	}
	// Outside the window: the first has expired.
	got = run(ev, camera("c6", 5*time.Minute, "crowd", 0.9, lon, lat))
	if len(got) != 0 {
		t.Fatalf("expired events counted: %+v", got)
	}
	// The same event again (replay) counts once.
	ev = compile(mustRules(t), fakeGeo{})
	e := camera("c1", 0, "crowd", 0.9, lon, lat)
	if got := run(ev, e, e, e); len(got) != 0 {
		t.Fatalf("a replayed event counted thrice: %+v", got)
	}
}

func TestMatchEmergencyAndGeofence(t *testing.T) {
	ev := compile(mustRules(t), fakeGeo{})
	got := run(ev,
		camera("c1", 0, "accident", 0.9, 105.85, 21.03),
		camera("c1", time.Second, "accident", 0.5, 105.85, 21.03),
		camera("c1", 2*time.Second, "smoke", 0.85, 105.85, 21.03),
		&ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc115", TS: t0, Lon: 105.85, Lat: 21.03, Type: "medical", Priority: 1},
		&ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc113", TS: t0, Lon: 105.85, Lat: 21.03, Type: "panic", Priority: 4},
	)
	want := []struct{ kind, sev string }{{"accident", "severe"}, {"fire", "severe"}, {"medical", "extreme"}, {"crime", "minor"}}
	if len(got) != len(want) {
		t.Fatalf("got %d triggers: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Severity != w.sev {
			t.Errorf("trigger %d: %s/%s, want %s/%s", i, got[i].Kind, got[i].Severity, w.kind, w.sev)
		}
	}
	big := camera("c9", 0, "crowd", 0.9, 105.85, 21.03)
	big.Count, big.HasCount = 800, true
	if got := run(compile(mustRules(t), fakeGeo{fence: false}), big); len(got) != 0 {
		t.Fatalf("big crowd outside a pedestrian zone: %+v", got)
	}
	got = run(compile(mustRules(t), fakeGeo{fence: true}), big)
	if len(got) != 1 || got[0].Rule != "crowd-pedestrian-zone" || got[0].Severity != "severe" {
		t.Fatalf("big crowd inside a pedestrian zone: %+v", got)
	}
}
