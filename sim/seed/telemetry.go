package seed

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"ioc/sim"
)

// device is one seeded device.
type device struct {
	id, kind string
	at       place
	fixed    bool
	road     sim.Road // traffic
	phase    float64  // traffic, units: offset of its reports in a slot, [0,1)
	lane     any      // traffic: reported lane or nil
	heading  any      // traffic: float32 or nil
	channel  string   // emergency sources
	unitKind string   // units
}

// devStat is what a job saw of a device, merged into its devices row.
type devStat struct {
	messages int64
	lastTS   time.Time
	interval int32
	at       *place // where it was last (units)
}

type devStats map[*device]*devStat

func (s devStats) saw(d *device, ts time.Time, interval time.Duration) *devStat {
	st := s[d]
	if st == nil {
		st = &devStat{}
		s[d] = st
	}
	st.messages++
	if ts.After(st.lastTS) {
		st.lastTS = ts
		st.interval = int32(interval.Seconds())
	}
	return st
}

// fleet is the seeded city's devices.
type fleet struct {
	sensors, cameras, sources, units []*device
	byUnitKind                       map[string][]*device
}

var unitMix = []struct {
	kind, prefix string
	share        float64
}{
	{"ambulance", "amb", 0.30}, {"police", "pol", 0.25}, {"traffic_police", "tp", 0.20}, {"fire", "fire", 0.15}, {"rescue", "res", 0.10},
}

var callCentres = []struct{ id, channel string }{
	{"cc113-hanoi", "call_113"}, {"cc114-hanoi", "call_114"}, {"cc115-hanoi", "call_115"}, {"app-sos-hanoi", "app"},
}

func buildFleet(c *city, cfg *Config, rng *rand.Rand) *fleet {
	f := &fleet{byUnitKind: map[string][]*device{}}
	perWard := map[string]int{}
	id := func(prefix string, p place) string {
		k := prefix + p.ward
		perWard[k]++
		return fmt.Sprintf("%s-%s-%03d", prefix, p.ward, perWard[k])
	}
	for range cfg.Sensors {
		p := c.random(rng)
		d := &device{kind: "traffic", at: p, fixed: true, phase: rng.Float64(),
			road: sim.Road{Urban: p.urban, Busy: 0.75 + rng.Float64()*0.3, Lanes: 1 + rng.IntN(4)}}
		d.id = id("tfc", p)
		d.road.FreeFlow = 50 + rng.Float64()*30
		if p.urban {
			d.road.FreeFlow = 35 + rng.Float64()*25
		}
		if rng.IntN(3) == 0 {
			d.lane = fmt.Sprint(1 + rng.IntN(d.road.Lanes))
		}
		if rng.IntN(2) == 0 {
			d.heading = float32(math.Round(rng.Float64() * 359))
		}
		f.sensors = append(f.sensors, d)
	}
	for range cfg.Cameras {
		p := c.random(rng)
		d := &device{kind: "camera", at: p, fixed: true}
		d.id = id("cam", p)
		f.cameras = append(f.cameras, d)
	}
	for _, cc := range callCentres {
		f.sources = append(f.sources, &device{id: cc.id, kind: "emergency", channel: cc.channel, at: c.random(rng)})
	}
	for i := range cfg.Sources {
		p := c.random(rng)
		d := &device{kind: "emergency", at: p, fixed: true}
		switch i % 5 {
		case 0, 1:
			d.channel, d.id = "panic_button", id("pb", p)
		case 2, 3:
			d.channel, d.id = "fire_alarm", id("fa", p)
		default:
			d.channel, d.id = "sensor", id("fl", p)
		}
		f.sources = append(f.sources, d)
	}
	n := 0
	for mi, m := range unitMix {
		k := int(math.Round(float64(cfg.Units) * m.share))
		if mi == len(unitMix)-1 {
			k = cfg.Units - n
		}
		for i := range k {
			d := &device{id: fmt.Sprintf("%s-%03d", m.prefix, i+1), kind: "unit", unitKind: m.kind, at: c.random(rng), phase: rng.Float64()}
			f.units = append(f.units, d)
			f.byUnitKind[m.kind] = append(f.byUnitKind[m.kind], d)
		}
		n += k
	}
	return f
}

func (f *fleet) all() []*device {
	var out []*device
	for _, g := range [][]*device{f.sensors, f.cameras, f.sources, f.units} {
		out = append(out, g...)
	}
	return out
}

// received is when ingest would have stored a reading taken at ts.
func received(rng *rand.Rand, ts time.Time) time.Time {
	return ts.Add(200*time.Millisecond + time.Duration(rng.Int64N(int64(1800*time.Millisecond)))).Truncate(time.Microsecond)
}

// Telemetry columns, in COPY order (ingest/writer.go's tables).
var (
	trafficCols   = []string{"device_id", "ts", "msg_id", "received_at", "geom", "ward_code", "speed_kmh", "volume", "occupancy", "interval_s", "lane", "heading_deg"}
	cameraCols    = []string{"device_id", "ts", "msg_id", "received_at", "geom", "ward_code", "event", "confidence", "count", "snapshot_url", "zone"}
	emergencyCols = []string{"device_id", "ts", "msg_id", "received_at", "geom", "ward_code", "type", "priority", "channel", "note", "caller_ref"}
	unitCols      = []string{"device_id", "ts", "msg_id", "received_at", "geom", "ward_code", "kind", "status", "speed_kmh", "heading_deg"}
)

func nullWard(w string) any {
	if w == "" {
		return nil
	}
	return w
}

// slotted emits n reports of the devices in [from, from+span): slot by
// slot, each device once per slot at its own phase, until n are out. It
// returns the slot length (the reporting interval).
func slotted(devs []*device, n int, from time.Time, span time.Duration, emit func(d *device, ts time.Time, interval time.Duration) error) error {
	if n == 0 || len(devs) == 0 {
		return nil
	}
	slots := (n + len(devs) - 1) / len(devs)
	step := span / time.Duration(slots)
	done := 0
	for k := 0; k < slots && done < n; k++ {
		for _, d := range devs {
			if done == n {
				break
			}
			ts := from.Add(time.Duration(k)*step + time.Duration(d.phase*float64(step))).Truncate(time.Microsecond)
			if err := emit(d, ts, step); err != nil {
				return err
			}
			done++
		}
	}
	return nil
}

func trafficRow(rng *rand.Rand, d *device, ts time.Time, interval time.Duration) []any {
	speed, vol, occ := d.road.Reading(ts, interval, rng)
	return []any{d.id, ts, "", received(rng, ts), d.at.ewkb, nullWard(d.at.ward),
		float32(speed), int32(vol), float32(occ), int32(interval.Seconds()), d.lane, d.heading}
}

var unitStatuses = []struct {
	status string
	share  float64
}{{"available", 0.55}, {"dispatched", 0.05}, {"en_route", 0.15}, {"on_scene", 0.20}, {"out_of_service", 0.05}}

// unitRow moves a unit a little (a walk pulled back to its base) and
// reports it.
func unitRow(rng *rand.Rand, c *city, d *device, pos *place, ts time.Time, interval time.Duration) []any {
	x := rng.Float64()
	status := "available"
	for _, s := range unitStatuses {
		if x < s.share {
			status = s.status
			break
		}
		x -= s.share
	}
	var speed, heading any
	lon, lat := pos.lon, pos.lat
	if status == "en_route" || status == "available" && rng.IntN(3) == 0 {
		kmh := (25 + rng.Float64()*25) * (1 - 0.5*sim.LoadFactor(ts, true))
		speed = float32(math.Round(kmh*10) / 10)
		h := rng.Float64() * 2 * math.Pi
		heading = float32(math.Round(h * 180 / math.Pi))
		step := math.Min(kmh/3.6*interval.Seconds(), 1500) // metres
		lon += step * math.Sin(h) / 103_900
		lat += step * math.Cos(h) / 110_700
	} else {
		speed = float32(0)
	}
	lon += (d.at.lon - lon) * 0.1 // d.at is its base
	lat += (d.at.lat - lat) * 0.1
	*pos = c.at(lon, lat)
	return []any{d.id, ts, "", received(rng, ts), pos.ewkb, nullWard(pos.ward), d.unitKind, status, speed, heading}
}

var cameraMix = []struct {
	event, zone string
	share       float64
	count       [2]int
}{
	{"illegal_parking", "sidewalk", 0.30, [2]int{1, 6}},
	{"crowd", "junction", 0.25, [2]int{30, 330}},
	{"wrong_way", "lane-1", 0.12, [2]int{}},
	{"stalled_vehicle", "lane-2", 0.12, [2]int{}},
	{"intrusion", "", 0.06, [2]int{}},
	{"camera_tamper", "", 0.03, [2]int{}},
	{"flooding", "", 0.03, [2]int{}},
	{"accident", "", 0.03, [2]int{}},
	{"fire", "", 0.02, [2]int{}},
	{"smoke", "", 0.02, [2]int{}},
	{"fight", "", 0.02, [2]int{}},
}

func cameraRow(rng *rand.Rand, d *device, ts time.Time) []any {
	x := rng.Float64()
	m := cameraMix[0]
	for _, c := range cameraMix {
		if x < c.share {
			m = c
			break
		}
		x -= c.share
	}
	conf := 0.55 + rng.Float64()*0.44
	var count, snap, zone any
	if m.count[1] > 0 {
		count = int32(m.count[0] + rng.IntN(m.count[1]-m.count[0]))
	}
	if m.zone != "" {
		zone = m.zone
	}
	if rng.IntN(2) == 0 {
		snap = fmt.Sprintf("https://vms.hanoi.example/snap/%s/%d.jpg", d.id, ts.UnixMilli())
	}
	return []any{d.id, ts, "", received(rng, ts), d.at.ewkb, nullWard(d.at.ward), m.event, float32(math.Round(conf*100) / 100), count, snap, zone}
}

var notes = map[string][]string{
	"call_113": {"Đánh nhau trước quán karaoke", "Trộm xe máy", "Gây rối trật tự", "Cướp giật điện thoại"},
	"call_114": {"Cháy nhà dân, khói đen", "Chập điện cột điện", "Cháy xe máy trong hầm để xe", "Người mắc kẹt trong thang máy"},
	"call_115": {"Người già khó thở", "Ngã xe máy, chảy máu đầu", "Đau ngực dữ dội", "Trẻ em sốt cao co giật", "Ngất xỉu tại chợ"},
}

func emergencyRow(rng *rand.Rand, c *city, d *device, ts time.Time, seq int) []any {
	at := d.at
	var note, caller any
	typ, prio := "other", 3
	switch d.channel {
	case "call_113":
		typ, prio = "police", 2+rng.IntN(3)
	case "call_114":
		typ, prio = []string{"fire", "fire", "rescue", "hazmat"}[rng.IntN(4)], 1+rng.IntN(3)
	case "call_115":
		typ, prio = "medical", 1+rng.IntN(4)
	case "app":
		typ, prio = []string{"other", "panic", "medical"}[rng.IntN(3)], 3+rng.IntN(3)
	case "panic_button":
		typ, prio = "panic", 2
	case "fire_alarm":
		typ, prio = "fire", 2
	case "sensor":
		typ, prio = "flood", 3
	}
	if ns := notes[d.channel]; ns != nil {
		note = ns[rng.IntN(len(ns))]
	}
	if !d.fixed {
		at = c.random(rng)
		caller = fmt.Sprintf("%s-%06d", d.id[:5], seq%1_000_000)
	}
	return []any{d.id, ts, "", received(rng, ts), at.ewkb, nullWard(at.ward), typ, int16(prio), d.channel, note, caller}
}
