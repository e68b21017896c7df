package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

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
//
// The payload is read by a JSON tokenizer (jsontext) into a wire value,
// without reflection; the outcome is what encoding/json's Unmarshal into
// the same fields gave (FuzzDecodeMatchesReflection holds it to that): a
// syntax error anywhere refuses the whole message as bad_json; a value of
// the wrong JSON type refuses its element as wrong_type (the first such
// field in document order); then the fields are validated.
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
	if trimmed[0] != '{' && trimmed[0] != '[' {
		return nil, []Rejection{{-1, ReasonBadJSON, "payload is neither a JSON object nor an array"}}
	}
	d := decoders.Get().(*decoder)
	defer d.release()
	d.r.Reset(trimmed)
	d.dec.Reset(&d.r, decodeOptions...)
	if trimmed[0] == '{' {
		var o Observation
		rej, err := d.object(lim, kind, device, now, &o)
		if err == nil {
			err = d.end()
		}
		switch {
		case err != nil:
			return nil, []Rejection{{-1, ReasonBadJSON, jsonProblem(err)}}
		case rej != nil:
			return nil, []Rejection{*rej}
		}
		o.Item = -1
		return []Observation{o}, nil
	}
	obs, rejs, n, err := d.array(lim, kind, device, now)
	if err == nil {
		err = d.end()
	}
	switch {
	case err != nil:
		return nil, []Rejection{{-1, ReasonBadJSON, jsonProblem(err)}}
	case n == 0:
		return nil, []Rejection{{-1, ReasonEmpty, "empty array"}}
	case n > lim.MaxBatchItems:
		return nil, []Rejection{{-1, ReasonBatchTooLarge, fmt.Sprintf("array of %d objects, limit %d", n, lim.MaxBatchItems)}}
	}
	return obs, rejs
}

// decodeOptions: as encoding/json, a later duplicate name wins, and an
// escaped lone surrogate becomes U+FFFD (the raw bytes are checked to be
// UTF-8 before).
var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// decoder is a tokenizer with its scratch space, pooled: decoding a
// message allocates only the strings it keeps.
type decoder struct {
	dec jsontext.Decoder
	r   bytes.Reader
	w   wire
	buf []byte
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func (d *decoder) release() {
	d.r.Reset(nil)
	d.dec.Reset(&d.r) // drop references to the payload
	if cap(d.buf) > 4096 {
		d.buf = nil
	}
	decoders.Put(d)
}

// end checks that nothing follows the top-level value.
func (d *decoder) end() error {
	if _, err := d.dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("invalid character after top-level value")
		}
		return err
	}
	return nil
}

// array reads a JSON array of objects; n counts its elements. Past
// MaxBatchItems the rest is only checked for syntax.
func (d *decoder) array(lim Limits, kind Kind, device string, now time.Time) (obs []Observation, rejs []Rejection, n int, err error) {
	if _, err := d.dec.ReadToken(); err != nil { // [
		return nil, nil, 0, err
	}
	for {
		switch d.dec.PeekKind() {
		case ']':
			_, err := d.dec.ReadToken()
			return obs, rejs, n, err
		case '{':
			if n >= lim.MaxBatchItems {
				break
			}
			if obs == nil {
				obs = make([]Observation, 0, 8)
			}
			obs = append(obs, Observation{})
			o := &obs[len(obs)-1]
			rej, err := d.object(lim, kind, device, now, o)
			if err != nil {
				return nil, nil, 0, err
			}
			if rej != nil {
				obs = obs[:len(obs)-1]
				rej.Item = n
				rejs = append(rejs, *rej)
			} else {
				o.Item = n
			}
			n++
			continue
		default:
			if n < lim.MaxBatchItems {
				rejs = append(rejs, Rejection{n, ReasonWrongType, "array element is not an object"})
			}
		}
		if err := d.dec.SkipValue(); err != nil { // also reports a syntax error at PeekKind
			return nil, nil, 0, err
		}
		n++
	}
}

// object reads one JSON object into o. err is a syntax error (the whole
// message is bad_json); rej says why the object was refused.
func (d *decoder) object(lim Limits, kind Kind, device string, now time.Time, o *Observation) (rej *Rejection, err error) {
	if _, err := d.dec.ReadToken(); err != nil { // {
		return nil, err
	}
	w := &d.w
	w.reset()
	var typeErr *fieldError
	for d.dec.PeekKind() != '}' {
		name, err := d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		f := d.field(name)
		if f < 0 {
			if err := d.dec.SkipValue(); err != nil {
				return nil, err
			}
			continue
		}
		if e, err := d.value(w, f); err != nil {
			return nil, err
		} else if e != nil && typeErr == nil {
			typeErr = e
		}
	}
	if _, err := d.dec.ReadToken(); err != nil { // }
		return nil, err
	}
	if typeErr != nil {
		return &Rejection{-1, typeErr.reason, typeErr.detail}, nil
	}
	*o = Observation{Kind: kind, DeviceID: device}
	if e := o.fill(lim, w, now); e != nil {
		return &Rejection{-1, e.reason, e.detail}, nil
	}
	return nil, nil
}

// The fields a payload may carry (the union of every kind's), and the JSON
// type each wants.
type fieldType uint8

const (
	fieldNumber fieldType = iota
	fieldString
	fieldBool
	fieldAny // ts and lane: more than one JSON type; checked by fill
)

type fieldSpec struct {
	name string
	typ  fieldType
}

const (
	fTS = iota
	fLat
	fLon
	fID
	fSpeedKmh
	fVolume
	fOccupancy
	fIntervalS
	fLane
	fHeadingDeg
	fEvent
	fConfidence
	fCount
	fSnapshotURL
	fZone
	fType
	fPriority
	fChannel
	fNote
	fCallerRef
	fKind
	fStatus
	fOnline
	numFields
)

var wireFields = [numFields]fieldSpec{
	fTS: {"ts", fieldAny}, fLat: {"lat", fieldNumber}, fLon: {"lon", fieldNumber}, fID: {"id", fieldString},
	fSpeedKmh: {"speed_kmh", fieldNumber}, fVolume: {"volume", fieldNumber}, fOccupancy: {"occupancy", fieldNumber},
	fIntervalS: {"interval_s", fieldNumber}, fLane: {"lane", fieldAny}, fHeadingDeg: {"heading_deg", fieldNumber},
	fEvent: {"event", fieldString}, fConfidence: {"confidence", fieldNumber}, fCount: {"count", fieldNumber},
	fSnapshotURL: {"snapshot_url", fieldString}, fZone: {"zone", fieldString},
	fType: {"type", fieldString}, fPriority: {"priority", fieldNumber}, fChannel: {"channel", fieldString},
	fNote: {"note", fieldString}, fCallerRef: {"caller_ref", fieldString},
	fKind: {"kind", fieldString}, fStatus: {"status", fieldString}, fOnline: {"online", fieldBool},
}

// field finds the field an object name (a raw JSON string) names, or -1.
// As encoding/json: an exact match, else a case-insensitive one.
func (d *decoder) field(raw jsontext.Value) int {
	name := []byte(raw[1 : len(raw)-1])
	if bytes.IndexByte(name, '\\') >= 0 {
		d.buf, _ = jsontext.AppendUnquote(d.buf[:0], raw)
		name = d.buf
	}
	switch string(name) {
	case "ts":
		return fTS
	case "lat":
		return fLat
	case "lon":
		return fLon
	case "id":
		return fID
	case "speed_kmh":
		return fSpeedKmh
	case "volume":
		return fVolume
	case "occupancy":
		return fOccupancy
	case "interval_s":
		return fIntervalS
	case "lane":
		return fLane
	case "heading_deg":
		return fHeadingDeg
	case "event":
		return fEvent
	case "confidence":
		return fConfidence
	case "count":
		return fCount
	case "snapshot_url":
		return fSnapshotURL
	case "zone":
		return fZone
	case "type":
		return fType
	case "priority":
		return fPriority
	case "channel":
		return fChannel
	case "note":
		return fNote
	case "caller_ref":
		return fCallerRef
	case "kind":
		return fKind
	case "status":
		return fStatus
	case "online":
		return fOnline
	}
	for i := range wireFields {
		if bytes.EqualFold(name, []byte(wireFields[i].name)) {
			return i
		}
	}
	return -1
}

// value reads field f's value into w. A null makes the field absent; a
// value of another JSON type than the field's is a wrong_type error (the
// value is skipped); err is a syntax error.
func (d *decoder) value(w *wire, f int) (*fieldError, error) {
	spec := wireFields[f]
	k := d.dec.PeekKind()
	if k == 'n' {
		_, err := d.dec.ReadToken()
		w.clear(f)
		return nil, err
	}
	var ok bool
	switch spec.typ {
	case fieldNumber:
		ok = k == '0'
	case fieldString:
		ok = k == '"'
	case fieldBool:
		ok = k == 't' || k == 'f'
	case fieldAny:
		ok = true
	}
	if ok {
		v, err := d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		switch spec.typ {
		case fieldNumber:
			x, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return bad(ReasonWrongType, "%s: want a number, got JSON number %s", spec.name, api.Clip(string(v))), nil
			}
			w.setNumber(f, x)
		case fieldString:
			w.setString(f, d.unquote(v))
		case fieldBool:
			w.Online = &w.online
			w.online = k == 't'
		case fieldAny:
			r := rawField{kind: k}
			switch k {
			case '"':
				r.s = d.unquote(v)
			case '0':
				r.f, err = strconv.ParseFloat(string(v), 64)
				r.badNumber = err != nil
			}
			if f == fTS {
				w.TS = r
			} else {
				w.Lane = r
			}
		}
		return nil, nil
	}
	if err := d.dec.SkipValue(); err != nil {
		return nil, err
	}
	return bad(ReasonWrongType, "%s: want %s, got JSON %s", spec.name, typeName(spec.typ), kindName(k)), nil
}

func (d *decoder) unquote(v jsontext.Value) string {
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	// The tokenizer checked the literal; the only error left is a lone
	// surrogate, which is replaced by U+FFFD as encoding/json does.
	d.buf, _ = jsontext.AppendUnquote(d.buf[:0], v)
	return string(d.buf)
}

func typeName(t fieldType) string {
	switch t {
	case fieldNumber:
		return "a number"
	case fieldString:
		return "a string"
	}
	return "true or false"
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "bool"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}

// rawField is a field that may hold more than one JSON type (ts, lane).
type rawField struct {
	kind      jsontext.Kind // 0: absent; 'n' null
	s         string        // a string's value
	f         float64       // a number's value
	badNumber bool          // a number out of float64's range
}

// wire is the union of every kind's fields. Pointers tell absent from zero;
// they point into the wire's own storage, reused from message to message.
type wire struct {
	TS  rawField
	Lat *float64
	Lon *float64
	ID  *string

	SpeedKmh   *float64
	Volume     *float64
	Occupancy  *float64
	IntervalS  *float64
	Lane       rawField
	HeadingDeg *float64

	Event       *string
	Confidence  *float64
	Count       *float64
	SnapshotURL *string
	Zone        *string

	Type      *string
	Priority  *float64
	Channel   *string
	Note      *string
	CallerRef *string

	Kind   *string
	Status *string
	Online *bool

	nums   [numFields]float64
	strs   [numFields]string
	online bool
}

// reset empties w; the strings it held go with their observations.
func (w *wire) reset() { *w = wire{} }

func (w *wire) numberField(f int) **float64 {
	switch f {
	case fLat:
		return &w.Lat
	case fLon:
		return &w.Lon
	case fSpeedKmh:
		return &w.SpeedKmh
	case fVolume:
		return &w.Volume
	case fOccupancy:
		return &w.Occupancy
	case fIntervalS:
		return &w.IntervalS
	case fHeadingDeg:
		return &w.HeadingDeg
	case fConfidence:
		return &w.Confidence
	case fCount:
		return &w.Count
	case fPriority:
		return &w.Priority
	}
	return nil
}

func (w *wire) stringField(f int) **string {
	switch f {
	case fID:
		return &w.ID
	case fEvent:
		return &w.Event
	case fSnapshotURL:
		return &w.SnapshotURL
	case fZone:
		return &w.Zone
	case fType:
		return &w.Type
	case fChannel:
		return &w.Channel
	case fNote:
		return &w.Note
	case fCallerRef:
		return &w.CallerRef
	case fKind:
		return &w.Kind
	case fStatus:
		return &w.Status
	}
	return nil
}

func (w *wire) setNumber(f int, v float64) {
	w.nums[f] = v
	*w.numberField(f) = &w.nums[f]
}

func (w *wire) setString(f int, v string) {
	w.strs[f] = v
	*w.stringField(f) = &w.strs[f]
}

// clear makes field f absent (a JSON null).
func (w *wire) clear(f int) {
	switch wireFields[f].typ {
	case fieldNumber:
		*w.numberField(f) = nil
	case fieldString:
		*w.stringField(f) = nil
	case fieldBool:
		w.Online = nil
	case fieldAny:
		if f == fTS {
			w.TS = rawField{kind: 'n'}
		} else {
			w.Lane = rawField{kind: 'n'}
		}
	}
}

// fieldError is a validation failure of one field.
type fieldError struct{ reason, detail string }

func (e *fieldError) Error() string { return e.detail }

func bad(reason, format string, a ...any) *fieldError {
	return &fieldError{reason, fmt.Sprintf(format, a...)}
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
func parseTS(raw rawField) (time.Time, *fieldError) {
	switch raw.kind {
	case 0, 'n':
		return time.Time{}, bad(ReasonMissingField, "ts: required")
	case '"':
		t, err := time.Parse(time.RFC3339Nano, raw.s)
		if err != nil {
			return time.Time{}, bad(ReasonWrongType, "ts: want RFC 3339 with an offset (2026-11-22T08:00:00+07:00) or epoch milliseconds, got %q", api.Clip(raw.s))
		}
		return t, nil
	case '0':
		if raw.badNumber {
			return time.Time{}, bad(ReasonWrongType, "ts: not a number")
		}
		f := raw.f
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
	if w.Lane.kind != 0 && w.Lane.kind != 'n' {
		var s string
		switch {
		case w.Lane.kind == '"':
			s = w.Lane.s
		case w.Lane.kind == '0' && !w.Lane.badNumber:
			s = fmt.Sprint(w.Lane.f)
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
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.ByteOffset, se.Err)
	}
	if err == io.ErrUnexpectedEOF {
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + err.Error()
}
