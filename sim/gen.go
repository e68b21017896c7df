package sim

import (
	"container/heap"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"
)

// What a schedule entry does.
type actKind uint8

const (
	actSensor actKind = iota
	actCameraEvent
	actCameraHeartbeat
	actSourceSignal
	actSourceHeartbeat
	actUnit
)

const (
	cameraEventMean   = 10 * time.Minute
	heartbeatInterval = 5 * time.Minute
)

type entry struct {
	due  time.Time
	ord  uint64 // ties broken by insertion order, for repeatability
	kind actKind
	idx  int
}

type schedule []entry

func (h schedule) Len() int { return len(h) }
func (h schedule) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].ord < h[j].ord
}
func (h schedule) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *schedule) Push(x any)   { *h = append(*h, x.(entry)) }
func (h *schedule) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// generator decides what is published and when. One goroutine owns it.
type generator struct {
	cfg   *Config
	rng   *rand.Rand
	city  *city
	dev   *devices
	start time.Time // simulated time at the start of Run
	runID string
	seq   uint64
	ord   uint64
	sched schedule

	script    []scripted // sorted by time
	scriptPos int
	scenarios []*scenario
	truth     *json.Encoder

	reasons []string // BadReasons that have at least one case (all, today)
	clock   clock
}

// clock is the wall clock; tests substitute one that jumps instead of
// sleeping, so a simulated hour takes no time.
type clock interface {
	now() time.Time
	sleep(ctx context.Context, d time.Duration) bool
}

type wallClock struct{}

func (wallClock) now() time.Time                                  { return time.Now() }
func (wallClock) sleep(ctx context.Context, d time.Duration) bool { return sleep(ctx, d) }

func (g *generator) nextID() string {
	g.seq++
	return g.runID + "-" + strconv.FormatUint(g.seq, 36)
}

func (g *generator) push(due time.Time, k actKind, idx int) {
	g.ord++
	heap.Push(&g.sched, entry{due: due, ord: g.ord, kind: k, idx: idx})
}

// initSchedule spreads the first reports over one interval so the run does
// not start with every sensor at once.
func (g *generator) initSchedule() {
	span := func(d time.Duration) time.Time { return g.start.Add(time.Duration(g.rng.Int64N(int64(d)))) }
	for i := range g.dev.sensors {
		g.push(span(g.cfg.SensorInterval), actSensor, i)
	}
	for i := range g.dev.cameras {
		g.push(g.start.Add(expDuration(g.rng, cameraEventMean)), actCameraEvent, i)
		g.push(span(heartbeatInterval).Add(time.Minute), actCameraHeartbeat, i)
	}
	for i, s := range g.dev.sources {
		if s.mean > 0 {
			g.push(g.start.Add(expDuration(g.rng, s.mean)), actSourceSignal, i)
		}
		if s.fixed {
			g.push(span(heartbeatInterval), actSourceHeartbeat, i)
		}
	}
	for i := range g.dev.units {
		g.push(span(g.cfg.UnitInterval), actUnit, i)
	}
}

// act runs one schedule entry whose time has come; at is the time the
// message carries (the entry's own time when following the schedule, the
// clock when a rate drives the run). It returns the message, if any, and
// reschedules the entry.
func (g *generator) act(e entry, at time.Time) (Message, bool) {
	var (
		m    Message
		ok   = true
		next time.Time
	)
	id := g.nextID()
	switch e.kind {
	case actSensor:
		s := g.dev.sensors[e.idx]
		next = e.due.Add(g.cfg.SensorInterval)
		m, ok = g.sensorReport(s, id, at)
	case actCameraEvent:
		c := g.dev.cameras[e.idx]
		next = e.due.Add(expDuration(g.rng, cameraEventMean))
		m = Message{Kind: KindCamera, Device: c.id,
			Payload: encodeCamera(nil, id, at, c.tsf, c.pos, cameraEvent(g.rng, c, at))}
	case actCameraHeartbeat:
		c := g.dev.cameras[e.idx]
		next = e.due.Add(heartbeatInterval)
		m = Message{Kind: KindStatus, Device: c.id, Payload: encodeStatus(nil, id, at, c.tsf, true)}
	case actSourceSignal:
		s := g.dev.sources[e.idx]
		next = e.due.Add(expDuration(g.rng, s.mean))
		f, pos := emergencySignal(g.rng, g.city, s, g.seq)
		m = Message{Kind: KindEmergency, Device: s.id, Payload: encodeEmergency(nil, id, at, s.tsf, pos, f)}
	case actSourceHeartbeat:
		s := g.dev.sources[e.idx]
		next = e.due.Add(heartbeatInterval)
		m = Message{Kind: KindStatus, Device: s.id, Payload: encodeStatus(nil, id, at, s.tsf, true)}
	case actUnit:
		u := g.dev.units[e.idx]
		next = e.due.Add(g.cfg.UnitInterval)
		u.advance(at, g.city, g.rng)
		m = Message{Kind: KindUnits, Device: u.id, Payload: encodeUnit(nil, id, at, u.tsf, u.pos, u.fields())}
	}
	g.push(next, e.kind, e.idx)
	if !ok {
		return Message{}, false
	}
	if m.Topic == "" {
		m.Topic = topic(g.cfg.Prefix, m.Kind, m.Device)
	}
	if m.ID == "" {
		m.ID = id
	}
	m.TS = at
	if m.Items == 0 {
		m.Items = 1
	}
	return m, true
}

func (g *generator) sensorReport(s *sensor, id string, at time.Time) (Message, bool) {
	r := s.normalReading(at, g.cfg.SensorInterval, g.rng)
	if s.congestion != nil {
		var jammed bool
		r, jammed = s.congestion.override(s, at, g.cfg.SensorInterval, g.rng, r)
		if jammed {
			sc := s.congestion.sc
			sc.truth.Messages = append(sc.truth.Messages, id)
			sc.sent = true
		}
	}
	f := TrafficFields{SpeedKmh: r.SpeedKmh, Volume: r.Volume, Occupancy: r.Occupancy,
		IntervalS: int(g.cfg.SensorInterval / time.Second), Lane: s.lane, HeadingDeg: s.heading}
	obj := encodeTraffic(nil, id, at, s.tsf, s.pos, f)
	var scen string
	if s.congestion != nil {
		scen = ScenarioCongestion // never replaced by a malformed message
	}
	if g.cfg.Batch <= 1 {
		return Message{Kind: KindTraffic, Device: s.id, Payload: obj, ID: id, Scenario: scen}, true
	}
	// A gateway that buffers a sensor's readings and sends them together.
	s.pending = append(s.pending, obj)
	if len(s.pending) < g.cfg.Batch {
		return Message{}, false
	}
	n := 2
	for _, p := range s.pending {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, p := range s.pending {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	b = append(b, ']')
	items := len(s.pending)
	s.pending = s.pending[:0]
	return Message{Kind: KindTraffic, Device: s.id, Payload: b, ID: id, Items: items, Scenario: scen}, true
}

// bad replaces a background message by a malformed one. The reason is
// drawn evenly from the corpus, then one of its cases; when the case does
// not fit the message's kind (an unknown unit status for a traffic sensor)
// it is made about another device of a kind it fits.
func (g *generator) bad(m Message) Message {
	cases := casesByReason[g.reasons[g.rng.IntN(len(g.reasons))]]
	c := cases[g.rng.IntN(len(cases))]
	in := &badInput{prefix: g.cfg.Prefix, kind: m.Kind, device: m.Device, id: m.ID, ts: m.TS, rng: g.rng}
	in.pos = g.positionOf(m)
	if !c.applies(m.Kind) {
		in.kind = c.kinds[g.rng.IntN(len(c.kinds))]
		if !g.someDevice(in) {
			c = casesByReason["bad_json"][0] // no device of that kind in this run
			in.kind, in.device, in.pos = m.Kind, m.Device, g.positionOf(m)
		}
	}
	b := makeBad(c, in)
	b.TS = m.TS
	return b
}

// someDevice fills in a random device of in.kind and its position.
func (g *generator) someDevice(in *badInput) bool {
	d := g.dev
	switch in.kind {
	case KindTraffic:
		if len(d.sensors) > 0 {
			s := d.sensors[g.rng.IntN(len(d.sensors))]
			in.device, in.pos = s.id, s.pos
			return true
		}
	case KindCamera:
		if len(d.cameras) > 0 {
			c := d.cameras[g.rng.IntN(len(d.cameras))]
			in.device, in.pos = c.id, c.pos
			return true
		}
	case KindEmergency:
		s := d.sources[g.rng.IntN(len(d.sources))] // the call centres always exist
		in.device, in.pos = s.id, s.pos
		if !s.fixed {
			in.pos = g.city.randomPoint(g.rng)
		}
		return true
	case KindUnits:
		if len(d.units) > 0 {
			u := d.units[g.rng.IntN(len(d.units))]
			in.device, in.pos = u.id, u.pos
			return true
		}
	}
	return false
}

// positionOf reads a message's own position back (cheap enough: only for
// the few messages turned malformed).
func (g *generator) positionOf(m Message) Point {
	var v struct{ Lat, Lon float64 }
	if len(m.Payload) == 0 || m.Payload[0] == '[' ||
		json.Unmarshal(m.Payload, &v) != nil || (v.Lat == 0 && v.Lon == 0) {
		return Point{Lon: 105.8542, Lat: 21.0285} // Hoàn Kiếm, e.g. for a status message
	}
	return Point{Lon: v.Lon, Lat: v.Lat}
}

// pacer says when the next message may go and what time it carries.
type pacer struct {
	cfg       *Config
	wallStart time.Time
	simStart  time.Time
	sent      int64
}

func (p *pacer) sim(wall time.Time) time.Time {
	return p.simStart.Add(time.Duration(float64(wall.Sub(p.wallStart)) * p.cfg.ClockSpeed))
}

func (p *pacer) wall(sim time.Time) time.Time {
	return p.wallStart.Add(time.Duration(float64(sim.Sub(p.simStart)) / p.cfg.ClockSpeed))
}

// run generates until ctx ends, the duration or the count is reached, or
// emit refuses a message (its context ended).
func (g *generator) run(ctx context.Context, emit func(Message) bool) {
	clk := g.clock
	if clk == nil {
		clk = wallClock{}
	}
	p := &pacer{cfg: g.cfg, wallStart: clk.now(), simStart: g.start}
	var deadline time.Time
	if g.cfg.Duration > 0 {
		deadline = p.wallStart.Add(g.cfg.Duration)
	}
	natural := g.cfg.Rate < 0
	var iter int
	send := func(m Message) bool {
		p.sent++
		return emit(m)
	}
	defer g.finishTruth()
	for {
		if ctx.Err() != nil || (g.cfg.Count > 0 && p.sent >= g.cfg.Count) {
			return
		}
		now := clk.now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return
		}
		// Pace by rate first: the time a message carries is when it leaves.
		if g.cfg.Rate > 0 {
			due := p.wallStart.Add(time.Duration(float64(p.sent) / g.cfg.Rate * float64(time.Second)))
			if wait := due.Sub(now); wait > time.Millisecond {
				if !clk.sleep(ctx, min(wait, 100*time.Millisecond)) {
					return
				}
				continue
			}
		}
		simNow := p.sim(now)
		if iter++; iter&255 == 0 {
			g.settle(simNow)
		}
		if g.scriptPos < len(g.script) && !g.script[g.scriptPos].at.After(simNow) {
			s := g.script[g.scriptPos]
			g.scriptPos++
			m := s.msg
			m.Scenario = s.sc.truth.Scenario
			s.sc.truth.Messages = append(s.sc.truth.Messages, m.ID)
			s.sc.pending--
			s.sc.sent = true
			if !send(m) {
				return
			}
			continue
		}
		if len(g.sched) == 0 {
			if !clk.sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		top := g.sched[0]
		at := simNow
		if natural {
			if top.due.After(simNow) {
				g.settle(simNow)
				wake := top.due
				if g.scriptPos < len(g.script) && g.script[g.scriptPos].at.Before(wake) {
					wake = g.script[g.scriptPos].at
				}
				if !clk.sleep(ctx, min(p.wall(wake).Sub(now), 100*time.Millisecond)) {
					return
				}
				continue
			}
			at = top.due
		}
		heap.Pop(&g.sched)
		m, ok := g.act(top, at)
		if !ok {
			continue
		}
		if g.cfg.BadRatio > 0 && m.Scenario == "" && g.rng.Float64() < g.cfg.BadRatio {
			m = g.bad(m)
		}
		if !send(m) {
			return
		}
	}
}

// settle writes the truth of scenarios that are over.
func (g *generator) settle(simNow time.Time) {
	for _, sc := range g.scenarios {
		if !sc.written && sc.pending == 0 && sc.end.Before(simNow) {
			g.writeTruth(sc, true)
		}
	}
}

// finishTruth writes what the run got through of unfinished scenarios.
func (g *generator) finishTruth() {
	for _, sc := range g.scenarios {
		if !sc.written && sc.sent {
			g.writeTruth(sc, false)
		}
	}
}

func (g *generator) writeTruth(sc *scenario, complete bool) {
	if err := writeTruth(g.truth, sc, complete); err != nil {
		g.cfg.Logger.Error("write truth", "scenario", sc.truth.Scenario, "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
