package alerts

import (
	"math"
	"slices"
	"strconv"
	"time"

	"ioc/ingest"
)

// Geo is what the engine needs to know about places. iocd adapts
// geo.Service to it; tests may pass nil (no wards, no geofences).
type Geo interface {
	Ward(lon, lat float64) (code string, ok bool)
	WardName(code string) string
	// InFence reports whether an active geofence tagged tag covers the point at t.
	InFence(tag string, lon, lat float64, t time.Time) bool
}

// Evidence is one observation that raised or joined an incident.
type Evidence struct {
	DeviceID   string         `json:"device_id"`
	Kind       string         `json:"kind"` // traffic, camera, emergency, silence, manual
	ObservedAt time.Time      `json:"observed_at"`
	MsgID      string         `json:"msg_id,omitempty"`
	Rule       string         `json:"rule,omitempty"`
	Location   *Point         `json:"location,omitempty"`
	Detail     map[string]any `json:"detail,omitempty"`
}

// Trigger is what the evaluator concludes from an observation: open or
// join an incident (Clear false), or a held condition has cleared.
type Trigger struct {
	Rule     string
	Kind     string // incident kind
	Severity string
	Title    string
	Lon, Lat float64
	Ward     string
	At       time.Time // observation time
	Evidence []Evidence
	// Condition: raised by a condition that holds (threshold, silence);
	// the incident resolves itself once every condition cleared.
	Condition bool
	ClearFor  time.Duration
	// Clear: the condition (Rule, DeviceID) no longer holds since At.
	Clear    bool
	DeviceID string
}

const (
	ruleThreshold = iota
	ruleCount
	ruleMatch
	ruleEmergency
	ruleSilence
)

const (
	fSpeed = iota
	fOccupancy
	fVolume
	fConfidence
	fCount
	fPriority
)

type ccond struct {
	field int
	op    string
	v     float64
}

type recentEvent struct {
	key      evKey
	lon, lat float64
	ts       time.Time
	ev       Evidence
}

type evKey struct {
	device string
	ts     int64
	msg    string
}

// crule is a rule compiled for evaluation.
type crule struct {
	r        *Rule
	typ      int
	events   uint32 // bit i: cameraEvents[i]; 0: any
	conds    []ccond
	slot     int // threshold state slot
	fslot    int // fence side slot (enter, exit)
	fence    *FenceCond
	emKinds  map[string]string
	emSev    [6]string
	hold     time.Duration
	clearFor time.Duration
	window   time.Duration
	recent   []recentEvent // count rules
}

// evaluator holds the rules and the per-device and per-rule state. It is
// used by one goroutine only (the engine's evaluation loop).
type evaluator struct {
	set     *RuleSet
	geo     Geo
	byKind  map[ingest.Kind][]*crule
	nThresh int
	nFence  int
	needDev map[ingest.Kind]bool
	devices map[string]*devState
}

type devState struct {
	lastTS time.Time
	th     []thState
	fence  []fenceSide
}

// fenceSide is where a device was, for one enter/exit rule, at its
// previous matching observation.
type fenceSide uint8

const (
	// sideUnknown: no matching observation yet since the evaluator was
	// compiled (a new device, a restart, a rule change). The first one
	// only records the side: a unit already in the zone has not entered.
	sideUnknown fenceSide = iota
	sideOutside
	sideInside
)

type thState struct {
	since time.Time
	fired bool
}

var eventBit = func() map[string]uint32 {
	m := map[string]uint32{}
	for i, e := range cameraEvents {
		m[e] = 1 << i
	}
	return m
}()

func compile(set *RuleSet, g Geo) *evaluator {
	ev := &evaluator{set: set, geo: g, byKind: map[ingest.Kind][]*crule{}, devices: map[string]*devState{}, needDev: map[ingest.Kind]bool{}}
	for i := range set.Rules {
		r := &set.Rules[i]
		if r.Disabled {
			continue
		}
		c := &crule{r: r, fence: r.Geofence, hold: r.Hold.Std(), clearFor: r.ClearFor.Std(), window: r.Window.Std()}
		for _, e := range r.Events {
			c.events |= eventBit[e]
		}
		for _, w := range r.Where {
			c.conds = append(c.conds, ccond{field: slices.Index(condFields, w.Field), op: w.Op, v: w.Value})
		}
		if r.MinConfidence > 0 {
			c.conds = append(c.conds, ccond{field: fConfidence, op: ">=", v: r.MinConfidence})
		}
		src := ingest.Kind(r.Source)
		switch r.Type {
		case "threshold":
			c.typ, c.slot = ruleThreshold, ev.nThresh
			ev.nThresh++
			if src == "" {
				src = ingest.KindTraffic
			}
		case "count":
			c.typ = ruleCount
			if src == "" {
				src = ingest.KindCamera
			}
		case "match":
			c.typ = ruleMatch
			if src == "" {
				src = ingest.KindCamera
			}
		case "emergency":
			c.typ, src = ruleEmergency, ingest.KindEmergency
			c.emKinds = r.Types
			for p := 1; p <= 5; p++ {
				c.emSev[p] = r.SeverityByPriority[strconv.Itoa(p)]
			}
		case "silence":
			continue // the engine's ticker watches silence (devices table)
		}
		if src == "unit" {
			src = ingest.KindUnit
		}
		if c.fence != nil && c.fence.Mode != "inside" {
			c.fslot = ev.nFence
			ev.nFence++
			ev.needDev[src] = true
		}
		if c.typ == ruleThreshold {
			ev.needDev[src] = true
		}
		ev.byKind[src] = append(ev.byKind[src], c)
	}
	return ev
}

func field(o *ingest.Observation, f int) (float64, bool) {
	switch f {
	case fSpeed:
		return o.SpeedKmh, o.Kind == ingest.KindTraffic || o.HasSpeed
	case fOccupancy:
		return o.Occupancy, o.Kind == ingest.KindTraffic
	case fVolume:
		return float64(o.Volume), o.Kind == ingest.KindTraffic
	case fConfidence:
		return o.Confidence, o.Kind == ingest.KindCamera
	case fCount:
		return float64(o.Count), o.HasCount
	case fPriority:
		return float64(o.Priority), o.Kind == ingest.KindEmergency
	}
	return 0, false
}

func (c *crule) matches(o *ingest.Observation) bool {
	if c.events != 0 && c.events&eventBit[o.Event] == 0 {
		return false
	}
	for _, k := range c.conds {
		v, ok := field(o, k.field)
		if !ok {
			return false
		}
		switch k.op {
		case "<":
			ok = v < k.v
		case "<=":
			ok = v <= k.v
		case ">":
			ok = v > k.v
		case ">=":
			ok = v >= k.v
		case "==":
			ok = v == k.v
		}
		if !ok {
			return false
		}
	}
	return true
}

func (ev *evaluator) device(id string) *devState {
	d := ev.devices[id]
	if d == nil {
		d = &devState{}
		if ev.nThresh > 0 {
			d.th = make([]thState, ev.nThresh)
		}
		if ev.nFence > 0 {
			d.fence = make([]fenceSide, ev.nFence)
		}
		ev.devices[id] = d
	}
	return d
}

// observe evaluates one observation against every rule of its kind and
// calls emit for each conclusion.
func (ev *evaluator) observe(o *ingest.Observation, emit func(Trigger)) {
	rules := ev.byKind[o.Kind]
	if len(rules) == 0 {
		return
	}
	var d *devState
	fresh := true
	if ev.needDev[o.Kind] {
		d = ev.device(o.DeviceID)
		// Readings older than the device's latest (late or replayed) do
		// not move its windows.
		fresh = o.TS.After(d.lastTS)
	}
	for _, c := range rules {
		if !fresh && (c.typ == ruleThreshold || (c.fence != nil && c.fence.Mode != "inside")) {
			continue
		}
		switch c.typ {
		case ruleThreshold:
			ev.threshold(c, d, o, emit)
		case ruleMatch:
			if c.matches(o) && ev.fenceOK(c, d, o) {
				emit(newTrigger(c, o, c.r.IncidentKind, c.r.Severity, []Evidence{evidenceOf(o, c.r.ID)}))
			}
		case ruleEmergency:
			if o.Settled {
				continue // its incident committed with it (Engine.InTx)
			}
			if t, ok := emergencyTrigger(c, o); ok {
				emit(t)
			}
		case ruleCount:
			if c.matches(o) && ev.fenceOK(c, d, o) {
				ev.count(c, o, emit)
			}
		}
	}
	if d != nil && fresh {
		d.lastTS = o.TS
	}
}

func (ev *evaluator) fenceOK(c *crule, d *devState, o *ingest.Observation) bool {
	if c.fence == nil {
		return true
	}
	in := ev.geo != nil && ev.geo.InFence(c.fence.Tag, o.Lon, o.Lat, o.TS)
	if c.fence.Mode == "inside" {
		return in
	}
	if d == nil {
		d = ev.device(o.DeviceID)
	}
	was := d.fence[c.fslot]
	d.fence[c.fslot] = sideOutside
	if in {
		d.fence[c.fslot] = sideInside
	}
	if c.fence.Mode == "enter" {
		return in && was == sideOutside
	}
	return !in && was == sideInside
}

func (ev *evaluator) threshold(c *crule, d *devState, o *ingest.Observation, emit func(Trigger)) {
	st := &d.th[c.slot]
	ok := c.matches(o) && ev.fenceOK(c, d, o)
	// A long gap in the readings breaks the window: the condition was not
	// observed to hold through it.
	if !st.since.IsZero() && !d.lastTS.IsZero() {
		gap := max(c.hold/2, 2*time.Duration(o.IntervalS)*time.Second)
		if o.TS.Sub(d.lastTS) > gap {
			st.since = time.Time{}
		}
	}
	if ok {
		if st.since.IsZero() {
			st.since = o.TS
		}
		if !st.fired && o.TS.Sub(st.since) >= c.hold {
			st.fired = true
			t := newTrigger(c, o, c.r.IncidentKind, c.r.Severity, []Evidence{evidenceOf(o, c.r.ID)})
			t.Condition, t.ClearFor, t.DeviceID = true, c.clearFor, o.DeviceID
			t.Evidence[0].Detail["held_since"] = st.since
			emit(t)
		}
		return
	}
	st.since = time.Time{}
	if st.fired {
		st.fired = false
		emit(Trigger{Rule: c.r.ID, Kind: c.r.IncidentKind, Clear: true, DeviceID: o.DeviceID, At: o.TS, ClearFor: c.clearFor})
	}
}

func (ev *evaluator) count(c *crule, o *ingest.Observation, emit func(Trigger)) {
	key := evKey{o.DeviceID, o.TS.UnixNano(), o.MsgID}
	cut := o.TS.Add(-c.window)
	kept := c.recent[:0]
	dup := false
	for _, e := range c.recent {
		if e.ts.Before(cut) && e.ts.Before(o.TS) {
			continue
		}
		if e.key == key {
			dup = true
		}
		kept = append(kept, e)
	}
	clear(c.recent[len(kept):])
	c.recent = kept
	if dup {
		return
	}
	if len(c.recent) >= 10000 { // bound memory under a flood of matching events
		c.recent = c.recent[1:]
	}
	c.recent = append(c.recent, recentEvent{key: key, lon: o.Lon, lat: o.Lat, ts: o.TS, ev: evidenceOf(o, c.r.ID)})
	var near []Evidence
	for _, e := range c.recent {
		if e.ts.After(o.TS.Add(c.window)) || e.ts.Before(cut) {
			continue
		}
		if distanceM(o.Lon, o.Lat, e.lon, e.lat) <= c.r.RadiusM {
			near = append(near, e.ev)
		}
	}
	if len(near) >= c.r.Count {
		emit(newTrigger(c, o, c.r.IncidentKind, c.r.Severity, near))
	}
}

// emergencyTrigger is what emergency rule c makes of signal o: every
// signal of a mapped type opens or joins at once, its severity from its
// priority. It reads nothing but c and o.
func emergencyTrigger(c *crule, o *ingest.Observation) (Trigger, bool) {
	kind, ok := c.emKinds[o.Type]
	if !ok || o.Priority < 1 || o.Priority > 5 {
		return Trigger{}, false
	}
	return newTrigger(c, o, kind, c.emSev[o.Priority], []Evidence{evidenceOf(o, c.r.ID)}), true
}

func newTrigger(c *crule, o *ingest.Observation, kind, sev string, evidence []Evidence) Trigger {
	title := c.r.Title
	if title == "" {
		title = kind
	}
	return Trigger{Rule: c.r.ID, Kind: kind, Severity: sev, Title: title, Lon: o.Lon, Lat: o.Lat, Ward: o.Ward,
		At: o.TS, Evidence: evidence, DeviceID: o.DeviceID}
}

func evidenceOf(o *ingest.Observation, rule string) Evidence {
	e := Evidence{DeviceID: o.DeviceID, Kind: string(o.Kind), ObservedAt: o.TS, MsgID: o.MsgID, Rule: rule,
		Location: &Point{Type: "Point", Coordinates: [2]float64{o.Lon, o.Lat}}}
	switch o.Kind {
	case ingest.KindTraffic:
		e.Detail = map[string]any{"speed_kmh": o.SpeedKmh, "occupancy": o.Occupancy, "volume": o.Volume}
	case ingest.KindCamera:
		e.Detail = map[string]any{"event": o.Event, "confidence": o.Confidence}
		if o.HasCount {
			e.Detail["count"] = o.Count
		}
		if o.SnapshotURL != "" {
			e.Detail["snapshot_url"] = o.SnapshotURL
		}
	case ingest.KindEmergency:
		e.Detail = map[string]any{"type": o.Type, "priority": o.Priority, "channel": o.Channel}
		if o.Note != "" {
			e.Detail["note"] = o.Note
		}
		if o.CallerRef != "" {
			e.Detail["caller_ref"] = o.CallerRef
		}
	default:
		e.Detail = map[string]any{}
	}
	return e
}

// distanceM is the great-circle distance in metres (spherical earth, as
// PostGIS geography with use_spheroid=false).
func distanceM(lon1, lat1, lon2, lat2 float64) float64 {
	const r = 6371008.8
	const rad = math.Pi / 180
	p1, p2 := lat1*rad, lat2*rad
	dp, dl := (lat2-lat1)*rad/2, (lon2-lon1)*rad/2
	a := math.Sin(dp)*math.Sin(dp) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl)*math.Sin(dl)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
