package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// unit is a responder vehicle. Without a road network it drives L-shaped
// routes with jittered corners (Hanoi's grid is not that regular, but the
// speeds and the turns look like driving), at speeds that drop with the
// traffic load, and cycles through the contract's statuses:
//
//	available (parked or patrolling) → dispatched (crew boarding, ~1 min)
//	→ en_route → on_scene (5–25 min) → available (driving back to base)
//	and now and then out_of_service after a job.
type unit struct {
	id, kind  string
	base, pos Point
	status    string
	path      []Point // waypoints still to reach
	speed     float64 // cruising speed on the current leg, km/h
	curSpeed  float64 // last reported speed
	heading   float64
	until     time.Time // when the current status ends (idle, boarding, on scene)
	last      time.Time
	patrols   bool
	tsf       tsFormat
}

var unitMix = []struct {
	kind, prefix string
	share        float64
}{
	{"ambulance", "amb", 0.30},
	{"police", "pol", 0.25},
	{"traffic_police", "tp", 0.20},
	{"fire", "fire", 0.15},
	{"rescue", "res", 0.10},
}

func buildUnits(n int, c *city, hospitals []Point, rng *rand.Rand) []*unit {
	var us []*unit
	for _, m := range unitMix {
		k := int(math.Round(float64(n) * m.share))
		if m.kind == "ambulance" {
			k = n - int(math.Round(float64(n)*0.70)) // the rest, so the total is n
		}
		for i := range k {
			u := &unit{id: fmt.Sprintf("%s-%03d", m.prefix, i+1), kind: m.kind, status: "available"}
			if m.kind == "ambulance" && len(hospitals) > 0 {
				u.base = hospitals[rng.IntN(len(hospitals))]
			} else {
				u.base = c.randomPoint(rng)
			}
			u.pos = u.base
			u.patrols = m.kind == "police" || m.kind == "traffic_police"
			u.heading = math.Round(rng.Float64() * 359)
			us = append(us, u)
		}
	}
	return us
}

// advance moves the unit to simulated time t and updates its status.
func (u *unit) advance(t time.Time, c *city, rng *rand.Rand) {
	if u.last.IsZero() {
		u.last = t
		u.until = t.Add(expDuration(rng, 90*time.Minute))
		return
	}
	dt := t.Sub(u.last)
	if dt <= 0 {
		return
	}
	u.last = t
	u.move(dt, t, rng)

	switch u.status {
	case "available":
		if !t.Before(u.until) && len(u.path) == 0 {
			u.status = "dispatched"
			u.until = t.Add(time.Duration(30+rng.IntN(60)) * time.Second)
			u.path = route(u.pos, u.destination(c, rng), rng)
			u.curSpeed = 0
		} else if u.patrols && len(u.path) == 0 && rng.IntN(20) == 0 {
			u.path = route(u.pos, offset(u.pos, (rng.Float64()-0.5)*3000, (rng.Float64()-0.5)*3000), rng)
			u.speed = 15 + rng.Float64()*15
		}
	case "dispatched":
		if !t.Before(u.until) {
			u.status = "en_route"
			u.speed = 30 + rng.Float64()*20
		}
	case "en_route":
		if len(u.path) == 0 {
			u.status = "on_scene"
			u.until = t.Add(time.Duration(5+rng.IntN(20)) * time.Minute)
		}
	case "on_scene":
		if !t.Before(u.until) {
			u.status = "available"
			if rng.IntN(30) == 0 {
				u.status = "out_of_service"
			}
			u.path = route(u.pos, u.base, rng)
			u.speed = 20 + rng.Float64()*15
			u.until = t.Add(time.Duration(20+rng.IntN(40)) * time.Minute)
			if u.status == "available" {
				u.until = t.Add(expDuration(rng, 90*time.Minute))
			}
		}
	case "out_of_service":
		if !t.Before(u.until) && len(u.path) == 0 {
			u.status = "available"
			u.until = t.Add(expDuration(rng, 90*time.Minute))
		}
	}
}

// move drives along the path for dt at the leg's speed, slowed by traffic
// (emergency vehicles less so) and now and then stopped at a light.
func (u *unit) move(dt time.Duration, t time.Time, rng *rand.Rand) {
	if len(u.path) == 0 || u.status == "dispatched" || u.status == "on_scene" {
		u.curSpeed = 0
		return
	}
	slow := 0.6
	if u.status == "en_route" {
		slow = 0.3
	}
	v := u.speed * (1 - slow*loadFactor(t, true)) * (0.85 + rng.Float64()*0.3)
	if rng.IntN(8) == 0 {
		v = 0 // a red light or a jam
	}
	u.curSpeed = math.Round(v*10) / 10
	left := v / 3.6 * dt.Seconds()
	for left > 0 && len(u.path) > 0 {
		next := u.path[0]
		d := distance(u.pos, next)
		if d > 0.5 {
			u.heading = math.Round(bearing(u.pos, next))
		}
		if d <= left {
			u.pos = next
			u.path = u.path[1:]
			left -= d
			continue
		}
		f := left / d
		u.pos = Point{Lon: u.pos.Lon + (next.Lon-u.pos.Lon)*f, Lat: u.pos.Lat + (next.Lat-u.pos.Lat)*f}
		left = 0
	}
}

// destination is a job site 0.5–6 km from the unit, inside the city.
func (u *unit) destination(c *city, rng *rand.Rand) Point {
	for range 20 {
		r := 500 + rng.Float64()*5500
		a := rng.Float64() * 2 * math.Pi
		p := offset(u.pos, r*math.Sin(a), r*math.Cos(a))
		if c.wardAt(p) != nil {
			return p
		}
	}
	return c.randomPoint(rng)
}

// route is an L-shaped path from a to b with jittered corners every few
// hundred metres.
func route(a, b Point, rng *rand.Rand) []Point {
	corner := Point{Lon: b.Lon, Lat: a.Lat}
	if rng.IntN(2) == 0 {
		corner = Point{Lon: a.Lon, Lat: b.Lat}
	}
	var path []Point
	for _, leg := range [][2]Point{{a, corner}, {corner, b}} {
		n := 1 + int(distance(leg[0], leg[1])/400)
		for i := 1; i <= n; i++ {
			f := float64(i) / float64(n)
			p := Point{Lon: leg[0].Lon + (leg[1].Lon-leg[0].Lon)*f, Lat: leg[0].Lat + (leg[1].Lat-leg[0].Lat)*f}
			if i < n {
				p = offset(p, (rng.Float64()-0.5)*60, (rng.Float64()-0.5)*60)
			}
			path = append(path, p)
		}
	}
	return path
}

func (u *unit) fields() UnitFields {
	return UnitFields{Kind: u.kind, Status: u.status, SpeedKmh: u.curSpeed, HeadingDeg: u.heading}
}
