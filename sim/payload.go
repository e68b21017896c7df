package sim

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits from CONTRACT section 1.
const (
	MaxPayload   = 256 << 10 // bytes
	MaxBatch     = 1000      // objects in one array
	MaxNote      = 2000      // characters of an emergency note
	MaxFuture    = 5 * time.Minute
	LateWindow   = 7 * 24 * time.Hour
	maxMessageID = 128
)

// Kinds of message, named after their topic level.
const (
	KindTraffic   = "traffic"
	KindCamera    = "camera"
	KindEmergency = "emergency"
	KindUnits     = "units"
	KindStatus    = "status"
)

// Kinds lists the topic kinds in a fixed order (for summaries).
var Kinds = []string{KindTraffic, KindCamera, KindEmergency, KindUnits, KindStatus}

// Enumerations from CONTRACT section 1.
var (
	CameraEvents   = []string{"accident", "fire", "smoke", "crowd", "intrusion", "fight", "wrong_way", "stalled_vehicle", "flooding", "illegal_parking", "camera_tamper"}
	EmergencyTypes = []string{"fire", "medical", "police", "rescue", "flood", "panic", "hazmat", "other"}
	EmergencyChans = []string{"call_113", "call_114", "call_115", "panic_button", "fire_alarm", "sensor", "app"}
	UnitKinds      = []string{"police", "fire", "ambulance", "rescue", "traffic_police"}
	UnitStatuses   = []string{"available", "dispatched", "en_route", "on_scene", "out_of_service"}
)

// Message is one MQTT publish.
type Message struct {
	Topic    string
	Payload  []byte
	Kind     string    // topic kind (traffic, camera, ...)
	Device   string    // device id in the topic
	ID       string    // message id carried in the payload ("" if none)
	TS       time.Time // the (last) ts carried, zero for malformed ones without
	Items    int       // objects carried: 1, or the batch length; 0 when Bad
	Bad      string    // "" for a valid message, else the reject reason it should earn
	Variant  string    // which malformed case (for the summary)
	Scenario string    // scripted incident it belongs to, if any
}

// tsFormat chooses how a device writes times; vendors differ, and the
// contract accepts both.
type tsFormat uint8

const (
	tsRFC3339 tsFormat = iota // 2026-03-01T08:15:30.123+07:00
	tsEpochMS                 // 1772327730123
)

// rfc3339ms is RFC 3339 with millisecond precision and a numeric offset.
const rfc3339ms = "2006-01-02T15:04:05.000Z07:00"

// obj is an append-only JSON object writer: the generator emits tens of
// thousands of payloads per second, so it avoids reflection.
type obj struct{ b []byte }

func newObj(b []byte) obj { return obj{b: append(b, '{')} }

func (o *obj) key(k string) {
	if o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(k, v string)       { o.key(k); o.b = appendJSONString(o.b, v) }
func (o *obj) int(k string, v int64) { o.key(k); o.b = strconv.AppendInt(o.b, v, 10) }
func (o *obj) num(k string, v float64, prec int) {
	o.key(k)
	o.b = strconv.AppendFloat(o.b, v, 'f', prec, 64)
}
func (o *obj) bool(k string, v bool) { o.key(k); o.b = strconv.AppendBool(o.b, v) }
func (o *obj) raw(k, v string)       { o.key(k); o.b = append(o.b, v...) }
func (o *obj) ts(t time.Time, f tsFormat) {
	o.key("ts")
	if f == tsEpochMS {
		o.b = strconv.AppendInt(o.b, t.UnixMilli(), 10)
		return
	}
	o.b = append(o.b, '"')
	o.b = t.In(hanoi).AppendFormat(o.b, rfc3339ms)
	o.b = append(o.b, '"')
}
func (o *obj) pos(p Point) { o.num("lat", p.Lat, 6); o.num("lon", p.Lon, 6) }
func (o *obj) end() []byte { return append(o.b, '}') }

// appendJSONString quotes s as a JSON string; invalid UTF-8 is copied as is
// (the malformed corpus relies on that), everything else escaped per RFC 8259.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b = append(b, s[i:i+size]...)
		i += size
	}
	return append(b, '"')
}

// The encoders below are pure: the same inputs give the same bytes.

// header writes the fields common to all kinds.
func header(b []byte, id string, ts time.Time, f tsFormat, p *Point) obj {
	o := newObj(b)
	if id != "" {
		o.str("id", id)
	}
	o.ts(ts, f)
	if p != nil {
		o.pos(*p)
	}
	return o
}

// TrafficFields is a traffic detector reading.
type TrafficFields struct {
	SpeedKmh   float64
	Volume     int
	Occupancy  float64
	IntervalS  int
	Lane       int     // 0: omitted
	HeadingDeg float64 // <0: omitted
}

func encodeTraffic(b []byte, id string, ts time.Time, f tsFormat, p Point, r TrafficFields) []byte {
	o := header(b, id, ts, f, &p)
	o.num("speed_kmh", r.SpeedKmh, 1)
	o.int("volume", int64(r.Volume))
	o.num("occupancy", r.Occupancy, 3)
	o.int("interval_s", int64(r.IntervalS))
	if r.Lane > 0 {
		o.int("lane", int64(r.Lane))
	}
	if r.HeadingDeg >= 0 {
		o.num("heading_deg", r.HeadingDeg, 0)
	}
	return o.end()
}

// CameraFields is a video-analytics event.
type CameraFields struct {
	Event       string
	Confidence  float64
	Count       int // <0: omitted
	SnapshotURL string
	Zone        string
}

func encodeCamera(b []byte, id string, ts time.Time, f tsFormat, p Point, e CameraFields) []byte {
	o := header(b, id, ts, f, &p)
	o.str("event", e.Event)
	o.num("confidence", e.Confidence, 2)
	if e.Count >= 0 {
		o.int("count", int64(e.Count))
	}
	if e.SnapshotURL != "" {
		o.str("snapshot_url", e.SnapshotURL)
	}
	if e.Zone != "" {
		o.str("zone", e.Zone)
	}
	return o.end()
}

// EmergencyFields is an emergency signal.
type EmergencyFields struct {
	Type      string
	Priority  int
	Channel   string
	Note      string
	CallerRef string
}

func encodeEmergency(b []byte, id string, ts time.Time, f tsFormat, p Point, e EmergencyFields) []byte {
	o := header(b, id, ts, f, &p)
	o.str("type", e.Type)
	o.int("priority", int64(e.Priority))
	o.str("channel", e.Channel)
	if e.Note != "" {
		o.str("note", e.Note)
	}
	if e.CallerRef != "" {
		o.str("caller_ref", e.CallerRef)
	}
	return o.end()
}

// UnitFields is a responder unit's AVL report.
type UnitFields struct {
	Kind       string
	Status     string
	SpeedKmh   float64
	HeadingDeg float64
}

func encodeUnit(b []byte, id string, ts time.Time, f tsFormat, p Point, u UnitFields) []byte {
	o := header(b, id, ts, f, &p)
	o.str("kind", u.Kind)
	o.str("status", u.Status)
	o.num("speed_kmh", u.SpeedKmh, 1)
	o.num("heading_deg", u.HeadingDeg, 0)
	return o.end()
}

// encodeStatus is a heartbeat or last will: no position, the device has one.
func encodeStatus(b []byte, id string, ts time.Time, f tsFormat, online bool) []byte {
	o := header(b, id, ts, f, nil)
	o.bool("online", online)
	return o.end()
}

// topic builds prefix/kind/device.
func topic(prefix, kind, device string) string {
	return prefix + "/" + kind + "/" + device
}
