package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioCongestion = "congestion"
	ScenarioAccident   = "accident"
	ScenarioFire       = "fire"
)

// defaultScenarios is what "all" means: offsets in simulated time.
var defaultScenarios = []scenarioSpec{
	{ScenarioCongestion, 1 * time.Minute},
	{ScenarioAccident, 3 * time.Minute},
	{ScenarioFire, 5 * time.Minute},
}

type scenarioSpec struct {
	name string
	at   time.Duration // after the simulated start
}

// parseScenarios reads "all" or "name[@offset],...", e.g.
// "congestion@2m,accident@10m,accident@25m".
func parseScenarios(s string) ([]scenarioSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	if s == "all" {
		return defaultScenarios, nil
	}
	var out []scenarioSpec
	for i, part := range strings.Split(s, ",") {
		name, at, hasAt := strings.Cut(strings.TrimSpace(part), "@")
		sp := scenarioSpec{name: name, at: time.Duration(i+1) * time.Minute}
		if hasAt {
			d, err := time.ParseDuration(at)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("scenario %q: offset %q: want a duration like 90s or 5m", part, at)
			}
			sp.at = d
		}
		switch name {
		case ScenarioCongestion, ScenarioAccident, ScenarioFire:
		default:
			return nil, fmt.Errorf("scenario %q: unknown (congestion, accident, fire)", name)
		}
		out = append(out, sp)
	}
	return out, nil
}

// Truth is one line of the ground-truth file: what an alerting pipeline
// should conclude from a scripted incident.
type Truth struct {
	Scenario string    `json:"scenario"`
	Seq      int       `json:"seq"` // 1, 2, ... in the order the run scripted them
	RunID    string    `json:"run_id"`
	Kind     string    `json:"expected_kind"`
	Severity string    `json:"expected_severity"`
	Lon      float64   `json:"lon"`
	Lat      float64   `json:"lat"`
	WardCode string    `json:"ward_code,omitempty"`
	WardName string    `json:"ward_name,omitempty"`
	Start    time.Time `json:"start"` // when the incident is visible in the data
	End      time.Time `json:"end"`   // last observation that belongs to it
	Devices  []string  `json:"devices"`
	Messages []string  `json:"message_ids"`
	Note     string    `json:"note"`
	Complete bool      `json:"complete"` // false: the run ended before all its messages went out
}

// scenario is a scripted incident being played.
type scenario struct {
	truth   Truth
	end     time.Time // after this (simulated) the truth is final
	pending int       // scripted messages not yet emitted
	written bool
	sent    bool // at least one of its messages went out
}

// scripted is a message a scenario emits at a fixed simulated time.
type scripted struct {
	at  time.Time
	sc  *scenario
	msg Message
}

// congestion drives a group of sensors through ramp, hold and clearing.
type congestion struct {
	sc                      *scenario
	onset, hold, clear, end time.Time
}

const (
	congestionRamp  = 3 * time.Minute
	congestionHold  = 6 * time.Minute
	congestionClear = 3 * time.Minute
)

// override returns the reading of a scripted sensor at t, and whether it is
// in the congested state (speed < 15 km/h, occupancy > 0.6).
func (c *congestion) override(s *sensor, t time.Time, interval time.Duration, rng *rand.Rand, normal trafficReading) (trafficReading, bool) {
	jam := trafficReading{
		SpeedKmh:  round1(5 + rng.Float64()*8),
		Occupancy: round3(0.64 + rng.Float64()*0.2),
		Volume:    int(float64(s.lanes) * (3 + rng.Float64()*5) * interval.Minutes()),
	}
	var f float64 // 0 normal … 1 jammed
	switch {
	case t.Before(c.onset) || !t.Before(c.end):
		return normal, false
	case t.Before(c.hold):
		f = float64(t.Sub(c.onset)) / float64(congestionRamp)
	case t.Before(c.clear):
		return jam, true
	default:
		f = 1 - float64(t.Sub(c.clear))/float64(congestionClear)
	}
	mix := func(a, b float64) float64 { return a + (b-a)*f }
	r := trafficReading{
		SpeedKmh:  round1(mix(normal.SpeedKmh, jam.SpeedKmh)),
		Occupancy: round3(mix(normal.Occupancy, jam.Occupancy)),
		Volume:    int(math.Round(mix(float64(normal.Volume), float64(jam.Volume)))),
	}
	// The ramp's last readings may already cross the thresholds; count them
	// as part of the incident only when they do.
	return r, r.SpeedKmh < 15 && r.Occupancy > 0.6
}

// setupScenarios scripts every requested incident. It runs in New, after
// the devices are placed, and may add devices of its own (a building's fire
// alarm) to the pools.
func (g *generator) setupScenarios(specs []scenarioSpec) {
	for i, sp := range specs {
		t0 := g.start.Add(sp.at)
		var sc *scenario
		switch sp.name {
		case ScenarioCongestion:
			sc = g.scriptCongestion(t0)
		case ScenarioAccident:
			sc = g.scriptAccident(t0)
		case ScenarioFire:
			sc = g.scriptFire(t0)
		}
		if sc == nil {
			g.cfg.Logger.Warn("scenario skipped: no suitable devices", "scenario", sp.name)
			continue
		}
		sc.truth.Scenario, sc.truth.Seq, sc.truth.RunID = sp.name, i+1, g.runID
		g.scenarios = append(g.scenarios, sc)
	}
	slices.SortStableFunc(g.script, func(a, b scripted) int { return a.at.Compare(b.at) })
}

// urbanPick picks a device index in an urban ward, population-weighted by
// the placement itself (denser wards hold more devices).
func urbanPick[T any](rng *rand.Rand, xs []T, urban func(T) bool) (T, bool) {
	var zero T
	if len(xs) == 0 {
		return zero, false
	}
	for range 200 {
		x := xs[rng.IntN(len(xs))]
		if urban(x) {
			return x, true
		}
	}
	return xs[rng.IntN(len(xs))], true
}

func (g *generator) scriptCongestion(t0 time.Time) *scenario {
	centre, ok := urbanPick(g.rng, g.dev.sensors, func(s *sensor) bool { return s.urban && s.congestion == nil })
	if !ok {
		return nil
	}
	// The five nearest free sensors within 2 km: one stretch of road network.
	cands := slices.Clone(g.dev.sensors)
	slices.SortFunc(cands, func(a, b *sensor) int {
		return int(math.Copysign(1, distance(a.pos, centre.pos)-distance(b.pos, centre.pos)))
	})
	c := &congestion{onset: t0, hold: t0.Add(congestionRamp)}
	c.clear = c.hold.Add(congestionHold)
	c.end = c.clear.Add(congestionClear)
	sc := &scenario{end: c.end}
	c.sc = sc
	var lon, lat float64
	for _, s := range cands {
		if len(sc.truth.Devices) == 5 || distance(s.pos, centre.pos) > 2000 {
			break
		}
		if s.congestion != nil {
			continue
		}
		s.congestion = c
		sc.truth.Devices = append(sc.truth.Devices, s.id)
		lon += s.pos.Lon
		lat += s.pos.Lat
	}
	n := float64(len(sc.truth.Devices))
	sc.truth.Kind, sc.truth.Severity = "traffic_congestion", "moderate"
	sc.truth.Lon, sc.truth.Lat = round6(lon/n), round6(lat/n)
	sc.truth.WardCode, sc.truth.WardName = centre.ward.Code, centre.ward.Name
	sc.truth.Start, sc.truth.End = c.hold, c.clear
	sc.truth.Note = fmt.Sprintf("%d sensors: speed falls below 15 km/h and occupancy rises over 0.6 from %s (ramp %s), held %s, cleared by %s; message_ids are the readings in that state",
		len(sc.truth.Devices), c.hold.In(hanoi).Format(time.TimeOnly), congestionRamp, congestionHold, c.end.In(hanoi).Format(time.TimeOnly))
	return sc
}

func (g *generator) scriptAccident(t0 time.Time) *scenario {
	cam, ok := urbanPick(g.rng, g.dev.cameras, func(c *camera) bool { return c.urban })
	if !ok {
		return nil
	}
	rng := g.rng
	sc := &scenario{}
	// The camera sees the crash 10–30 m away; a bystander calls 115 from
	// 20–70 m from the scene 15–55 s later.
	sd, sa := 10+rng.Float64()*20, rng.Float64()*2*math.Pi
	scene := offset(cam.pos, sd*math.Sin(sa), sd*math.Cos(sa))
	g.addScripted(sc, t0, KindCamera, cam.id, cam.tsf, func(b []byte, id string, ts time.Time, f tsFormat) []byte {
		return encodeCamera(b, id, ts, f, cam.pos, CameraFields{Event: "accident", Confidence: 0.9, Count: 2, Zone: "junction",
			SnapshotURL: fmt.Sprintf("https://vms.hanoi.example/snap/%s/%d.jpg", cam.id, ts.UnixMilli())})
	})
	cc := g.dev.sources[2] // cc115-hanoi
	d, a := 20+rng.Float64()*50, rng.Float64()*2*math.Pi
	caller := offset(scene, d*math.Sin(a), d*math.Cos(a))
	typ := []string{"medical", "rescue"}[rng.IntN(2)]
	callAt := t0.Add(time.Duration(15+rng.IntN(41)) * time.Second)
	g.addScripted(sc, callAt, KindEmergency, cc.id, cc.tsf, func(b []byte, id string, ts time.Time, f tsFormat) []byte {
		return encodeEmergency(b, id, ts, f, caller, EmergencyFields{Type: typ, Priority: 2, Channel: "call_115",
			Note: "Tai nạn giữa ô tô và xe máy, một người bị thương nằm trên đường", CallerRef: fmt.Sprintf("cc115-%06d", rng.IntN(1_000_000))})
	})
	sc.truth.Kind, sc.truth.Severity = "accident", "severe"
	sc.truth.Lon, sc.truth.Lat = round6(scene.Lon), round6(scene.Lat)
	sc.truth.WardCode, sc.truth.WardName = cam.ward.Code, cam.ward.Name
	sc.truth.Start, sc.truth.End, sc.end = t0, callAt, callAt
	sc.truth.Note = fmt.Sprintf("camera accident (confidence 0.9), then a 115 call (%s, priority 2) %s later, %.0f m from the scene", typ, callAt.Sub(t0), d)
	return sc
}

func (g *generator) scriptFire(t0 time.Time) *scenario {
	cam, ok := urbanPick(g.rng, g.dev.cameras, func(c *camera) bool { return c.urban })
	if !ok {
		return nil
	}
	rng := g.rng
	sc := &scenario{}
	// A building 100–200 m from a street camera; its fire alarm is a device
	// of its own that has been sending heartbeats since the start.
	d, a := 100+rng.Float64()*100, rng.Float64()*2*math.Pi
	fire := offset(cam.pos, d*math.Sin(a), d*math.Cos(a))
	// The building may stand across a ward boundary from the camera; the
	// alarm and the truth are in the building's ward, as ingest places them.
	ward := cam.ward
	if w := g.city.wardAt(fire); w != nil {
		ward = w
	}
	alarm := &source{id: fmt.Sprintf("fa-%s-9%02d", ward.Code, len(g.scenarios)+1), channel: "fire_alarm",
		pos: fire, ward: ward, fixed: true}
	g.dev.sources = append(g.dev.sources, alarm)
	g.addScripted(sc, t0, KindEmergency, alarm.id, alarm.tsf, func(b []byte, id string, ts time.Time, f tsFormat) []byte {
		return encodeEmergency(b, id, ts, f, fire, EmergencyFields{Type: "fire", Priority: 2, Channel: "fire_alarm", Note: "Đầu báo khói tầng 3 kích hoạt"})
	})
	smokeAt := t0.Add(time.Duration(30+rng.IntN(61)) * time.Second)
	g.addScripted(sc, smokeAt, KindCamera, cam.id, cam.tsf, func(b []byte, id string, ts time.Time, f tsFormat) []byte {
		return encodeCamera(b, id, ts, f, cam.pos, CameraFields{Event: "smoke", Confidence: 0.85, Count: -1,
			SnapshotURL: fmt.Sprintf("https://vms.hanoi.example/snap/%s/%d.jpg", cam.id, ts.UnixMilli())})
	})
	cc := g.dev.sources[1] // cc114-hanoi
	caller := offset(fire, (rng.Float64()-0.5)*80, (rng.Float64()-0.5)*80)
	callAt := t0.Add(time.Duration(60+rng.IntN(121)) * time.Second)
	g.addScripted(sc, callAt, KindEmergency, cc.id, cc.tsf, func(b []byte, id string, ts time.Time, f tsFormat) []byte {
		return encodeEmergency(b, id, ts, f, caller, EmergencyFields{Type: "fire", Priority: 1, Channel: "call_114",
			Note: "Cháy tầng 3 chung cư, nhiều khói đen", CallerRef: fmt.Sprintf("cc114-%06d", rng.IntN(1_000_000))})
	})
	sc.truth.Kind, sc.truth.Severity = "fire", "severe"
	sc.truth.Lon, sc.truth.Lat = round6(fire.Lon), round6(fire.Lat)
	sc.truth.WardCode, sc.truth.WardName = ward.Code, ward.Name
	sc.truth.Start, sc.truth.End, sc.end = t0, callAt, callAt
	sc.truth.Note = fmt.Sprintf("fire alarm, camera smoke %.0f m away after %s, 114 call after %s", d, smokeAt.Sub(t0), callAt.Sub(t0))
	return sc
}

// addScripted queues one scenario message. Its id is fixed now; the truth
// names it once it has gone out.
func (g *generator) addScripted(sc *scenario, at time.Time, kind, device string, f tsFormat,
	enc func(b []byte, id string, ts time.Time, f tsFormat) []byte) {
	id := g.nextID()
	msg := Message{Topic: topic(g.cfg.Prefix, kind, device), Payload: enc(nil, id, at, f), Kind: kind,
		Device: device, ID: id, TS: at, Items: 1}
	sc.pending++
	sc.truth.Devices = appendUnique(sc.truth.Devices, device)
	g.script = append(g.script, scripted{at: at, sc: sc, msg: msg})
}

func appendUnique(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// writeTruth writes one scenario's line (once).
func writeTruth(w *json.Encoder, sc *scenario, complete bool) error {
	if sc.written || w == nil {
		return nil
	}
	sc.written = true
	sc.truth.Complete = complete
	// Local time to the millisecond, as the messages carry it.
	sc.truth.Start = sc.truth.Start.Truncate(time.Millisecond).In(hanoi)
	sc.truth.End = sc.truth.End.Truncate(time.Millisecond).In(hanoi)
	if sc.truth.Messages == nil {
		sc.truth.Messages = []string{}
	}
	return w.Encode(&sc.truth)
}
