package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db/dbtest"
	"ioc/geo"
	"ioc/ingest"
)

// Hồ Gươm's walking streets (a 400 m circle) and, 2.3 km west of them, a
// construction site: the places the geofence tests move units through.
var (
	insideLon          = 105.8522
	insideLat          = 21.0290 // 33 m from the lake's centre
	outsideLon         = 105.8420
	outsideLat         = 21.0287 // 1.06 km west
	buildLon, buildLat = 105.8300, 21.0300
)

// fenceGeo answers InFence the way iocd's adapter does over the geo index
// (a fence covers the point, carries the tag and is active at t), with
// real geo.Geofence values for tags and active hours. Fences are circles,
// tested with the evaluator's great-circle distance.
type fenceGeo struct {
	fakeGeo
	fences []*geo.Geofence
}

func (g fenceGeo) InFence(tag string, lon, lat float64, t time.Time) bool {
	for _, f := range g.fences {
		if slices.Contains(f.Tags, tag) && f.ActiveAt(t) && distanceM(lon, lat, f.Center[0], f.Center[1]) <= f.RadiusM {
			return true
		}
	}
	return false
}

func mustFence(t testing.TB, body string) *geo.Geofence {
	t.Helper()
	f, err := geo.DecodeGeofence([]byte(body), geo.DefaultGeofenceLimits())
	if err != nil {
		t.Fatalf("geofence %s: %v", body, err)
	}
	return f
}

// walkingStreet is always active; weekendWalkingStreet only on Friday to
// Sunday evenings (Hanoi time), as the real one.
const (
	walkingStreet        = `{"name":"Phố đi bộ Hồ Gươm","tags":["pedestrian_zone"],"circle":{"center":[105.8522,21.0287],"radius_m":400}}`
	weekendWalkingStreet = `{"name":"Phố đi bộ Hồ Gươm","tags":["pedestrian_zone"],"circle":{"center":[105.8522,21.0287],"radius_m":400},
		"active_hours":[{"days":[5,6,7],"from":"19:00","to":"24:00"}]}`
	constructionSite = `{"name":"Công trường","tags":["construction_zone"],"circle":{"center":[105.8300,21.0300],"radius_m":300}}`
)

// zoneRules watch units around pedestrian zones in each of the three modes.
const zoneRules = `{"rules":[
	{"id":"zone-enter","type":"match","source":"unit","incident_kind":"zone_entry","severity":"minor","geofence":{"tag":"pedestrian_zone","mode":"enter"}},
	{"id":"zone-exit","type":"match","source":"unit","incident_kind":"zone_exit","severity":"minor","geofence":{"tag":"pedestrian_zone","mode":"exit"}},
	{"id":"zone-inside","type":"match","source":"unit","incident_kind":"zone_presence","severity":"minor","geofence":{"tag":"pedestrian_zone","mode":"inside"}}
]}`

// crossingRules are zoneRules without the inside rule, so that the engine
// opens incidents only for crossings.
const crossingRules = `{"rules":[
	{"id":"zone-enter","type":"match","source":"unit","incident_kind":"zone_entry","severity":"minor","geofence":{"tag":"pedestrian_zone","mode":"enter"}},
	{"id":"zone-exit","type":"match","source":"unit","incident_kind":"zone_exit","severity":"minor","geofence":{"tag":"pedestrian_zone","mode":"exit"}}
]}`

func mustParse(t testing.TB, doc string) *RuleSet {
	t.Helper()
	rs, err := ParseRules([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func unitAt(dev string, at time.Duration, lon, lat float64) *ingest.Observation {
	return &ingest.Observation{Kind: ingest.KindUnit, DeviceID: dev, TS: t0.Add(at), MsgID: dev + "@" + at.String(), HasPos: true,
		Lon: lon, Lat: lat, UnitKind: "ambulance", Status: "en_route", SpeedKmh: 25, HasSpeed: true}
}

// inZone and outOfZone are readings of a unit in and out of the walking street.
func inZone(dev string, at time.Duration) *ingest.Observation {
	return unitAt(dev, at, insideLon, insideLat)
}

func outOfZone(dev string, at time.Duration) *ingest.Observation {
	return unitAt(dev, at, outsideLon, outsideLat)
}

// fired names the triggers as rule/device, in the order emitted.
func fired(ts []Trigger) []string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Rule+"/"+t.DeviceID)
	}
	return s
}

type step struct {
	o    *ingest.Observation
	want []string // rule/device, in rule order
}

func runSteps(t *testing.T, ev *evaluator, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := fired(run(ev, s.o))
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d (%s at %s, %.4f,%.4f): fired %v, want %v", i, s.o.DeviceID, s.o.TS.Format(time.RFC3339), s.o.Lon, s.o.Lat, got, s.want)
		}
	}
}

// A unit driving into the zone fires enter once, on the first reading
// inside; readings inside after that fire only the inside rule; the first
// reading outside fires exit once; driving back in fires enter again.
func TestGeofenceEnterAndExitFireOnTheCrossing(t *testing.T) {
	ev := compile(mustParse(t, zoneRules), fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}})
	s := time.Second
	runSteps(t, ev, []step{
		{outOfZone("amb-1", 0), nil},
		{outOfZone("amb-1", 10*s), nil},
		{inZone("amb-1", 20*s), []string{"zone-enter/amb-1", "zone-inside/amb-1"}},
		{inZone("amb-1", 30*s), []string{"zone-inside/amb-1"}},
		{inZone("amb-1", 40*s), []string{"zone-inside/amb-1"}},
		{outOfZone("amb-1", 50*s), []string{"zone-exit/amb-1"}},
		{outOfZone("amb-1", 60*s), nil},
		{inZone("amb-1", 70*s), []string{"zone-enter/amb-1", "zone-inside/amb-1"}},
	})

	// The enter trigger carries the crossing reading as its evidence.
	ev = compile(mustParse(t, zoneRules), fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}})
	run(ev, outOfZone("amb-2", 0))
	cross := inZone("amb-2", 15*s)
	got := run(ev, cross)
	if len(got) != 2 {
		t.Fatalf("crossing: %+v", got)
	}
	tr := got[0]
	if tr.Rule != "zone-enter" || tr.Kind != "zone_entry" || tr.Severity != "minor" || tr.DeviceID != "amb-2" || !tr.At.Equal(cross.TS) ||
		tr.Lon != insideLon || tr.Lat != insideLat || tr.Condition || tr.Clear {
		t.Fatalf("enter trigger: %+v", tr)
	}
	if len(tr.Evidence) != 1 {
		t.Fatalf("enter evidence: %+v", tr.Evidence)
	}
	e := tr.Evidence[0]
	if e.DeviceID != "amb-2" || e.Kind != "unit" || !e.ObservedAt.Equal(cross.TS) || e.MsgID != cross.MsgID || e.Rule != "zone-enter" ||
		e.Location == nil || e.Location.Coordinates != [2]float64{insideLon, insideLat} {
		t.Fatalf("enter evidence: %+v", e)
	}
}

// Nothing is known of a device's side before its first matching reading
// (a new unit, or any unit after a restart or a rule change, which start
// the evaluator afresh): that reading records the side and fires no
// crossing, even inside the zone.
func TestGeofenceFirstReadingIsNotACrossing(t *testing.T) {
	fences := fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}}
	ev := compile(mustParse(t, zoneRules), fences)
	s := time.Second
	runSteps(t, ev, []step{
		{inZone("amb-1", 0), []string{"zone-inside/amb-1"}},
		{inZone("amb-1", 10*s), []string{"zone-inside/amb-1"}},
		{outOfZone("amb-1", 20*s), []string{"zone-exit/amb-1"}},
		{outOfZone("amb-2", 0), nil},
		{inZone("amb-2", 10*s), []string{"zone-enter/amb-2", "zone-inside/amb-2"}},
	})
	// The same unit, still inside, seen by a freshly compiled evaluator
	// (as after SIGHUP, PUT /rules or a restart): it has not entered again.
	ev = compile(mustParse(t, zoneRules), fences)
	runSteps(t, ev, []step{
		{inZone("amb-2", 30*s), []string{"zone-inside/amb-2"}},
		{outOfZone("amb-2", 40*s), []string{"zone-exit/amb-2"}},
	})
}

// Each device has its own previous side: two units whose readings
// interleave cross at their own times.
func TestGeofenceSideIsPerDevice(t *testing.T) {
	ev := compile(mustParse(t, zoneRules), fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}})
	s := time.Second
	runSteps(t, ev, []step{
		{outOfZone("amb-a", 0), nil},
		{outOfZone("amb-b", 1*s), nil},
		{inZone("amb-a", 10*s), []string{"zone-enter/amb-a", "zone-inside/amb-a"}},
		{outOfZone("amb-b", 11*s), nil}, // a shared memory would say amb-b left
		{inZone("amb-b", 21*s), []string{"zone-enter/amb-b", "zone-inside/amb-b"}},
		{inZone("amb-a", 20*s), []string{"zone-inside/amb-a"}}, // older than amb-b's reading: per-device time
		{outOfZone("amb-a", 30*s), []string{"zone-exit/amb-a"}},
		{inZone("amb-b", 31*s), []string{"zone-inside/amb-b"}},
		{outOfZone("amb-b", 41*s), []string{"zone-exit/amb-b"}},
		{outOfZone("amb-a", 40*s), nil},
	})
}

// A reading older than the device's latest (late, or replayed) does not
// move its side: it neither fires a crossing nor hides the next one.
func TestGeofenceLateReadingDoesNotMoveTheSide(t *testing.T) {
	ev := compile(mustParse(t, zoneRules), fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}})
	s := time.Second
	runSteps(t, ev, []step{
		{outOfZone("amb-1", 0), nil},
		{outOfZone("amb-1", 20*s), nil},
		{inZone("amb-1", 10*s), []string{"zone-inside/amb-1"}}, // late: inside holds, no crossing
		{inZone("amb-1", 30*s), []string{"zone-enter/amb-1", "zone-inside/amb-1"}},
		{outOfZone("amb-1", 25*s), nil}, // late
		{inZone("amb-1", 40*s), []string{"zone-inside/amb-1"}},
	})
}

// Only fences carrying the rule's tag count: driving through a
// construction site is neither entering nor being in a pedestrian zone.
func TestGeofenceOtherTagDoesNotMatch(t *testing.T) {
	fences := fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet), mustFence(t, constructionSite)}}
	if !fences.InFence("construction_zone", buildLon, buildLat, t0) || fences.InFence("pedestrian_zone", buildLon, buildLat, t0) {
		t.Fatal("test fences are not where the test thinks")
	}
	ev := compile(mustParse(t, zoneRules), fences)
	s := time.Second
	runSteps(t, ev, []step{
		{outOfZone("amb-1", 0), nil},
		{unitAt("amb-1", 10*s, buildLon, buildLat), nil},
		{unitAt("amb-1", 20*s, buildLon, buildLat), nil},
		{outOfZone("amb-1", 30*s), nil},
		{inZone("amb-1", 40*s), []string{"zone-enter/amb-1", "zone-inside/amb-1"}},
	})
	// A rule on the construction tag sees the site and not the lake.
	ev = compile(mustParse(t, `{"rules":[{"id":"site-enter","type":"match","source":"unit","incident_kind":"site_entry",
		"severity":"minor","geofence":{"tag":"construction_zone","mode":"enter"}}]}`), fences)
	runSteps(t, ev, []step{
		{outOfZone("amb-2", 0), nil},
		{inZone("amb-2", 10*s), nil},
		{unitAt("amb-2", 20*s, buildLon, buildLat), []string{"site-enter/amb-2"}},
	})
}

// The evaluator asks for the fences active at the observation's time
// (docs/alerts.md), so the weekend walking street counts only on Friday
// to Sunday evenings: crossing it at other times is not entering it, and
// a unit standing in it is inside from 19:00 on. The side compared is
// the side of the active fences, so a unit parked in the zone enters it
// when it opens and leaves it when it closes.
func TestGeofenceActiveHours(t *testing.T) {
	fences := fenceGeo{fences: []*geo.Geofence{mustFence(t, weekendWalkingStreet)}}
	hanoi := func(s string) time.Duration { // offset from t0 of a Hanoi wall time
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, geo.Hanoi)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Sub(t0)
	}
	ev := compile(mustParse(t, zoneRules), fences)
	runSteps(t, ev, []step{
		// Thursday evening: the zone is closed; driving through is nothing.
		{outOfZone("amb-1", hanoi("2026-03-05 20:00")), nil},
		{inZone("amb-1", hanoi("2026-03-05 20:05")), nil},
		{outOfZone("amb-1", hanoi("2026-03-05 20:10")), nil},
		// Friday evening: open.
		{outOfZone("amb-1", hanoi("2026-03-06 19:30")), nil},
		{inZone("amb-1", hanoi("2026-03-06 19:35")), []string{"zone-enter/amb-1", "zone-inside/amb-1"}},
		{outOfZone("amb-1", hanoi("2026-03-06 19:40")), []string{"zone-exit/amb-1"}},
		// Parked in the zone from Friday afternoon.
		{inZone("amb-2", hanoi("2026-03-06 18:50")), nil},
		{inZone("amb-2", hanoi("2026-03-06 18:59")), nil},
		{inZone("amb-2", hanoi("2026-03-06 19:00")), []string{"zone-enter/amb-2", "zone-inside/amb-2"}},
		{inZone("amb-2", hanoi("2026-03-06 23:59")), []string{"zone-inside/amb-2"}},
		{inZone("amb-2", hanoi("2026-03-07 00:00")), []string{"zone-exit/amb-2"}}, // "to": "24:00" ends the window
		{inZone("amb-2", hanoi("2026-03-07 10:00")), nil},
	})
}

// Rules with enter or exit fences keep their own state beside threshold
// rules: a threshold rule with an exit fence neither shares a window with
// another threshold rule nor reads past the windows of the device.
func TestGeofenceRulesKeepTheirOwnState(t *testing.T) {
	fences := fenceGeo{fences: []*geo.Geofence{mustFence(t, walkingStreet)}}
	// A jam (held 2 min) and a slow reading leaving the zone, both
	// thresholds on the same sensor readings.
	rs := mustParse(t, `{"rules":[
		{"id":"jam","type":"threshold","incident_kind":"traffic_congestion","severity":"moderate",
		 "where":[{"field":"speed_kmh","op":"<","value":15}],"hold":"2m"},
		{"id":"slow-leaving-zone","type":"threshold","incident_kind":"zone_exit_slow","severity":"minor",
		 "where":[{"field":"speed_kmh","op":"<","value":15}],"hold":"0s","geofence":{"tag":"pedestrian_zone","mode":"exit"}}
	]}`)
	ev := compile(rs, fences)
	at := func(m int, lon, lat float64) *ingest.Observation {
		o := traffic("tfc-1", time.Duration(m)*time.Minute, 8, 0.8)
		o.Lon, o.Lat = lon, lat
		return o
	}
	runSteps(t, ev, []step{
		{at(0, insideLon, insideLat), nil},
		{at(1, insideLon, insideLat), nil},
		{at(2, insideLon, insideLat), []string{"jam/tfc-1"}},
		{at(3, insideLon, insideLat), nil},
	})
	got := run(ev, at(4, outsideLon, outsideLat))
	if len(got) != 1 || got[0].Rule != "slow-leaving-zone" || got[0].Clear || !got[0].Condition {
		t.Fatalf("leaving the zone slowly: %+v", got)
	}

	// A match rule with an enter fence before a threshold rule with an
	// exit fence on the same source: two fence slots, one threshold slot.
	rs = mustParse(t, `{"rules":[
		{"id":"enter","type":"match","source":"traffic","incident_kind":"zone_entry","severity":"minor",
		 "geofence":{"tag":"pedestrian_zone","mode":"enter"}},
		{"id":"slow-leaving-zone","type":"threshold","incident_kind":"zone_exit_slow","severity":"minor",
		 "where":[{"field":"speed_kmh","op":"<","value":15}],"hold":"0s","geofence":{"tag":"pedestrian_zone","mode":"exit"}}
	]}`)
	ev = compile(rs, fences)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("evaluating a valid rule set panicked: %v", p)
			}
		}()
		runSteps(t, ev, []step{
			{at(0, outsideLon, outsideLat), nil},
			{at(1, insideLon, insideLat), []string{"enter/tfc-1"}},
			{at(2, insideLon, insideLat), nil},
			{at(3, outsideLon, outsideLat), []string{"slow-leaving-zone/tfc-1"}},
		})
	}()
}

// geoIndex is iocd's adapter (cmd/iocd/alerts.go) over the real geofence
// store: fences live in PostgreSQL and are looked up in geo's index.
type geoIndex struct {
	fakeGeo
	fences *geo.Geofences
}

func (g geoIndex) InFence(tag string, lon, lat float64, t time.Time) bool {
	var buf [8]*geo.Geofence
	for _, f := range g.fences.ActiveContaining(buf[:0], lon, lat, t) {
		if slices.Contains(f.Tags, tag) {
			return true
		}
	}
	return false
}

// crossingEngine is an engine running crossingRules over geo's fence
// store in PostgreSQL, holding the given fences; not started yet.
func crossingEngine(t *testing.T, fenceBodies ...string) *env {
	t.Helper()
	ctx := context.Background()
	pool, _ := dbtest.New(t)
	fences := geo.NewGeofences(pool, nil, geo.DefaultGeofenceLimits(), testLog())
	if err := fences.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, body := range fenceBodies {
		if _, err := fences.Create(ctx, mustFence(t, body), "test"); err != nil {
			t.Fatal(err)
		}
	}
	rulesFile := t.TempDir() + "/rules.json"
	writeFile(t, rulesFile, crossingRules)
	e, err := New(ctx, Config{RulesFile: rulesFile, Geo: geoIndex{fences: fences}, NoSignals: true, Tick: time.Hour}, pool, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return &env{e: e, pool: pool, ctx: ctx}
}

// Through PostgreSQL, geo's fence store and the engine's goroutines: an
// ambulance driving into the walking street opens exactly one zone_entry
// incident whose evidence is the crossing reading; its later readings
// inside add nothing, also after the rules are replaced (which starts the
// evaluator afresh); driving out opens the zone_exit incident.
func TestGeofenceEnterOpensOneIncident(t *testing.T) {
	v := crossingEngine(t, walkingStreet, constructionSite)
	e, pool, ctx := v.e, v.pool, v.ctx
	v.start(t)

	triggers := func(rule string) float64 { return testutil.ToFloat64(metricTriggers.WithLabelValues(rule)) }
	enter0, exit0 := triggers("zone-enter"), triggers("zone-exit")
	// Evaluated: every observation handed over has been through the
	// evaluator, so every trigger it raises has been counted.
	evaluated := func(n int64) {
		t.Helper()
		waitUntil(t, "evaluation", func() bool { return e.evaluated.Load() >= n })
	}

	now := time.Now().Truncate(time.Millisecond)
	reading := func(at time.Duration, lon, lat float64) *ingest.Observation {
		o := unitAt("amb-7", 0, lon, lat)
		o.TS = now.Add(at)
		o.MsgID = "m" + at.String()
		return o
	}
	s := time.Second
	cross := reading(20*s, insideLon, insideLat)
	e.Observe([]*ingest.Observation{
		reading(0, outsideLon, outsideLat),
		reading(5*s, buildLon, buildLat), // another kind of zone
		reading(10*s, outsideLon, outsideLat),
		cross,
		reading(30*s, insideLon, insideLat),
		reading(40*s, insideLon+0.001, insideLat),
	})
	evaluated(6)
	if n := triggers("zone-enter") - enter0; n != 1 {
		t.Fatalf("%v enter triggers, want 1", n)
	}
	waitUntil(t, "the zone_entry incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents`) >= 1 })
	var id string
	if err := pool.QueryRow(ctx, `SELECT id FROM incidents WHERE kind = 'zone_entry'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	checkEntry := func() {
		t.Helper()
		x, err := e.Store().Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Kind != "zone_entry" || x.Severity != "minor" || x.Status != StatusNew || x.OpenedBy != "rule:zone-enter" || x.AutoResolve ||
			x.Location.Coordinates != [2]float64{insideLon, insideLat} || x.Ward == nil || x.Ward.Code != "00004" {
			t.Fatalf("incident: %+v", x)
		}
		if len(x.Evidence) != 1 || x.EvidenceCount != 1 {
			t.Fatalf("evidence: %+v", x.Evidence)
		}
		ev := x.Evidence[0]
		if ev.DeviceID != "amb-7" || ev.Kind != "unit" || !ev.ObservedAt.Equal(cross.TS) || ev.MsgID != cross.MsgID ||
			ev.Rule != "zone-enter" || ev.Location == nil || ev.Location.Coordinates != [2]float64{insideLon, insideLat} {
			t.Fatalf("evidence: %+v", ev)
		}
		if len(x.Timeline) != 1 || x.Timeline[0].Action != "opened" || x.Timeline[0].Actor != "rule:zone-enter" {
			t.Fatalf("timeline: %+v", x.Timeline)
		}
	}
	checkEntry()

	// The rules are replaced (a SIGHUP, a PUT or another instance's
	// change); once the evaluator has recompiled them, the unit,
	// still inside, has not entered again.
	// (A title added: the same document again would keep its version and
	// not restart the evaluator.)
	retitled := strings.Replace(crossingRules, `"id":"zone-enter",`, `"id":"zone-enter","title":"Vào phố đi bộ",`, 1)
	if _, err := e.SetRules(ctx, []byte(retitled), 0, "test", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the evaluator to take the new rules", func() bool { return len(e.reload) == 0 })
	e.Observe([]*ingest.Observation{reading(50*s, insideLon, insideLat)})
	evaluated(7)
	if n := triggers("zone-enter") - enter0; n != 1 {
		t.Fatalf("%v enter triggers after the rules were replaced, want still 1", n)
	}
	// Driving out: the exit incident, and still one entry with one evidence.
	leave := reading(60*s, outsideLon, outsideLat)
	e.Observe([]*ingest.Observation{leave})
	evaluated(8)
	if n := triggers("zone-exit") - exit0; n != 1 {
		t.Fatalf("%v exit triggers, want 1", n)
	}
	waitUntil(t, "the zone_exit incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'zone_exit'`) == 1 })
	// Triggers are written in order, so the entry incident is final now.
	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 2 {
		t.Fatalf("%d incidents, want zone_entry and zone_exit", n)
	}
	if n := v.count(t, `SELECT count(*) FROM incident_evidence ev JOIN incidents i ON i.id = ev.incident_id
		WHERE i.kind = 'zone_exit' AND ev.device_id = 'amb-7' AND ev.ts = $1 AND ev.msg_id = $2`, leave.TS, leave.MsgID); n != 1 {
		t.Fatalf("exit evidence rows for the leaving reading: %d", n)
	}
	checkEntry()
}

// Unit positions committed while no engine ran (iocd down, or between
// ingest's commit and the evaluation) are replayed at the start, so a
// crossing made meanwhile still opens its incident.
func TestGeofenceCrossingReplayedAtStart(t *testing.T) {
	v := crossingEngine(t, walkingStreet)
	now := time.Now().Truncate(time.Millisecond)
	for i, p := range [][2]float64{{outsideLon, outsideLat}, {insideLon, insideLat}} {
		if _, err := v.pool.Exec(v.ctx, `INSERT INTO unit_positions (device_id, ts, msg_id, received_at, geom, kind, status, speed_kmh)
			VALUES ('amb-9', $1, $2, $1, ST_SetSRID(ST_MakePoint($3, $4), 4326), 'ambulance', 'en_route', 30)`,
			now.Add(time.Duration(i-2)*30*time.Second), fmt.Sprint("r", i), p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	v.start(t)
	waitUntil(t, "the replayed crossing's incident", func() bool {
		return v.count(t, `SELECT count(*) FROM incidents i JOIN incident_evidence e ON e.incident_id = i.id
			WHERE i.kind = 'zone_entry' AND e.device_id = 'amb-9' AND e.msg_id = 'r1'`) == 1
	})
	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 1 {
		t.Fatalf("%d incidents, want the one entry", n)
	}
}
