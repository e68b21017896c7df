package ingest

// The decoder ingest had before issue 13: encoding/json's reflection into
// a struct. FuzzDecodeMatchesReflection holds the tokenizer-based Decode to
// the same outcomes (observations, reasons, items) on any input.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"ioc/api"
)

// reflectDecode validates a payload that arrived on a topic of the given kind
// and device. It returns the valid observations and one rejection per rBad
// element (or one for the whole message). now is the arrival time.
func reflectDecode(lim Limits, kind Kind, device string, payload []byte, now time.Time) ([]Observation, []Rejection) {
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
		o, rej := rDecodeOne(lim, kind, device, trimmed, now)
		if rej != nil {
			return nil, []Rejection{*rej}
		}
		o.Item = -1
		return []Observation{o}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, []Rejection{{-1, ReasonBadJSON, rJsonProblem(err)}}
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
			o, rej := rDecodeOne(lim, kind, device, raw, now)
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

// rWire is the union of every kind's fields. Pointers tell absent from zero;
// RawMessage fields accept more than one JSON type.
type rWire struct {
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

// rFieldError is a validation failure of one field.
type rFieldError struct{ reason, detail string }

func (e *rFieldError) Error() string { return e.detail }

func rBad(reason, format string, a ...any) *rFieldError {
	return &rFieldError{reason, fmt.Sprintf(format, a...)}
}

func rDecodeOne(lim Limits, kind Kind, device string, raw []byte, now time.Time) (Observation, *Rejection) {
	var w rWire
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Observation{}, &Rejection{-1, ReasonWrongType, fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)}
		}
		return Observation{}, &Rejection{-1, ReasonBadJSON, rJsonProblem(err)}
	}
	o := Observation{Kind: kind, DeviceID: device}
	if err := o.rFill(lim, &w, now); err != nil {
		return Observation{}, &Rejection{-1, err.reason, err.detail}
	}
	return o, nil
}

func (o *Observation) rFill(lim Limits, w *rWire, now time.Time) *rFieldError {
	ts, err := rParseTS(w.TS)
	if err != nil {
		return err
	}
	if ts.After(now.Add(lim.FutureSkew)) {
		return rBad(ReasonFutureTS, "ts %s is %s in the future (limit %s)", ts.Format(time.RFC3339), ts.Sub(now).Round(time.Second), lim.FutureSkew)
	}
	// A last will carries the ts its device set when it connected, perhaps
	// days ago, so status messages are exempt from the late-data window.
	if ts.Before(now.Add(-lim.LateWindow)) && o.Kind != KindStatus {
		hint := ""
		if ts.Year() == 1970 {
			hint = " (epoch seconds sent where milliseconds are expected?)"
		}
		return rBad(ReasonTooOld, "ts %s is older than the late-data window of %s%s", ts.Format(time.RFC3339), lim.LateWindow, hint)
	}
	o.TS = ts
	if w.ID != nil {
		if len(*w.ID) == 0 || len(*w.ID) > 128 {
			return rBad(ReasonOutOfRange, "id: want 1-128 bytes, got %d", len(*w.ID))
		}
		if e := rNoNUL("id", *w.ID); e != nil {
			return e
		}
		o.MsgID = *w.ID
	}
	if o.Kind != KindStatus {
		if e := o.rPosition(w); e != nil {
			return e
		}
	}
	switch o.Kind {
	case KindTraffic:
		return o.rTraffic(w)
	case KindCamera:
		return o.rCamera(w)
	case KindEmergency:
		return o.rEmergency(w)
	case KindUnit:
		return o.rUnit(w)
	case KindStatus:
		if w.Online == nil {
			return rBad(ReasonMissingField, "online: required (true or false)")
		}
		o.Online = *w.Online
	}
	return nil
}

// rParseTS accepts RFC 3339 with an offset or integer epoch milliseconds.
func rParseTS(raw json.RawMessage) (time.Time, *rFieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, rBad(ReasonMissingField, "ts: required")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, rBad(ReasonWrongType, "ts: not a string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, rBad(ReasonWrongType, "ts: want RFC 3339 with an offset (2026-11-22T08:00:00+07:00) or epoch milliseconds, got %q", api.Clip(s))
		}
		return t, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return time.Time{}, rBad(ReasonWrongType, "ts: not a number")
		}
		if f != math.Trunc(f) {
			return time.Time{}, rBad(ReasonWrongType, "ts: epoch milliseconds must be an integer")
		}
		if f < 0 || f > 32503680000000 {
			return time.Time{}, rBad(ReasonOutOfRange, "ts: epoch milliseconds %.0f out of range", f)
		}
		return time.UnixMilli(int64(f)), nil
	default:
		return time.Time{}, rBad(ReasonWrongType, "ts: want a string or a number")
	}
}

func (o *Observation) rPosition(w *rWire) *rFieldError {
	switch {
	case w.Lat == nil && w.Lon == nil:
		return nil // the device's registered rPosition applies; checked later
	case w.Lat == nil:
		return rBad(ReasonMissingField, "lat: required with lon")
	case w.Lon == nil:
		return rBad(ReasonMissingField, "lon: required with lat")
	}
	lat, lon := *w.Lat, *w.Lon
	if lat < -90 || lat > 90 {
		return rBad(ReasonOutOfRange, "lat: %v outside -90..90", lat)
	}
	if lon < -180 || lon > 180 {
		return rBad(ReasonOutOfRange, "lon: %v outside -180..180", lon)
	}
	if lat == 0 && lon == 0 {
		return rBad(ReasonOutOfRange, "lat/lon: (0,0) is a missing GPS fix, not a place")
	}
	o.HasPos, o.Lat, o.Lon = true, lat, lon
	return nil
}

func (o *Observation) rTraffic(w *rWire) *rFieldError {
	var e *rFieldError
	if o.SpeedKmh, e = rNeed("speed_kmh", w.SpeedKmh, 0, 250); e != nil {
		return e
	}
	o.HasSpeed = true
	if o.Volume, e = rNeedInt("volume", w.Volume, 0, 1_000_000); e != nil {
		return e
	}
	if o.Occupancy, e = rNeed("occupancy", w.Occupancy, 0, 1); e != nil {
		return e
	}
	o.IntervalS = 60
	if w.IntervalS != nil {
		if o.IntervalS, e = rNeedInt("interval_s", w.IntervalS, 1, 86400); e != nil {
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
			return rBad(ReasonWrongType, "lane: want a string or a number")
		}
		if len(s) > 32 {
			return rBad(ReasonOutOfRange, "lane: longer than 32 bytes")
		}
		if e := rNoNUL("lane", s); e != nil {
			return e
		}
		o.Lane = s
	}
	return o.rHeading(w)
}

func (o *Observation) rHeading(w *rWire) *rFieldError {
	if w.HeadingDeg == nil {
		return nil
	}
	h, e := rNeed("heading_deg", w.HeadingDeg, 0, 360)
	o.HeadingDeg, o.HasHeading = h, e == nil
	return e
}

func (o *Observation) rCamera(w *rWire) *rFieldError {
	var e *rFieldError
	if o.Event, e = rEnum("event", w.Event, cameraEvents); e != nil {
		return e
	}
	if o.Confidence, e = rNeed("confidence", w.Confidence, 0, 1); e != nil {
		return e
	}
	if w.Count != nil {
		if o.Count, e = rNeedInt("count", w.Count, 0, 1_000_000); e != nil {
			return e
		}
		o.HasCount = true
	}
	if w.SnapshotURL != nil {
		u, err := url.Parse(*w.SnapshotURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*w.SnapshotURL) > 2048 {
			return rBad(ReasonBadURL, "snapshot_url: want an http or https URL of at most 2048 bytes")
		}
		o.SnapshotURL = *w.SnapshotURL
	}
	if o.Zone, e = rOptString("zone", w.Zone, 64); e != nil {
		return e
	}
	return nil
}

func (o *Observation) rEmergency(w *rWire) *rFieldError {
	var e *rFieldError
	if o.Type, e = rEnum("type", w.Type, emergencyTypes); e != nil {
		return e
	}
	if o.Priority, e = rNeedInt("priority", w.Priority, 1, 5); e != nil {
		return e
	}
	if o.Channel, e = rEnum("channel", w.Channel, emergencyChannels); e != nil {
		return e
	}
	if w.Note != nil && utf8.RuneCountInString(*w.Note) > 2000 {
		return rBad(ReasonOutOfRange, "note: longer than 2000 characters")
	}
	if o.Note, e = rOptString("note", w.Note, 8000); e != nil {
		return e
	}
	if o.CallerRef, e = rOptString("caller_ref", w.CallerRef, 128); e != nil {
		return e
	}
	return nil
}

func (o *Observation) rUnit(w *rWire) *rFieldError {
	var e *rFieldError
	if o.UnitKind, e = rEnum("kind", w.Kind, unitKinds); e != nil {
		return e
	}
	if o.Status, e = rEnum("status", w.Status, unitStatuses); e != nil {
		return e
	}
	if w.SpeedKmh != nil {
		if o.SpeedKmh, e = rNeed("speed_kmh", w.SpeedKmh, 0, 250); e != nil {
			return e
		}
		o.HasSpeed = true
	}
	return o.rHeading(w)
}

func rNeed(name string, v *float64, min, max float64) (float64, *rFieldError) {
	if v == nil {
		return 0, rBad(ReasonMissingField, "%s: required", name)
	}
	if *v < min || *v > max {
		return 0, rBad(ReasonOutOfRange, "%s: %v outside %v..%v", name, *v, min, max)
	}
	return *v, nil
}

func rNeedInt(name string, v *float64, min, max int64) (int64, *rFieldError) {
	f, e := rNeed(name, v, float64(min), float64(max))
	if e != nil {
		return 0, e
	}
	if f != math.Trunc(f) {
		return 0, rBad(ReasonWrongType, "%s: want an integer, got %v", name, f)
	}
	return int64(f), nil
}

func rEnum(name string, v *string, allowed map[string]bool) (string, *rFieldError) {
	if v == nil {
		return "", rBad(ReasonMissingField, "%s: required", name)
	}
	if !allowed[*v] {
		return "", rBad(ReasonUnknownValue, "%s: unknown value %q", name, api.Clip(*v))
	}
	return *v, nil
}

func rOptString(name string, v *string, max int) (string, *rFieldError) {
	if v == nil {
		return "", nil
	}
	if len(*v) > max {
		return "", rBad(ReasonOutOfRange, "%s: longer than %d bytes", name, max)
	}
	return *v, rNoNUL(name, *v)
}

// PostgreSQL text cannot hold NUL; refuse it here rather than fail a batch.
func rNoNUL(name, s string) *rFieldError {
	if strings.IndexByte(s, 0) >= 0 {
		return rBad(ReasonBadUTF8, "%s: contains a NUL character", name)
	}
	return nil
}

func rJsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	return "invalid JSON: " + err.Error()
}

func FuzzDecodeMatchesReflection(f *testing.F) {
	for _, c := range badCases {
		if len(c.Payload) < 4096 {
			f.Add(string(c.Kind), c.Payload)
		}
	}
	for _, p := range benchPayloads {
		f.Add(string(p.kind), p.payload)
		f.Add(string(p.kind), "["+p.payload+","+p.payload+"]")
	}
	f.Add("traffic", `{"TS":`+okTS+`,"Lat":21,"LON":105.8,"speed_kmh":1,"volume":1,"occupancy":0,"lat":null}`)
	f.Add("traffic", `{"ts":`+okTS+`,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0,"lane":"\ud800x","id":"\u0041"}`)
	f.Add("emergency", `{"ts":`+okTS+`,"lat":21,"lon":105.8,"type":"fire","priority":1,"channel":"call_114","note":"x","extra":{"a":[1,2,{}]}}`)
	f.Add("status", `{"ts":1795334340000,"online":true,"online":null}`)
	f.Fuzz(func(t *testing.T, kind, payload string) {
		k := Kind(kind)
		obs, rejs := Decode(testLimits, k, "dev", []byte(payload), testNow)
		wantObs, wantRejs := reflectDecode(testLimits, k, "dev", []byte(payload), testNow)
		if len(obs) == 0 {
			obs = nil
		}
		if len(wantObs) == 0 {
			wantObs = nil
		}
		if !reflect.DeepEqual(obs, wantObs) {
			t.Fatalf("%q:\nobservations %+v\nreflection   %+v", payload, obs, wantObs)
		}
		if len(rejs) != len(wantRejs) {
			t.Fatalf("%q:\nrejections %+v\nreflection %+v", payload, rejs, wantRejs)
		}
		for i := range rejs {
			if rejs[i].Item != wantRejs[i].Item || rejs[i].Reason != wantRejs[i].Reason {
				t.Fatalf("%q:\nrejections %+v\nreflection %+v", payload, rejs, wantRejs)
			}
		}
	})
}
