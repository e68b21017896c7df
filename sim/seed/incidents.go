package seed

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// kindSpec is how one kind of incident happens and is handled.
type kindSpec struct {
	kind    string
	weight  float64
	rhythm  func(time.Time) float64
	sev     [4]float64 // minor, moderate, severe, extreme
	rule    string     // rule that opens it; "" for the emergency rule's
	source  string     // evidence: traffic, camera, emergency, silence
	camera  float64    // share seen by a camera rule instead (source emergency)
	auto    bool       // resolves itself when its condition clears
	dispP   float64    // share dispatched
	units   []string   // unit kinds sent
	resolve time.Duration
	title   string
}

var kinds = []kindSpec{
	{"traffic_congestion", 0.28, rhythmTraffic, [4]float64{0, 0.85, 0.15, 0}, "congestion", "traffic", 0, true, 0.08, []string{"traffic_police"}, 35 * time.Minute, "Ùn tắc giao thông"},
	{"device_offline", 0.05, rhythmFlat, [4]float64{1, 0, 0, 0}, "device-offline", "silence", 0, true, 0, nil, 25 * time.Minute, "Thiết bị mất kết nối"},
	{"medical", 0.16, rhythmActivity, [4]float64{0.25, 0.4, 0.25, 0.1}, "", "emergency", 0, false, 0.92, []string{"ambulance"}, 50 * time.Minute, ""},
	{"crime", 0.10, rhythmNight, [4]float64{0.1, 0.55, 0.3, 0.05}, "", "emergency", 0.3, false, 0.8, []string{"police"}, 40 * time.Minute, ""},
	{"accident", 0.09, rhythmTraffic, [4]float64{0, 0.3, 0.6, 0.1}, "", "emergency", 0.4, false, 0.9, []string{"ambulance", "traffic_police"}, 55 * time.Minute, ""},
	{"fire", 0.05, rhythmEvening, [4]float64{0, 0.15, 0.6, 0.25}, "", "emergency", 0.3, false, 0.95, []string{"fire"}, 90 * time.Minute, ""},
	{"crowd", 0.07, rhythmEvening, [4]float64{0, 0.8, 0.2, 0}, "crowd-cluster", "camera", 0, false, 0.3, []string{"police"}, 60 * time.Minute, "Tụ tập đông người"},
	{"flooding", 0.06, rhythmFlood, [4]float64{0, 0.7, 0.3, 0}, "", "emergency", 0.5, false, 0.5, []string{"rescue"}, 3 * time.Hour, ""},
	{"rescue", 0.04, rhythmActivity, [4]float64{0, 0.3, 0.5, 0.2}, "", "emergency", 0, false, 0.95, []string{"rescue", "fire"}, 80 * time.Minute, ""},
	{"hazmat", 0.01, rhythmActivity, [4]float64{0, 0.1, 0.6, 0.3}, "", "emergency", 0, false, 1, []string{"fire"}, 2 * time.Hour, ""},
}

var cameraRules = map[string]struct{ rule, event, title string }{
	"crime":    {"camera-fight", "fight", "Ẩu đả (camera)"},
	"accident": {"camera-accident", "accident", "Tai nạn giao thông (camera)"},
	"fire":     {"camera-fire", "fire", "Cháy / khói (camera)"},
	"flooding": {"camera-flooding", "flooding", "Ngập úng (camera)"},
}

var emergencyChannel = map[string]string{"medical": "call_115", "crime": "call_113", "accident": "call_115",
	"fire": "call_114", "flooding": "call_114", "rescue": "call_114", "hazmat": "call_114"}

var emergencyTitle = map[string][]string{
	"medical": notes["call_115"], "crime": notes["call_113"], "fire": notes["call_114"][:3],
	"accident": {"Tai nạn giao thông, có người bị thương", "Va chạm xe máy và ô tô"},
	"flooding": {"Ngập sâu, xe chết máy", "Nước tràn vào nhà dân"},
	"rescue":   {"Người mắc kẹt trong thang máy", "Người rơi xuống hồ"},
	"hazmat":   {"Rò rỉ khí gas", "Tràn hóa chất trên đường"},
}

var severities = []string{"minor", "moderate", "severe", "extreme"}

// Response: median time to acknowledge by severity (operators on a
// normal shift), the escalation timers of the default rules, and the
// share of incidents people close as false alarms or duplicates.
var (
	ackMedian   = [4]time.Duration{90 * time.Second, 40 * time.Second, 30 * time.Second, 20 * time.Second}
	escalateAft = [4]time.Duration{30 * time.Minute, 10 * time.Minute, 3 * time.Minute, time.Minute}
)

var operators = []string{"op.lan", "op.minh", "op.huong", "op.tuan", "op.thao", "op.duc", "op.mai", "op.khanh",
	"op.trang", "op.hieu", "op.linh", "op.quang", "sup.ha", "sup.son"}

var (
	incidentCols = []string{"id", "kind", "severity", "status", "resolution", "title", "geom", "ward_code", "opened_by",
		"auto_resolve", "opened_at", "updated_at", "acknowledged_at", "dispatched_at", "resolved_at", "last_evidence_at",
		"escalation_level", "escalated_at", "units", "version", "evidence_count"}
	timelineCols = []string{"incident_id", "at", "actor", "action", "detail"}
	evidenceCols = []string{"incident_id", "device_id", "ts", "msg_id", "kind", "rule_id", "added_at", "detail", "geom"}
)

// incidentRows makes one incident opened at t, with its timeline and
// evidence rows, as the engine and the operators would have left them
// at end (what happens after end has not happened).
func incidentRows(rng *rand.Rand, c *city, f *fleet, k *kindSpec, t, end time.Time,
	inc func([]any), tl func([]any), ev func([]any)) {
	id := incidentID(rng, t)
	sev := pick(rng, k.sev[:])
	rule, title, source := k.rule, k.title, k.source
	if source == "emergency" && rng.Float64() < k.camera {
		cr := cameraRules[k.kind]
		rule, title, source = cr.rule, cr.title, "camera"
	}
	manual := false
	if source == "emergency" {
		rule = "emergency"
		ts := emergencyTitle[k.kind]
		title = ts[rng.IntN(len(ts))]
		manual = rng.IntN(10) == 0 // a dispatcher typed it in from a call
	}
	// Where: at the device for fixed sources, the caller's position for calls.
	var at place
	var evDev *device
	switch source {
	case "traffic":
		evDev = f.sensors[rng.IntN(len(f.sensors))]
		at = evDev.at
	case "silence":
		if rng.IntN(4) == 0 || len(f.sensors) == 0 {
			evDev = f.cameras[rng.IntN(len(f.cameras))]
		} else {
			evDev = f.sensors[rng.IntN(len(f.sensors))]
		}
		at = evDev.at
	case "camera":
		evDev = f.cameras[rng.IntN(len(f.cameras))]
		at = evDev.at
	default:
		ch := emergencyChannel[k.kind]
		for _, s := range f.sources {
			if s.channel == ch {
				evDev = s
			}
		}
		at = c.random(rng)
	}
	openedBy := "rule:" + rule
	if manual {
		openedBy = operators[rng.IntN(len(operators))]
	}
	sevAt := sev
	detail := fmt.Sprintf(`{"kind":%q,"severity":%q}`, k.kind, severities[sev])
	tl([]any{id, t, openedBy, "opened", []byte(detail)})
	version := int64(1)
	updated := t
	happened := func(x time.Time) bool { return !x.After(end) }

	// Evidence: what opened it (a person's incident has none).
	lastEvidence := t
	evidence := 0 // the count the incidents table keeps (0410's trigger, off for the load)
	if !manual && evDev != nil {
		n := 1
		if source == "traffic" || k.kind == "crowd" {
			n = 1 + rng.IntN(3)
		}
		for i := range n {
			ets := t.Add(-time.Duration(n-i) * 47 * time.Second).Truncate(time.Microsecond)
			ev([]any{id, evDev.id, ets, id + "-" + strconv.Itoa(i), evidenceKind(source), rule, t, evidenceDetail(rng, source, k, evDev), at.ewkb})
			lastEvidence = t
		}
		evidence = n
	}

	// Acknowledge: slower at night and at the rush hours; some never
	// (conditions that clear before anyone looks).
	factor := 1.0
	if h := localHour(t); h < 6 || h >= 23 {
		factor = 1.5
	} else if rhythmTraffic(t) > 0.6 {
		factor = 1.2
	}
	ackAt := t.Add(lognormal(rng, time.Duration(float64(ackMedian[sev])*factor), 0.5)).Truncate(time.Microsecond)
	acked := !(k.auto && rng.Float64() < map[bool]float64{true: 0.6, false: 0.3}[k.kind == "device_offline"])
	var autoEnd time.Time
	if k.auto {
		autoEnd = t.Add(lognormal(rng, k.resolve, 0.7)).Truncate(time.Microsecond)
		if acked && autoEnd.Before(ackAt) {
			acked = false
		}
	}
	// Escalation while nobody acknowledged it.
	level := 0
	var escAt any
	waitUntil := ackAt
	if !acked {
		waitUntil = autoEnd
		if !k.auto {
			waitUntil = end.Add(time.Hour)
		}
	}
	for step := 1; step <= 2; step++ {
		at := t.Add(time.Duration(step) * escalateAft[sevAt])
		if !at.Before(waitUntil) || !happened(at) {
			break
		}
		level = step
		escAt = at
		d := fmt.Sprintf(`{"level":%d,"unacknowledged_for":%q`, step, at.Sub(t).Round(time.Second).String())
		if sevAt < 3 {
			d += fmt.Sprintf(`,"severity":{"from":%q,"to":%q}`, severities[sevAt], severities[sevAt+1])
			sevAt++
			version++
		}
		tl([]any{id, at, "system", "escalated", []byte(d + "}")})
		updated = at
	}
	status := "new"
	var ackA, dispA, resA, resolution any
	var units []string
	op := operators[rng.IntN(len(operators))]
	last := t
	if acked && happened(ackAt) {
		status, ackA, last = "acknowledged", ackAt, ackAt
		version++
		tl([]any{id, ackAt, op, "acknowledged", []byte("{}")})
		updated = ackAt
	}
	falseAlarm := !k.auto && rng.Float64() < 0.07
	dup := !k.auto && !falseAlarm && rng.Float64() < 0.03
	if acked && !falseAlarm && !dup && rng.Float64() < k.dispP {
		dispAt := ackAt.Add(lognormal(rng, 80*time.Second, 0.7)).Truncate(time.Microsecond)
		if happened(dispAt) && status == "acknowledged" {
			for i, uk := range k.units {
				if us := f.byUnitKind[uk]; len(us) > 0 && (i == 0 || rng.IntN(2) == 0) {
					units = append(units, us[rng.IntN(len(us))].id)
				}
			}
			b, _ := json.Marshal(map[string]any{"unit_ids": units})
			status, dispA, last = "dispatched", dispAt, dispAt
			version++
			tl([]any{id, dispAt, op, "dispatched", b})
			updated = dispAt
		}
	}
	if acked && status != "new" && rng.IntN(5) == 0 {
		cAt := last.Add(lognormal(rng, 3*time.Minute, 0.5)).Truncate(time.Microsecond)
		if happened(cAt) {
			tl([]any{id, cAt, op, "commented", []byte(`{"text":"Đã liên hệ người báo tin, đang theo dõi"}`)})
			updated = cAt
		}
	}
	// Resolve.
	var resAt time.Time
	actor, res := op, "handled"
	switch {
	case k.auto:
		resAt, actor = autoEnd, "rule:"+rule
	case falseAlarm || dup:
		resAt = last.Add(lognormal(rng, 5*time.Minute, 0.5)).Truncate(time.Microsecond)
		res = map[bool]string{true: "false_alarm", false: "duplicate"}[falseAlarm]
	case status == "new":
	default:
		resAt = last.Add(lognormal(rng, k.resolve, 0.6)).Truncate(time.Microsecond)
	}
	if !resAt.IsZero() && happened(resAt) && (status != "new" || k.auto) {
		status, resA, resolution = "resolved", resAt, res
		version++
		d := fmt.Sprintf(`{"resolution":%q}`, res)
		if k.auto {
			d = `{"resolution":"handled","reason":"condition cleared"}`
		}
		tl([]any{id, resAt, actor, "resolved", []byte(d)})
		updated = resAt
	}
	if units == nil {
		units = []string{}
	}
	inc([]any{id, k.kind, severities[sevAt], status, resolution, title, at.ewkb, nullWard(at.ward), openedBy,
		k.auto && !manual, t, updated, ackA, dispA, resA, lastEvidence, int32(level), escAt, units, version, int32(evidence)})
}

func evidenceKind(source string) string {
	if source == "silence" {
		return "silence"
	}
	return source
}

func evidenceDetail(rng *rand.Rand, source string, k *kindSpec, d *device) []byte {
	switch source {
	case "traffic":
		return fmt.Appendf(nil, `{"speed_kmh":%.1f,"occupancy":%.3f}`, 4+rng.Float64()*10, 0.61+rng.Float64()*0.3)
	case "camera":
		e := "crowd"
		if cr, ok := cameraRules[k.kind]; ok {
			e = cr.event
		}
		return fmt.Appendf(nil, `{"event":%q,"confidence":%.2f}`, e, 0.8+rng.Float64()*0.19)
	case "silence":
		return []byte(`{"silent_for":"5m0s"}`)
	}
	return fmt.Appendf(nil, `{"channel":%q,"priority":%d}`, d.channel, 1+rng.IntN(4))
}

func pick(rng *rand.Rand, w []float64) int {
	x := rng.Float64()
	for i, p := range w {
		if x < p {
			return i
		}
		x -= p
	}
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return 0
}

// incidentID is alerts' id format: 10 characters of milliseconds and 10
// random, Crockford base 32, from the seeded source.
func incidentID(rng *rand.Rand, t time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [20]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	x := rng.Uint64()
	for i := 19; i >= 10; i-- {
		b[i] = alphabet[x&31]
		x >>= 5
	}
	return string(b[:])
}

// planned is an incident to make: when and of what kind.
type planned struct {
	at   time.Time
	kind *kindSpec
}

// planIncidents draws n incidents in [from, from+span): a kind by weight
// and a time kept with the kind's rhythm at it (so the mix follows the
// hour and the season), in time order.
func planIncidents(rng *rand.Rand, n int, from time.Time, span time.Duration) []planned {
	w := make([]float64, len(kinds))
	total := 0.0
	for _, k := range kinds {
		total += k.weight
	}
	for i, k := range kinds {
		w[i] = k.weight / total
	}
	out := make([]planned, 0, n)
	for len(out) < n {
		k := &kinds[pick(rng, w)]
		t := from.Add(time.Duration(rng.Int64N(int64(span))).Truncate(time.Microsecond))
		if rng.Float64() < k.rhythm(t) {
			out = append(out, planned{t, k})
		}
	}
	slices.SortFunc(out, func(a, b planned) int { return a.at.Compare(b.at) })
	return out
}
