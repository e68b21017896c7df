package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// BadReasons are the reject reasons the malformed corpus covers, in the
// order the summary lists them.
var BadReasons = []string{
	"bad_json", "wrong_type", "missing_field", "out_of_range", "future_ts",
	"too_old", "too_large", "bad_topic", "bad_utf8", "batch_too_large",
	"unknown_value", "empty", "unknown_kind", "outside_service_area",
}

// badInput is what a malformed case starts from: a real device and a valid
// reading of it, so that everything but the one broken rule is right.
type badInput struct {
	prefix, kind, device, id string
	ts                       time.Time
	pos                      Point
	rng                      *rand.Rand
}

// kv is one field with its value as raw JSON; the corpus edits these lists.
type kv struct{ k, v string }

type fields []kv

func (f fields) set(k, v string) fields {
	out := append(fields(nil), f...)
	for i := range out {
		if out[i].k == k {
			out[i].v = v
			return out
		}
	}
	return append(out, kv{k, v})
}

func (f fields) del(ks ...string) fields {
	var out fields
next:
	for _, x := range f {
		for _, k := range ks {
			if x.k == k {
				continue next
			}
		}
		out = append(out, x)
	}
	return out
}

func (f fields) json() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(x.k))
		b.WriteByte(':')
		b.WriteString(x.v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func q(s string) string            { return string(appendJSONString(nil, s)) }
func fnum(x float64) string        { return strconv.FormatFloat(x, 'f', -1, 64) }
func rfc(t time.Time) string       { return q(t.In(hanoi).Format(rfc3339ms)) }
func (in *badInput) topic() string { return topic(in.prefix, in.kind, in.device) }

// base is a valid object of the input's kind.
func (in *badInput) base() fields {
	f := fields{{"id", q(in.id)}, {"ts", rfc(in.ts)}}
	if in.kind != KindStatus {
		f = append(f, kv{"lat", fnum(in.pos.Lat)}, kv{"lon", fnum(in.pos.Lon)})
	}
	switch in.kind {
	case KindTraffic:
		f = append(f, kv{"speed_kmh", "38.5"}, kv{"volume", "21"}, kv{"occupancy", "0.18"}, kv{"interval_s", "60"})
	case KindCamera:
		f = append(f, kv{"event", q("illegal_parking")}, kv{"confidence", "0.81"}, kv{"zone", q("sidewalk")})
	case KindEmergency:
		f = append(f, kv{"type", q("medical")}, kv{"priority", "3"}, kv{"channel", q("call_115")})
	case KindUnits:
		f = append(f, kv{"kind", q("ambulance")}, kv{"status", q("en_route")}, kv{"speed_kmh", "32"}, kv{"heading_deg", "90"})
	case KindStatus:
		f = append(f, kv{"online", "true"})
	}
	return f
}

// kindField is the kind's main required field, with a value of the wrong
// type and one out of range ("" when the kind has none).
func kindField(kind string) (name, wrongType, outOfRange string) {
	switch kind {
	case KindTraffic:
		return "speed_kmh", `"42.5"`, "300"
	case KindCamera:
		return "confidence", `"high"`, "1.3"
	case KindEmergency:
		return "priority", `"2"`, "7"
	case KindUnits:
		return "status", "3", ""
	case KindStatus:
		return "online", `"yes"`, ""
	}
	return "", "", ""
}

// badCase is one kind of malformed message. kinds limits the topic kinds it
// applies to (nil: all five).
type badCase struct {
	reason, name string
	kinds        []string
	make         func(in *badInput) (topic string, payload []byte)
}

var positional = []string{KindTraffic, KindCamera, KindEmergency, KindUnits}

func onBase(edit func(in *badInput, f fields) fields) func(in *badInput) (string, []byte) {
	return func(in *badInput) (string, []byte) { return in.topic(), edit(in, in.base()).json() }
}

// badCorpus covers every reason in BadReasons, usually several ways.
var badCorpus = []badCase{
	{"bad_json", "truncated", nil, func(in *badInput) (string, []byte) {
		b := in.base().json()
		return in.topic(), b[:len(b)/2]
	}},
	{"bad_json", "trailing_comma", nil, func(in *badInput) (string, []byte) {
		b := in.base().json()
		return in.topic(), append(b[:len(b)-1:len(b)-1], ",}"...)
	}},
	{"bad_json", "single_quotes", nil, func(in *badInput) (string, []byte) {
		return in.topic(), bytes.ReplaceAll(in.base().json(), []byte(`"`), []byte(`'`))
	}},
	{"bad_json", "nan_literal", positional, onBase(func(in *badInput, f fields) fields { return f.set("lat", "NaN") })},
	{"bad_json", "two_objects", nil, func(in *badInput) (string, []byte) {
		b := in.base().json()
		return in.topic(), append(append(b[:len(b):len(b)], '\n'), b...)
	}},
	{"bad_json", "garbage", nil, func(in *badInput) (string, []byte) {
		return in.topic(), []byte("\x01\x02GET / HTTP/1.1\r\n")
	}},
	{"bad_json", "unquoted_key", nil, func(in *badInput) (string, []byte) {
		return in.topic(), []byte(`{ts:` + strconv.FormatInt(in.ts.UnixMilli(), 10) + `}`)
	}},

	{"wrong_type", "ts_bool", nil, onBase(func(in *badInput, f fields) fields { return f.set("ts", "true") })},
	{"wrong_type", "lat_string", positional, onBase(func(in *badInput, f fields) fields {
		return f.set("lat", q(fnum(in.pos.Lat)))
	})},
	{"wrong_type", "field_type", nil, onBase(func(in *badInput, f fields) fields {
		k, v, _ := kindField(in.kind)
		return f.set(k, v)
	})},
	{"bad_json", "top_level_string", nil, func(in *badInput) (string, []byte) {
		return in.topic(), []byte(`"hello from ` + in.device + `"`)
	}},
	{"wrong_type", "array_of_a_number", nil, func(in *badInput) (string, []byte) {
		return in.topic(), []byte(`[42]`) // one element, so one rejection
	}},

	{"missing_field", "no_ts", nil, onBase(func(in *badInput, f fields) fields { return f.del("ts") })},
	{"missing_field", "no_position", positional, func(in *badInput) (string, []byte) {
		// A device never seen, so it has no registered position to fall back on.
		dev := fmt.Sprintf("%s-new%d", in.device[:min(len(in.device), 50)], in.rng.IntN(1000))
		return topic(in.prefix, in.kind, dev), in.base().del("lat", "lon").json()
	}},
	{"missing_field", "no_kind_field", nil, onBase(func(in *badInput, f fields) fields {
		switch in.kind {
		case KindTraffic:
			return f.del("speed_kmh")
		case KindCamera:
			return f.del("event")
		case KindEmergency:
			return f.del("type")
		case KindUnits:
			return f.del("status")
		}
		return f.del("online")
	})},

	{"out_of_range", "lat_91", positional, onBase(func(in *badInput, f fields) fields { return f.set("lat", "91.5") })},
	{"out_of_range", "lon_181", positional, onBase(func(in *badInput, f fields) fields { return f.set("lon", "181.2") })},
	{"out_of_range", "null_island", positional, onBase(func(in *badInput, f fields) fields {
		return f.set("lat", "0").set("lon", "0")
	})},
	// JSON has no NaN; a device that sends one sends a string, and a string
	// where a number belongs is wrong_type (ingest decides so too).
	{"wrong_type", "lat_nan_string", positional, onBase(func(in *badInput, f fields) fields { return f.set("lat", `"NaN"`) })},
	{"wrong_type", "lon_nan_string", positional, onBase(func(in *badInput, f fields) fields { return f.set("lon", `"NaN"`) })},
	{"out_of_range", "field_range", []string{KindTraffic, KindCamera, KindEmergency}, onBase(func(in *badInput, f fields) fields {
		k, _, v := kindField(in.kind)
		return f.set(k, v)
	})},
	{"out_of_range", "occupancy_1.7", []string{KindTraffic}, onBase(func(in *badInput, f fields) fields { return f.set("occupancy", "1.7") })},
	{"out_of_range", "negative_volume", []string{KindTraffic}, onBase(func(in *badInput, f fields) fields { return f.set("volume", "-4") })},
	{"out_of_range", "note_2001", []string{KindEmergency}, onBase(func(in *badInput, f fields) fields {
		return f.set("note", q(strings.Repeat("ơ", MaxNote+1)))
	})},
	{"out_of_range", "heading_400", []string{KindUnits}, onBase(func(in *badInput, f fields) fields { return f.set("heading_deg", "400") })},
	{"out_of_range", "negative_speed", []string{KindUnits}, onBase(func(in *badInput, f fields) fields { return f.set("speed_kmh", "-3") })},
	{"out_of_range", "id_129", nil, onBase(func(in *badInput, f fields) fields { return f.set("id", q(strings.Repeat("x", 129))) })},

	{"future_ts", "plus_1h", nil, onBase(func(in *badInput, f fields) fields { return f.set("ts", rfc(in.ts.Add(time.Hour))) })},
	{"future_ts", "plus_30d_ms", nil, onBase(func(in *badInput, f fields) fields {
		return f.set("ts", strconv.FormatInt(in.ts.Add(30*24*time.Hour).UnixMilli(), 10))
	})},
	// Status messages are exempt from the late window (a last will may be
	// delivered days later), so only the kinds with observations.
	{"too_old", "minus_8d", positional, onBase(func(in *badInput, f fields) fields { return f.set("ts", rfc(in.ts.Add(-8*24*time.Hour))) })},
	{"too_old", "minus_1y_ms", positional, onBase(func(in *badInput, f fields) fields {
		return f.set("ts", strconv.FormatInt(in.ts.AddDate(-1, 0, 0).UnixMilli(), 10))
	})},

	{"too_large", "padded_300k", nil, func(in *badInput) (string, []byte) {
		b := in.base().json()
		pad := bytes.Repeat([]byte{' '}, 300<<10)
		return in.topic(), append(append([]byte{'{'}, pad...), b[1:]...)
	}},

	{"bad_topic", "id_space", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, in.kind, "tram 7"), in.base().json()
	}},
	{"bad_topic", "id_at", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, in.kind, in.device+"@hoankiem"), in.base().json()
	}},
	{"bad_topic", "id_65", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, in.kind, strings.Repeat("a", 65)), in.base().json()
	}},
	{"bad_topic", "id_vietnamese", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, in.kind, "cảm-biến-01"), in.base().json()
	}},
	{"bad_topic", "id_empty", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, in.kind, ""), in.base().json()
	}},

	{"bad_utf8", "id_bytes", nil, onBase(func(in *badInput, f fields) fields { return f.set("id", "\"m-\xff\xfe\"") })},
	{"bad_utf8", "note_bytes", []string{KindEmergency}, onBase(func(in *badInput, f fields) fields {
		return f.set("note", "\"Ch\xe1y nh\xe0\"") // Latin-1, not UTF-8
	})},
	{"bad_utf8", "zone_bytes", []string{KindCamera}, onBase(func(in *badInput, f fields) fields { return f.set("zone", "\"\xc3\x28\"") })},

	{"batch_too_large", "array_1001", nil, func(in *badInput) (string, []byte) {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range MaxBatch + 1 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(in.base().del("id").set("ts", strconv.FormatInt(in.ts.UnixMilli()-int64(i), 10)).json())
		}
		b.WriteByte(']')
		return in.topic(), b.Bytes()
	}},

	{"unknown_value", "camera_explosion", []string{KindCamera}, onBase(func(in *badInput, f fields) fields { return f.set("event", q("explosion")) })},
	{"unknown_value", "type_earthquake", []string{KindEmergency}, onBase(func(in *badInput, f fields) fields { return f.set("type", q("earthquake")) })},
	{"unknown_value", "channel_911", []string{KindEmergency}, onBase(func(in *badInput, f fields) fields { return f.set("channel", q("call_911")) })},
	{"unknown_value", "unit_tank", []string{KindUnits}, onBase(func(in *badInput, f fields) fields { return f.set("kind", q("tank")) })},
	{"unknown_value", "status_lunch", []string{KindUnits}, onBase(func(in *badInput, f fields) fields { return f.set("status", q("lunch_break")) })},

	{"empty", "zero_bytes", nil, func(in *badInput) (string, []byte) { return in.topic(), []byte{} }},

	{"unknown_kind", "weather", nil, func(in *badInput) (string, []byte) {
		return topic(in.prefix, "weather", "ws-"+in.device), in.base().json()
	}},

	{"outside_service_area", "ho_chi_minh_city", positional, onBase(func(in *badInput, f fields) fields {
		return f.set("lat", "10.7769").set("lon", "106.7009")
	})},
	{"outside_service_area", "da_nang", positional, onBase(func(in *badInput, f fields) fields {
		return f.set("lat", "16.0544").set("lon", "108.2022")
	})},
}

// casesByReason indexes the corpus.
var casesByReason = func() map[string][]*badCase {
	m := map[string][]*badCase{}
	for i := range badCorpus {
		c := &badCorpus[i]
		m[c.reason] = append(m[c.reason], c)
	}
	return m
}()

func (c *badCase) applies(kind string) bool {
	if c.kinds == nil {
		return true
	}
	for _, k := range c.kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// makeBad builds the malformed message of case c from input in.
func makeBad(c *badCase, in *badInput) Message {
	t, p := c.make(in)
	_, dev, _ := strings.Cut(strings.TrimPrefix(t, in.prefix+"/"), "/")
	return Message{Topic: t, Payload: p, Kind: in.kind, Device: dev, ID: in.id, Bad: c.reason, Variant: c.name}
}
