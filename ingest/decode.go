package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"ioc/api"
)

// Kind is the kind of device a topic carries.
type Kind string

const (
	KindTraffic   Kind = "traffic"
	KindCamera    Kind = "camera"
	KindEmergency Kind = "emergency"
	KindUnit      Kind = "unit"   // topic level "units"
	KindStatus    Kind = "status" // heartbeat / last will of any device
)

// Reject reasons (CONTRACT section 1). bad_url, unstorable, internal_error
// and unknown_device are ours:
// see docs/ingest.md.
const (
	ReasonBadJSON       = "bad_json"
	ReasonBadTopic      = "bad_topic"
	ReasonMissingField  = "missing_field"
	ReasonOutOfRange    = "out_of_range"
	ReasonFutureTS      = "future_ts"
	ReasonTooOld        = "too_old"
	ReasonTooLarge      = "too_large"
	ReasonUnknownKind   = "unknown_kind"
	ReasonWrongType     = "wrong_type"
	ReasonBadUTF8       = "bad_utf8"
	ReasonBatchTooLarge = "batch_too_large"
	ReasonUnknownValue  = "unknown_value"
	ReasonEmpty         = "empty"
	ReasonOutsideArea   = "outside_service_area"
	ReasonBadURL        = "bad_url"
	ReasonUnstorable    = "unstorable"
	// ReasonInternalError: ingest itself failed on the message (a panic,
	// a bug); kept so the message is acknowledged once and seen.
	ReasonInternalError = "internal_error"
	// ReasonUnknownDevice: require_registered_devices is on and no admin
	// registered the device (POST /api/v1/devices).
	ReasonUnknownDevice = "unknown_device"
)

// Observation is one validated reading, event, signal or position.
type Observation struct {
	Kind     Kind
	DeviceID string
	TS       time.Time
	MsgID    string // the payload's "id", or ""
	Item     int    // index in a JSON array batch; -1 for a single object
	HasPos   bool   // false: the device's fixed position applies
	Lon, Lat float64
	Ward     string // filled by the ingester from the ward index

	// traffic
	SpeedKmh   float64
	HasSpeed   bool
	Volume     int64
	Occupancy  float64
	IntervalS  int64
	Lane       string
	HeadingDeg float64
	HasHeading bool

	// camera
	Event       string
	Confidence  float64
	Count       int64
	HasCount    bool
	SnapshotURL string
	Zone        string

	// emergency
	Type      string
	Priority  int64
	Channel   string
	Note      string
	CallerRef string

	// unit (Kind, Status) and status (Online)
	UnitKind string
	Status   string
	Online   bool

	// Settled is set, after the commit, by Config.InTx's hook on the
	// observations it already acted on in the batch's transaction (an
	// emergency signal whose incident is open), so OnCommit consumers
	// need not act on them again.
	Settled bool
}

// Rejection says why one message (Item -1) or one element of a JSON array
// batch (Item >= 0) was refused.
type Rejection struct {
	Item   int
	Reason string
	Detail string
}

// Limits are the decoder's bounds (from config).
type Limits struct {
	Prefix          string
	MaxPayloadBytes int
	MaxBatchItems   int
	LateWindow      time.Duration
	FutureSkew      time.Duration
}

var (
	cameraEvents = set("accident", "fire", "smoke", "crowd", "intrusion", "fight", "wrong_way",
		"stalled_vehicle", "flooding", "illegal_parking", "camera_tamper")
	emergencyTypes    = set("fire", "medical", "police", "rescue", "flood", "panic", "hazmat", "other")
	emergencyChannels = set("call_113", "call_114", "call_115", "panic_button", "fire_alarm", "sensor", "app")
	unitKinds         = set("police", "fire", "ambulance", "rescue", "traffic_police")
	unitStatuses      = set("available", "dispatched", "en_route", "on_scene", "out_of_service")
)

func set(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

// ParseTopic splits "{prefix}/{kind}/{id}" and checks the id.
func ParseTopic(prefix, topic string) (Kind, string, *Rejection) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", "", &Rejection{-1, ReasonBadTopic, "topic does not start with " + prefix + "/"}
	}
	kindLevel, id, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", &Rejection{-1, ReasonBadTopic, "want " + prefix + "/{kind}/{device_id}"}
	}
	var kind Kind
	switch kindLevel {
	case "traffic":
		kind = KindTraffic
	case "camera":
		kind = KindCamera
	case "emergency":
		kind = KindEmergency
	case "units":
		kind = KindUnit
	case "status":
		kind = KindStatus
	default:
		return "", "", &Rejection{-1, ReasonUnknownKind, fmt.Sprintf("unknown kind %q (traffic, camera, emergency, units, status)", api.Clip(kindLevel))}
	}
	if !validID(id) {
		return "", "", &Rejection{-1, ReasonBadTopic, fmt.Sprintf("device id %q: want 1-64 of A-Z a-z 0-9 . _ -", api.Clip(id))}
	}
	return kind, id, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Decode validates a payload that arrived on a topic of the given kind
// and device. It returns the valid observations and one rejection per bad
// element (or one for the whole message). now is the arrival time.
func Decode(lim Limits, kind Kind, device string, payload []byte, now time.Time) ([]Observation, []Rejection) {
	if len(payload) > lim.MaxPayloadBytes {
		return nil, []Rejection{{-1, ReasonTooLarge, fmt.Sprintf("payload of %d bytes, limit %d", len(payload), lim.MaxPayloadBytes)}}
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 {
		return nil, []Rejection{{-1, ReasonEmpty, "empty payload"}}
	}
	if !utf8.Valid(trimmed) {
		return nil, []Rejection{{-1, ReasonBadUTF8, "payload is not valid UTF-8"}}
	}
	switch trimmed[0] {
	case '{':
		o, rej := decodeOne(lim, kind, device, trimmed, now)
		if rej != nil {
			return nil, []Rejection{*rej}
		}
		o.Item = -1
		return []Observation{o}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, []Rejection{{-1, ReasonBadJSON, jsonProblem(err)}}
		}
		if len(items) == 0 {
			return nil, []Rejection{{-1, ReasonEmpty, "empty array"}}
		}
		if len(items) > lim.MaxBatchItems {
			return nil, []Rejection{{-1, ReasonBatchTooLarge, fmt.Sprintf("array of %d objects, limit %d", len(items), lim.MaxBatchItems)}}
		}
		obs := make([]Observation, 0, len(items))
		var rejs []Rejection
		for i, raw := range items {
			raw = bytes.TrimSpace(raw)
			if len(raw) == 0 || raw[0] != '{' {
				rejs = append(rejs, Rejection{i, ReasonWrongType, "array element is not an object"})
				continue
			}
			o, rej := decodeOne(lim, kind, device, raw, now)
			if rej != nil {
				rej.Item = i
				rejs = append(rejs, *rej)
				continue
			}
			o.Item = i
			obs = append(obs, o)
		}
		return obs, rejs
	default:
		return nil, []Rejection{{-1, ReasonBadJSON, "payload is neither a JSON object nor an array"}}
	}
}

// wire is the union of every kind's fields. Pointers tell absent from zero;
// RawMessage fields accept more than one JSON type.
type wire struct {
	TS  json.RawMessage `json:"ts"`
	Lat *float64        `json:"lat"`
	Lon *float64        `json:"lon"`
	ID  *string         `json:"id"`

	SpeedKmh   *float64        `json:"speed_kmh"`
	Volume     *float64        `json:"volume"`
	Occupancy  *float64        `json:"occupancy"`
	IntervalS  *float64        `json:"interval_s"`
	Lane       json.RawMessage `json:"lane"`
	HeadingDeg *float64        `json:"heading_deg"`

	Event       *string  `json:"event"`
	Confidence  *float64 `json:"confidence"`
	Count       *float64 `json:"count"`
	SnapshotURL *string  `json:"snapshot_url"`
	Zone        *string  `json:"zone"`

	Type      *string  `json:"type"`
	Priority  *float64 `json:"priority"`
	Channel   *string  `json:"channel"`
	Note      *string  `json:"note"`
	CallerRef *string  `json:"caller_ref"`

	Kind   *string `json:"kind"`
	Status *string `json:"status"`
	Online *bool   `json:"online"`
}

// fieldError is a validation failure of one field.
type fieldError struct{ reason, detail string }

func (e *fieldError) Error() string { return e.detail }

func bad(reason, format string, a ...any) *fieldError {
	return &fieldError{reason, fmt.Sprintf(format, a...)}
}

func decodeOne(lim Limits, kind Kind, device string, raw []byte, now time.Time) (Observation, *Rejection) {
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Observation{}, &Rejection{-1, ReasonWrongType, fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)}
		}
		return Observation{}, &Rejection{-1, ReasonBadJSON, jsonProblem(err)}
	}
	o := Observation{Kind: kind, DeviceID: device}
	if err := o.fill(lim, &w, now); err != nil {
		return Observation{}, &Rejection{-1, err.reason, err.detail}
	}
	return o, nil
}

func (o *Observation) fill(lim Limits, w *wire, now time.Time) *fieldError {
	ts, err := parseTS(w.TS)
	if err != nil {
		return err
	}
	if ts.After(now.Add(lim.FutureSkew)) {
		return bad(ReasonFutureTS, "ts %s is %s in the future (limit %s)", ts.Format(time.RFC3339), ts.Sub(now).Round(time.Second), lim.FutureSkew)
	}
	// A last will carries the ts its device set when it connected, perhaps
	// days ago, so status messages are exempt from the late-data window.
	if ts.Before(now.Add(-lim.LateWindow)) && o.Kind != KindStatus {
		hint := ""
		if ts.Year() == 1970 {
			hint = " (epoch seconds sent where milliseconds are expected?)"
		}
		return bad(ReasonTooOld, "ts %s is older than the late-data window of %s%s", ts.Format(time.RFC3339), lim.LateWindow, hint)
	}
	o.TS = ts
	if w.ID != nil {
		if len(*w.ID) == 0 || len(*w.ID) > 128 {
			return bad(ReasonOutOfRange, "id: want 1-128 bytes, got %d", len(*w.ID))
		}
		if e := noNUL("id", *w.ID); e != nil {
			return e
		}
		o.MsgID = *w.ID
	}
	if o.Kind != KindStatus {
		if e := o.position(w); e != nil {
			return e
		}
	}
	switch o.Kind {
	case KindTraffic:
		return o.traffic(w)
	case KindCamera:
		return o.camera(w)
	case KindEmergency:
		return o.emergency(w)
	case KindUnit:
		return o.unit(w)
	case KindStatus:
		if w.Online == nil {
			return bad(ReasonMissingField, "online: required (true or false)")
		}
		o.Online = *w.Online
	}
	return nil
}

// parseTS accepts RFC 3339 with an offset or integer epoch milliseconds.
func parseTS(raw json.RawMessage) (time.Time, *fieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, bad(ReasonMissingField, "ts: required")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, bad(ReasonWrongType, "ts: not a string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, bad(ReasonWrongType, "ts: want RFC 3339 with an offset (2026-11-22T08:00:00+07:00) or epoch milliseconds, got %q", api.Clip(s))
		}
		return t, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return time.Time{}, bad(ReasonWrongType, "ts: not a number")
		}
		if f != math.Trunc(f) {
			return time.Time{}, bad(ReasonWrongType, "ts: epoch milliseconds must be an integer")
		}
		if f < 0 || f > 32503680000000 {
			return time.Time{}, bad(ReasonOutOfRange, "ts: epoch milliseconds %.0f out of range", f)
		}
		return time.UnixMilli(int64(f)), nil
	default:
		return time.Time{}, bad(ReasonWrongType, "ts: want a string or a number")
	}
}

func (o *Observation) position(w *wire) *fieldError {
	switch {
	case w.Lat == nil && w.Lon == nil:
		return nil // the device's registered position applies; checked later
	case w.Lat == nil:
		return bad(ReasonMissingField, "lat: required with lon")
	case w.Lon == nil:
		return bad(ReasonMissingField, "lon: required with lat")
	}
	lat, lon := *w.Lat, *w.Lon
	if lat < -90 || lat > 90 {
		return bad(ReasonOutOfRange, "lat: %v outside -90..90", lat)
	}
	if lon < -180 || lon > 180 {
		return bad(ReasonOutOfRange, "lon: %v outside -180..180", lon)
	}
	if lat == 0 && lon == 0 {
		return bad(ReasonOutOfRange, "lat/lon: (0,0) is a missing GPS fix, not a place")
	}
	o.HasPos, o.Lat, o.Lon = true, lat, lon
	return nil
}

func (o *Observation) traffic(w *wire) *fieldError {
	var e *fieldError
	if o.SpeedKmh, e = need("speed_kmh", w.SpeedKmh, 0, 250); e != nil {
		return e
	}
	o.HasSpeed = true
	if o.Volume, e = needInt("volume", w.Volume, 0, 1_000_000); e != nil {
		return e
	}
	if o.Occupancy, e = need("occupancy", w.Occupancy, 0, 1); e != nil {
		return e
	}
	o.IntervalS = 60
	if w.IntervalS != nil {
		if o.IntervalS, e = needInt("interval_s", w.IntervalS, 1, 86400); e != nil {
			return e
		}
	}
	if len(w.Lane) > 0 && string(w.Lane) != "null" {
		var s string
		var n float64
		switch {
		case json.Unmarshal(w.Lane, &s) == nil:
		case json.Unmarshal(w.Lane, &n) == nil:
			s = fmt.Sprint(n)
		default:
			return bad(ReasonWrongType, "lane: want a string or a number")
		}
		if len(s) > 32 {
			return bad(ReasonOutOfRange, "lane: longer than 32 bytes")
		}
		if e := noNUL("lane", s); e != nil {
			return e
		}
		o.Lane = s
	}
	return o.heading(w)
}

func (o *Observation) heading(w *wire) *fieldError {
	if w.HeadingDeg == nil {
		return nil
	}
	h, e := need("heading_deg", w.HeadingDeg, 0, 360)
	o.HeadingDeg, o.HasHeading = h, e == nil
	return e
}

func (o *Observation) camera(w *wire) *fieldError {
	var e *fieldError
	if o.Event, e = enum("event", w.Event, cameraEvents); e != nil {
		return e
	}
	if o.Confidence, e = need("confidence", w.Confidence, 0, 1); e != nil {
		return e
	}
	if w.Count != nil {
		if o.Count, e = needInt("count", w.Count, 0, 1_000_000); e != nil {
			return e
		}
		o.HasCount = true
	}
	if w.SnapshotURL != nil {
		u, err := url.Parse(*w.SnapshotURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*w.SnapshotURL) > 2048 {
			return bad(ReasonBadURL, "snapshot_url: want an http or https URL of at most 2048 bytes")
		}
		o.SnapshotURL = *w.SnapshotURL
	}
	if o.Zone, e = optString("zone", w.Zone, 64); e != nil {
		return e
	}
	return nil
}

func (o *Observation) emergency(w *wire) *fieldError {
	var e *fieldError
	if o.Type, e = enum("type", w.Type, emergencyTypes); e != nil {
		return e
	}
	if o.Priority, e = needInt("priority", w.Priority, 1, 5); e != nil {
		return e
	}
	if o.Channel, e = enum("channel", w.Channel, emergencyChannels); e != nil {
		return e
	}
	if w.Note != nil && utf8.RuneCountInString(*w.Note) > 2000 {
		return bad(ReasonOutOfRange, "note: longer than 2000 characters")
	}
	if o.Note, e = optString("note", w.Note, 8000); e != nil {
		return e
	}
	if o.CallerRef, e = optString("caller_ref", w.CallerRef, 128); e != nil {
		return e
	}
	return nil
}

func (o *Observation) unit(w *wire) *fieldError {
	var e *fieldError
	if o.UnitKind, e = enum("kind", w.Kind, unitKinds); e != nil {
		return e
	}
	if o.Status, e = enum("status", w.Status, unitStatuses); e != nil {
		return e
	}
	if w.SpeedKmh != nil {
		if o.SpeedKmh, e = need("speed_kmh", w.SpeedKmh, 0, 250); e != nil {
			return e
		}
		o.HasSpeed = true
	}
	return o.heading(w)
}

func need(name string, v *float64, min, max float64) (float64, *fieldError) {
	if v == nil {
		return 0, bad(ReasonMissingField, "%s: required", name)
	}
	if *v < min || *v > max {
		return 0, bad(ReasonOutOfRange, "%s: %v outside %v..%v", name, *v, min, max)
	}
	return *v, nil
}

func needInt(name string, v *float64, min, max int64) (int64, *fieldError) {
	f, e := need(name, v, float64(min), float64(max))
	if e != nil {
		return 0, e
	}
	if f != math.Trunc(f) {
		return 0, bad(ReasonWrongType, "%s: want an integer, got %v", name, f)
	}
	return int64(f), nil
}

func enum(name string, v *string, allowed map[string]bool) (string, *fieldError) {
	if v == nil {
		return "", bad(ReasonMissingField, "%s: required", name)
	}
	if !allowed[*v] {
		return "", bad(ReasonUnknownValue, "%s: unknown value %q", name, api.Clip(*v))
	}
	return *v, nil
}

func optString(name string, v *string, max int) (string, *fieldError) {
	if v == nil {
		return "", nil
	}
	if len(*v) > max {
		return "", bad(ReasonOutOfRange, "%s: longer than %d bytes", name, max)
	}
	return *v, noNUL(name, *v)
}

// PostgreSQL text cannot hold NUL; refuse it here rather than fail a batch.
func noNUL(name, s string) *fieldError {
	if strings.IndexByte(s, 0) >= 0 {
		return bad(ReasonBadUTF8, "%s: contains a NUL character", name)
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	return "invalid JSON: " + err.Error()
}
