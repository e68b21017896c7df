package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Hanoi's extent (the wards' bbox, rounded outwards). Check treats points
// outside it as outside_service_area; ingest decides with the ward polygons.
const (
	cityMinLon, cityMaxLon = 105.28, 106.03
	cityMinLat, cityMaxLat = 20.55, 21.40
)

// Check applies the rules of CONTRACT section 1 that can be checked without
// the device registry, and returns every reject reason the message earns,
// sorted and without repeats; none for a valid message. It is the
// simulator's reading of the contract, used by the tests to show that valid
// messages are valid and that each malformed one breaks exactly the rule it
// claims. Where the contract leaves a choice, it decides as ingest does
// (docs/simulator.md lists these): a string where a number belongs, "NaN"
// included, is wrong_type; a payload that is JSON but neither an object nor
// an array is bad_json; an empty array is empty; status messages need no
// position and are exempt from the late window. Unlike ingest it always
// requires lat and lon (it knows no registered positions), and it judges
// the service area by the city's bounding box, not the ward polygons.
func Check(prefix, topic string, payload []byte, now time.Time) []string {
	var rs reasons
	if len(payload) > MaxPayload {
		rs.add("too_large")
	}
	kind := checkTopic(prefix, topic, &rs)
	if len(payload) == 0 {
		rs.add("empty")
		return rs.list()
	}
	if !utf8.Valid(payload) {
		rs.add("bad_utf8")
		return rs.list()
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		rs.add("bad_json")
		return rs.list()
	}
	if _, err := dec.Token(); err != io.EOF {
		rs.add("bad_json") // trailing data
		return rs.list()
	}
	switch x := v.(type) {
	case map[string]any:
		checkObject(kind, x, now, &rs)
	case []any:
		if len(x) == 0 {
			rs.add("empty")
		}
		if len(x) > MaxBatch {
			rs.add("batch_too_large")
		}
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				checkObject(kind, m, now, &rs)
			} else {
				rs.add("wrong_type")
			}
		}
	default:
		rs.add("bad_json") // JSON, but not a payload
	}
	return rs.list()
}

type reasons []string

func (r *reasons) add(s string) {
	if !slices.Contains(*r, s) {
		*r = append(*r, s)
	}
}

func (r reasons) list() []string { slices.Sort(r); return r }

// checkTopic returns the kind, or "" when it is unknown (then the fields
// cannot be checked). A bad device id still leaves the kind known.
func checkTopic(prefix, topic string, rs *reasons) string {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		rs.add("bad_topic")
		return ""
	}
	kind, id, ok := strings.Cut(rest, "/")
	if !ok {
		rs.add("bad_topic")
		return ""
	}
	if !slices.Contains(Kinds, kind) {
		rs.add("unknown_kind")
		return ""
	}
	if !idRE.MatchString(id) {
		rs.add("bad_topic")
	}
	return kind
}

func checkObject(kind string, m map[string]any, now time.Time, rs *reasons) {
	if kind == "" {
		return
	}
	checkTS(m, now, kind != KindStatus, rs)
	if id, ok := m["id"]; ok {
		s, isStr := id.(string)
		switch {
		case !isStr:
			rs.add("wrong_type")
		case len(s) == 0 || len(s) > maxMessageID:
			rs.add("out_of_range")
		}
	}
	if kind != KindStatus {
		checkPosition(m, rs)
	}
	switch kind {
	case KindTraffic:
		num(m, "speed_kmh", true, 0, 250, rs)
		integer(m, "volume", true, 0, math.MaxInt32, rs)
		num(m, "occupancy", true, 0, 1, rs)
		numOpenLow(m, "interval_s", rs)
		num(m, "heading_deg", false, 0, 360, rs)
		if v, ok := m["lane"]; ok {
			switch v.(type) {
			case json.Number, string:
			default:
				rs.add("wrong_type")
			}
		}
	case KindCamera:
		enum(m, "event", CameraEvents, rs)
		num(m, "confidence", true, 0, 1, rs)
		integer(m, "count", false, 0, math.MaxInt32, rs)
		if v, ok := m["snapshot_url"]; ok {
			s, isStr := v.(string)
			if !isStr {
				rs.add("wrong_type")
			} else if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
				rs.add("out_of_range")
			}
		}
		str(m, "zone", 200, rs)
	case KindEmergency:
		enum(m, "type", EmergencyTypes, rs)
		integer(m, "priority", true, 1, 5, rs)
		enum(m, "channel", EmergencyChans, rs)
		str(m, "note", MaxNote, rs)
		str(m, "caller_ref", 128, rs)
	case KindUnits:
		enum(m, "kind", UnitKinds, rs)
		enum(m, "status", UnitStatuses, rs)
		num(m, "speed_kmh", false, 0, 250, rs)
		num(m, "heading_deg", false, 0, 360, rs)
	case KindStatus:
		switch v, ok := m["online"]; {
		case !ok:
			rs.add("missing_field")
		default:
			if _, isBool := v.(bool); !isBool {
				rs.add("wrong_type")
			}
		}
	}
}

func checkTS(m map[string]any, now time.Time, lateWindow bool, rs *reasons) {
	v, ok := m["ts"]
	if !ok {
		rs.add("missing_field")
		return
	}
	var t time.Time
	switch x := v.(type) {
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			rs.add("wrong_type")
			return
		}
	case json.Number:
		ms, err := x.Int64()
		if err != nil {
			rs.add("wrong_type")
			return
		}
		t = time.UnixMilli(ms)
	default:
		rs.add("wrong_type")
		return
	}
	switch {
	case t.After(now.Add(MaxFuture)):
		rs.add("future_ts")
	case lateWindow && t.Before(now.Add(-LateWindow)):
		rs.add("too_old")
	}
}

func checkPosition(m map[string]any, rs *reasons) {
	lat, okLat := coord(m, "lat", 90, rs)
	lon, okLon := coord(m, "lon", 180, rs)
	if !okLat || !okLon {
		return
	}
	if lat == 0 && lon == 0 {
		rs.add("out_of_range")
		return
	}
	if lon < cityMinLon || lon > cityMaxLon || lat < cityMinLat || lat > cityMaxLat {
		rs.add("outside_service_area")
	}
}

// coord returns the value and whether it is a usable coordinate.
func coord(m map[string]any, k string, lim float64, rs *reasons) (float64, bool) {
	v, ok := m[k]
	if !ok {
		rs.add("missing_field")
		return 0, false
	}
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.Abs(f) > lim {
			rs.add("out_of_range")
			return 0, false
		}
		return f, true
	default:
		rs.add("wrong_type")
	}
	return 0, false
}

func num(m map[string]any, k string, required bool, lo, hi float64, rs *reasons) {
	v, ok := m[k]
	if !ok {
		if required {
			rs.add("missing_field")
		}
		return
	}
	n, isNum := v.(json.Number)
	if !isNum {
		rs.add("wrong_type")
		return
	}
	f, err := n.Float64()
	if err != nil || f < lo || f > hi {
		rs.add("out_of_range")
	}
}

func numOpenLow(m map[string]any, k string, rs *reasons) {
	v, ok := m[k]
	if !ok {
		return
	}
	n, isNum := v.(json.Number)
	if !isNum {
		rs.add("wrong_type")
		return
	}
	if f, err := n.Float64(); err != nil || f <= 0 || f > 86400 {
		rs.add("out_of_range")
	}
}

func integer(m map[string]any, k string, required bool, lo, hi int64, rs *reasons) {
	v, ok := m[k]
	if !ok {
		if required {
			rs.add("missing_field")
		}
		return
	}
	n, isNum := v.(json.Number)
	if !isNum {
		rs.add("wrong_type")
		return
	}
	i, err := n.Int64()
	if err != nil {
		rs.add("wrong_type")
		return
	}
	if i < lo || i > hi {
		rs.add("out_of_range")
	}
}

func enum(m map[string]any, k string, allowed []string, rs *reasons) {
	v, ok := m[k]
	if !ok {
		rs.add("missing_field")
		return
	}
	s, isStr := v.(string)
	if !isStr {
		rs.add("wrong_type")
		return
	}
	if !slices.Contains(allowed, s) {
		rs.add("unknown_value")
	}
}

func str(m map[string]any, k string, maxRunes int, rs *reasons) {
	v, ok := m[k]
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		rs.add("wrong_type")
		return
	}
	if utf8.RuneCountInString(s) > maxRunes {
		rs.add("out_of_range")
	}
}
