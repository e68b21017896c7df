package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The truth file names every scripted message, and the messages say what
// the truth says: where, when, which channel.
func TestTruth(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Scenarios = "congestion@0s,accident@30s,fire@1m"
	cfg.Units = 4      // a unit reports every 5 s: most of the messages otherwise
	cfg.BadRatio = 0.2 // scenario messages must never be the malformed ones
	var truthBuf bytes.Buffer
	cfg.Truth = &truthBuf
	msgs, s := generate(t, cfg, 14*time.Minute)
	byID := map[string]Message{}
	for _, m := range msgs {
		if m.Bad == "" {
			byID[m.ID] = m
		}
	}
	var truths []Truth
	dec := json.NewDecoder(&truthBuf)
	for dec.More() {
		var tr Truth
		if err := dec.Decode(&tr); err != nil {
			t.Fatal(err)
		}
		truths = append(truths, tr)
	}
	if len(truths) != 3 {
		t.Fatalf("%d truth lines, want 3", len(truths))
	}
	if got := s.Stats().Truth; len(got) != 3 {
		t.Errorf("summary carries %d truths", len(got))
	}
	for _, tr := range truths {
		if !tr.Complete || tr.WardCode == "" || tr.Lon < cityMinLon || tr.Lat < cityMinLat {
			t.Errorf("%s: %+v", tr.Scenario, tr)
		}
		if code := s.gen.city.wardAt(Point{tr.Lon, tr.Lat}); code == nil {
			t.Errorf("%s: location outside the city", tr.Scenario)
		}
		loc := Point{tr.Lon, tr.Lat}
		var got []decoded
		var at []time.Time
		for _, id := range tr.Messages {
			m, ok := byID[id]
			if !ok {
				t.Fatalf("%s: message %s was not sent (or was made malformed)", tr.Scenario, id)
			}
			if !slices.Contains(tr.Devices, m.Device) {
				t.Errorf("%s: device %s not in %v", tr.Scenario, m.Device, tr.Devices)
			}
			var d decoded
			json.Unmarshal(m.Payload, &d)
			got = append(got, d)
			at = append(at, m.TS)
		}
		switch tr.Scenario {
		case ScenarioAccident:
			if len(got) != 2 || got[0].Event != "accident" || got[0].Conf != 0.9 ||
				got[1].Channel != "call_115" || got[1].Priority != 2 || (got[1].Type != "medical" && got[1].Type != "rescue") {
				t.Fatalf("accident messages %+v", got)
			}
			if dt := at[1].Sub(at[0]); dt < 0 || dt > time.Minute {
				t.Errorf("call %v after the camera", dt)
			}
			for _, d := range got {
				if dist := distance(loc, Point{d.Lon, d.Lat}); dist > 100 {
					t.Errorf("accident evidence %.0f m from the scene", dist)
				}
			}
			if tr.Kind != "accident" || tr.Severity != "severe" {
				t.Errorf("expected %s/%s", tr.Kind, tr.Severity)
			}
		case ScenarioFire:
			if len(got) != 3 || got[0].Channel != "fire_alarm" || got[0].Type != "fire" || got[1].Event != "smoke" ||
				got[2].Channel != "call_114" || got[2].Type != "fire" {
				t.Fatalf("fire messages %+v", got)
			}
			for _, d := range got {
				if dist := distance(loc, Point{d.Lon, d.Lat}); dist > 250 {
					t.Errorf("fire evidence %.0f m from the fire", dist)
				}
			}
		case ScenarioCongestion:
			if len(tr.Devices) < 3 || len(got) < 3*len(tr.Devices) {
				t.Fatalf("congestion: %d devices, %d readings", len(tr.Devices), len(got))
			}
			for _, d := range got {
				if *d.Speed >= 15 || d.Occupancy <= 0.6 {
					t.Errorf("congested reading %.1f km/h occupancy %.2f", *d.Speed, d.Occupancy)
				}
			}
			first, last := slices.MinFunc(at, time.Time.Compare), slices.MaxFunc(at, time.Time.Compare)
			if held := last.Sub(first); held < 5*time.Minute {
				t.Errorf("congestion held %v", held)
			}
			for _, dev := range tr.Devices {
				for _, other := range tr.Devices {
					p, q := s.gen.sensorPos(dev), s.gen.sensorPos(other)
					if distance(p, q) > 4000 {
						t.Errorf("congested sensors %.0f m apart", distance(p, q))
					}
				}
			}
			// After clearing, the group is back to moving traffic.
			for _, m := range msgs {
				if m.Kind == KindTraffic && m.Bad == "" && slices.Contains(tr.Devices, m.Device) && m.TS.After(tr.End.Add(congestionClear+time.Minute)) {
					var d decoded
					json.Unmarshal(m.Payload, &d)
					if d.Occupancy > 0.6 {
						t.Errorf("%s still jammed at %v: %s", m.Device, m.TS, m.Payload)
					}
				}
			}
		}
	}
}

func (g *generator) sensorPos(id string) Point {
	for _, s := range g.dev.sensors {
		if s.id == id {
			return s.pos
		}
	}
	return Point{}
}

// Rush hours are slow and dense, nights light and fast.
func TestDailyRhythm(t *testing.T) {
	cfg := smallConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	mean := func(h, m int) (speed, occ float64) {
		at := time.Date(2026, 3, 3, h, m, 0, 0, hanoi) // a Tuesday
		for _, sn := range s.gen.dev.sensors {
			r := sn.normalReading(at, time.Minute, rng)
			speed += r.SpeedKmh
			occ += r.Occupancy
		}
		n := float64(len(s.gen.dev.sensors))
		return speed / n, occ / n
	}
	night, nightOcc := mean(3, 0)
	am, amOcc := mean(8, 0)
	pm, pmOcc := mean(18, 0)
	noon, _ := mean(12, 30)
	t.Logf("mean speed 03:00 %.1f, 08:00 %.1f, 12:30 %.1f, 18:00 %.1f km/h; occupancy %.2f %.2f %.2f", night, am, noon, pm, nightOcc, amOcc, pmOcc)
	if am > 0.75*night || pm > 0.75*night || pm > am {
		t.Errorf("rush hours not slow enough: night %.1f, am %.1f, pm %.1f", night, am, pm)
	}
	if noon <= pm || noon >= night {
		t.Errorf("midday %.1f not between the rush and the night", noon)
	}
	if nightOcc > 0.1 || amOcc < 2*nightOcc {
		t.Errorf("occupancy night %.2f, am %.2f", nightOcc, amOcc)
	}
	if loadFactor(time.Date(2026, 3, 7, 8, 0, 0, 0, hanoi), true) >= loadFactor(time.Date(2026, 3, 6, 8, 0, 0, 0, hanoi), true) {
		t.Error("Saturday morning as busy as Friday's")
	}
}

// Units move at plausible speeds, without jumps, and go through the
// dispatch cycle.
func TestUnitsMove(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Units = 40
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := s.gen
	seen := map[string]bool{}
	at := monday7
	last := map[*unit]Point{}
	for step := 0; step < 4*3600/5; step++ {
		at = at.Add(5 * time.Second)
		for _, u := range g.dev.units {
			u.advance(at, g.city, g.rng)
			if p, ok := last[u]; ok {
				if d := distance(p, u.pos); d > 80/3.6*5+1 {
					t.Fatalf("%s jumped %.0f m in 5 s (%s)", u.id, d, u.status)
				}
			}
			if u.curSpeed < 0 || u.curSpeed > 80 {
				t.Fatalf("%s at %.0f km/h", u.id, u.curSpeed)
			}
			last[u] = u.pos
			seen[u.status] = true
			if !slices.Contains(UnitStatuses, u.status) {
				t.Fatalf("status %q", u.status)
			}
		}
	}
	for _, st := range []string{"available", "dispatched", "en_route", "on_scene"} {
		if !seen[st] {
			t.Errorf("no unit was ever %s in 4 h", st)
		}
	}
	kinds := map[string]int{}
	for _, u := range g.dev.units {
		kinds[u.kind]++
	}
	if len(kinds) != len(UnitKinds) || len(g.dev.units) != 40 {
		t.Errorf("units %v", kinds)
	}
}

// Devices are inside their ward, and denser where people live.
func TestPlacement(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Sensors = 3000
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	perWard := map[string]int{}
	for _, sn := range s.gen.dev.sensors {
		w := s.gen.city.wardAt(sn.pos)
		if w == nil || w.Code != sn.ward.Code {
			t.Fatalf("%s at %v is not in ward %s", sn.id, sn.pos, sn.ward.Code)
		}
		perWard[w.Code]++
	}
	wards := slices.Clone(s.gen.city.wards)
	slices.SortFunc(wards, func(a, b wardArea) int { return b.Population - a.Population })
	var top, bottom int
	for i := range 15 {
		top += perWard[wards[i].Code]
		bottom += perWard[wards[len(wards)-1-i].Code]
	}
	if top < 2*bottom {
		t.Errorf("15 most populous wards hold %d sensors, 15 least %d", top, bottom)
	}
	if math.Abs(float64(len(s.gen.dev.sensors)-3000)) > 0 {
		t.Errorf("%d sensors", len(s.gen.dev.sensors))
	}
}

// The fire's building stands 100–200 m from its camera, sometimes across a
// ward boundary: the truth's ward and the alarm's are the building's, the
// ward ingest finds at the truth's location.
func TestFireTruthWard(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		cfg := smallConfig(t)
		cfg.Seed, cfg.Cameras, cfg.Scenarios = seed, 300, "fire@0s"
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr := s.gen.scenarios[0].truth
		var at string
		if w := s.gen.city.wardAt(Point{tr.Lon, tr.Lat}); w != nil {
			at = w.Code
		}
		if at != tr.WardCode {
			t.Errorf("seed %d: truth ward %s, the fire at %v,%v is in %q", seed, tr.WardCode, tr.Lon, tr.Lat, at)
		}
		if alarm := tr.Devices[0]; !strings.HasPrefix(alarm, "fa-"+tr.WardCode+"-") {
			t.Errorf("seed %d: alarm %s not named after ward %s", seed, alarm, tr.WardCode)
		}
	}
}
