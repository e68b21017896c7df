package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

var testLimits = Limits{
	Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
	LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute,
}

const okTS = `"2026-11-22T14:59:00+07:00"`

func TestParseTopic(t *testing.T) {
	cases := []struct {
		topic  string
		kind   Kind
		id     string
		reason string
	}{
		{"city/traffic/S-001", KindTraffic, "S-001", ""},
		{"city/camera/cam.7_a", KindCamera, "cam.7_a", ""},
		{"city/emergency/call-115", KindEmergency, "call-115", ""},
		{"city/units/AMB_12", KindUnit, "AMB_12", ""},
		{"city/status/S-001", KindStatus, "S-001", ""},
		{"city/drones/D1", "", "", ReasonUnknownKind},
		{"town/traffic/S1", "", "", ReasonBadTopic},
		{"city/traffic", "", "", ReasonBadTopic},
		{"city/traffic/", "", "", ReasonBadTopic},
		{"city/traffic/a/b", "", "", ReasonBadTopic},
		{"city/traffic/" + strings.Repeat("x", 65), "", "", ReasonBadTopic},
		{"city/traffic/S 1", "", "", ReasonBadTopic},
		{"city/traffic/Sở-1", "", "", ReasonBadTopic},
	}
	for _, c := range cases {
		kind, id, rej := ParseTopic("city", c.topic)
		switch {
		case c.reason == "" && (rej != nil || kind != c.kind || id != c.id):
			t.Errorf("%q: got %v %q %+v", c.topic, kind, id, rej)
		case c.reason != "" && (rej == nil || rej.Reason != c.reason):
			t.Errorf("%q: got %+v, want %s", c.topic, rej, c.reason)
		}
	}
}

func TestDecodeValid(t *testing.T) {
	cases := []struct {
		kind    Kind
		payload string
		check   func(Observation) bool
	}{
		{KindTraffic, `{"ts":` + okTS + `,"lat":21.03,"lon":105.85,"speed_kmh":42.5,"volume":17,"occupancy":0.31,"id":"m1"}`,
			func(o Observation) bool {
				return o.SpeedKmh == 42.5 && o.Volume == 17 && o.IntervalS == 60 && o.MsgID == "m1" && o.HasPos && o.TS.Equal(testNow.Add(-time.Minute))
			}},
		{KindTraffic, `{"ts":1795334340000,"lat":21.03,"lon":105.85,"speed_kmh":0,"volume":0,"occupancy":1,"interval_s":30,"lane":2,"heading_deg":90}`,
			func(o Observation) bool {
				return o.TS.Equal(testNow.Add(-time.Minute)) && o.IntervalS == 30 && o.Lane == "2" && o.HasHeading
			}},
		{KindCamera, `{"ts":` + okTS + `,"lat":21.0,"lon":105.8,"event":"accident","confidence":0.93,"count":2,"snapshot_url":"https://cam.example/1.jpg","zone":"A"}`,
			func(o Observation) bool {
				return o.Event == "accident" && o.Confidence == 0.93 && o.HasCount && o.Count == 2
			}},
		{KindEmergency, `{"ts":` + okTS + `,"lat":21.0,"lon":105.8,"type":"medical","priority":1,"channel":"call_115","note":"Người bị thương, đường Láng","caller_ref":"c-9"}`,
			func(o Observation) bool {
				return o.Type == "medical" && o.Priority == 1 && strings.HasPrefix(o.Note, "Người")
			}},
		{KindUnit, `{"ts":` + okTS + `,"lat":21.0,"lon":105.8,"kind":"ambulance","status":"en_route","speed_kmh":35}`,
			func(o Observation) bool { return o.UnitKind == "ambulance" && o.Status == "en_route" && o.HasSpeed }},
		{KindStatus, `{"ts":` + okTS + `,"online":false}`, func(o Observation) bool { return !o.Online }},
		// A last will's ts is from when the device connected: old is fine.
		{KindStatus, `{"ts":"2026-01-01T00:00:00Z","online":false}`, func(o Observation) bool { return o.TS.Year() == 2026 }},
		// No position: allowed here, the ingester checks for a registered one.
		{KindTraffic, `{"ts":` + okTS + `,"speed_kmh":10,"volume":1,"occupancy":0.1}`, func(o Observation) bool { return !o.HasPos }},
	}
	for i, c := range cases {
		obs, rejs := Decode(testLimits, c.kind, "dev-1", []byte(c.payload), testNow)
		if len(rejs) != 0 || len(obs) != 1 || !c.check(obs[0]) {
			t.Errorf("case %d: obs=%+v rejs=%+v", i, obs, rejs)
		}
	}
}

type badCase struct {
	Name, Reason string
	Kind         Kind
	Payload      string
}

// badCases is the corpus of hostile input: each must be refused with its
// reason. The fuzz test starts from it too.
var badCases = []badCase{
	{"empty", ReasonEmpty, KindTraffic, ``},
	{"blank", ReasonEmpty, KindTraffic, "  \n\t "},
	{"empty array", ReasonEmpty, KindTraffic, `[]`},
	{"truncated", ReasonBadJSON, KindTraffic, `{"ts":` + okTS + `,"lat":21.0`},
	{"trailing garbage", ReasonBadJSON, KindTraffic, `{"ts":1}}`},
	{"not json", ReasonBadJSON, KindTraffic, `hello`},
	{"bare number", ReasonBadJSON, KindTraffic, `42`},
	{"null", ReasonBadJSON, KindTraffic, `null`},
	{"NaN literal", ReasonBadJSON, KindTraffic, `{"ts":` + okTS + `,"lat":NaN,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"Infinity literal", ReasonBadJSON, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":Infinity,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"single quotes", ReasonBadJSON, KindTraffic, `{'ts':1}`},
	{"invalid utf8", ReasonBadUTF8, KindTraffic, "{\"ts\":" + okTS + ",\"lane\":\"\xff\xfe\"}"},
	{"NUL in note", ReasonBadUTF8, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"fire","priority":1,"channel":"call_114","note":"a\u0000b"}`},
	{"too large", ReasonTooLarge, KindTraffic, `{"note":"` + strings.Repeat("x", 300<<10) + `"}`},
	{"batch too large", ReasonBatchTooLarge, KindTraffic, "[" + strings.TrimSuffix(strings.Repeat(`{},`, 1001), ",") + "]"},
	{"missing ts", ReasonMissingField, KindTraffic, `{"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"null ts", ReasonMissingField, KindTraffic, `{"ts":null,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts wrong type", ReasonWrongType, KindTraffic, `{"ts":true,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts no offset", ReasonWrongType, KindTraffic, `{"ts":"2026-11-22T08:00:00","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts garbage", ReasonWrongType, KindTraffic, `{"ts":"yesterday","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts fractional ms", ReasonWrongType, KindTraffic, `{"ts":1795334340000.5,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts negative", ReasonOutOfRange, KindTraffic, `{"ts":-5,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts far future", ReasonFutureTS, KindTraffic, `{"ts":"2027-01-01T00:00:00Z","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts 10 min ahead", ReasonFutureTS, KindTraffic, `{"ts":"2026-11-22T15:10:00+07:00","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts too old", ReasonTooOld, KindTraffic, `{"ts":"2026-11-01T00:00:00Z","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts in seconds", ReasonTooOld, KindTraffic, `{"ts":1795334340,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"ts year 9999", ReasonFutureTS, KindTraffic, `{"ts":"9999-12-31T23:59:59Z","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lat only", ReasonMissingField, KindTraffic, `{"ts":` + okTS + `,"lat":21,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lon only", ReasonMissingField, KindTraffic, `{"ts":` + okTS + `,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lat as string", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":"21.0","lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"NaN as string", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":"NaN","lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lat 91", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":91,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lon -181", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":-181,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lat 1e308", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":1e308,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"lat overflow", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":1e999,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"null island", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":0,"lon":0,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"speed missing", ReasonMissingField, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"volume":1,"occupancy":0}`},
	{"speed negative", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":-1,"volume":1,"occupancy":0}`},
	{"speed 900", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":900,"volume":1,"occupancy":0}`},
	{"speed as object", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":{"v":1},"volume":1,"occupancy":0}`},
	{"volume fractional", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1.5,"occupancy":0}`},
	{"volume negative", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":-3,"occupancy":0}`},
	{"occupancy 1.5", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":1.5}`},
	{"interval zero", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0,"interval_s":0}`},
	{"heading 400", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0,"heading_deg":400}`},
	{"lane array", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0,"lane":[1]}`},
	{"id empty", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"id":"","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"id too long", ReasonOutOfRange, KindTraffic, `{"ts":` + okTS + `,"id":"` + strings.Repeat("i", 129) + `","lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"id number", ReasonWrongType, KindTraffic, `{"ts":` + okTS + `,"id":7,"lat":21,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0}`},
	{"camera unknown event", ReasonUnknownValue, KindCamera, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"event":"ufo","confidence":0.5}`},
	{"camera event missing", ReasonMissingField, KindCamera, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"confidence":0.5}`},
	{"camera confidence 2", ReasonOutOfRange, KindCamera, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"event":"fire","confidence":2}`},
	{"camera javascript url", ReasonBadURL, KindCamera, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"event":"fire","confidence":0.9,"snapshot_url":"javascript:alert(1)"}`},
	{"camera file url", ReasonBadURL, KindCamera, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"event":"fire","confidence":0.9,"snapshot_url":"file:///etc/passwd"}`},
	{"emergency bad type", ReasonUnknownValue, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"alien","priority":1,"channel":"call_113"}`},
	{"emergency priority 0", ReasonOutOfRange, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"fire","priority":0,"channel":"call_114"}`},
	{"emergency priority 2.5", ReasonWrongType, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"fire","priority":2.5,"channel":"call_114"}`},
	{"emergency bad channel", ReasonUnknownValue, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"fire","priority":1,"channel":"call_911"}`},
	{"emergency note too long", ReasonOutOfRange, KindEmergency, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"type":"fire","priority":1,"channel":"call_114","note":"` + strings.Repeat("ư", 2001) + `"}`},
	{"unit bad kind", ReasonUnknownValue, KindUnit, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"kind":"tank","status":"available"}`},
	{"unit bad status", ReasonUnknownValue, KindUnit, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"kind":"fire","status":"asleep"}`},
	{"unit status missing", ReasonMissingField, KindUnit, `{"ts":` + okTS + `,"lat":21,"lon":105.8,"kind":"fire"}`},
	{"status online missing", ReasonMissingField, KindStatus, `{"ts":` + okTS + `}`},
	{"status online string", ReasonWrongType, KindStatus, `{"ts":` + okTS + `,"online":"false"}`},
	{"array of numbers", ReasonWrongType, KindTraffic, `[1,2,3]`},
}

func TestDecodeRejects(t *testing.T) {
	if len(badCases) < 40 {
		t.Fatalf("corpus has %d cases; the issue asks for at least 40", len(badCases))
	}
	for _, c := range badCases {
		t.Run(c.Name, func(t *testing.T) {
			obs, rejs := Decode(testLimits, c.Kind, "dev-1", []byte(c.Payload), testNow)
			if len(obs) != 0 || len(rejs) == 0 {
				t.Fatalf("accepted: obs=%+v", obs)
			}
			if rejs[0].Reason != c.Reason {
				t.Fatalf("reason %s (%s), want %s", rejs[0].Reason, rejs[0].Detail, c.Reason)
			}
			if rejs[0].Detail == "" {
				t.Fatal("no detail")
			}
		})
	}
}

// A gateway batch: good items are kept, bad ones refused by index.
func TestDecodeBatchMixed(t *testing.T) {
	good := `{"ts":` + okTS + `,"lat":21,"lon":105.8,"speed_kmh":30,"volume":4,"occupancy":0.2,"id":"%d"}`
	payload := "[" + fmt.Sprintf(good, 0) + `,{"ts":` + okTS + `,"lat":91,"lon":105.8,"speed_kmh":1,"volume":1,"occupancy":0},` +
		fmt.Sprintf(good, 2) + `,"oops"]`
	obs, rejs := Decode(testLimits, KindTraffic, "gw", []byte(payload), testNow)
	if len(obs) != 2 || obs[0].MsgID != "0" || obs[1].MsgID != "2" {
		t.Fatalf("obs = %+v", obs)
	}
	if len(rejs) != 2 || rejs[0].Item != 1 || rejs[0].Reason != ReasonOutOfRange || rejs[1].Item != 3 || rejs[1].Reason != ReasonWrongType {
		t.Fatalf("rejs = %+v", rejs)
	}
}

// FuzzDecode: whatever arrives, Decode neither panics nor both accepts and
// refuses the same item, and everything it accepts satisfies the contract.
func FuzzDecode(f *testing.F) {
	for _, c := range badCases {
		if len(c.Payload) < 4096 {
			f.Add(string(c.Kind), c.Payload)
		}
	}
	f.Add("traffic", `{"ts":`+okTS+`,"lat":21.03,"lon":105.85,"speed_kmh":42.5,"volume":17,"occupancy":0.31}`)
	f.Add("camera", `[{"ts":`+okTS+`,"lat":21,"lon":105.8,"event":"crowd","confidence":0.7,"count":40}]`)
	f.Add("units", `{"ts":1795334340000,"lat":21,"lon":105.8,"kind":"police","status":"available"}`)
	f.Fuzz(func(t *testing.T, kind, payload string) {
		k := Kind(kind)
		obs, rejs := Decode(testLimits, k, "dev", []byte(payload), testNow)
		if len(obs) == 0 && len(rejs) == 0 {
			t.Fatal("neither accepted nor refused")
		}
		for _, r := range rejs {
			if r.Reason == "" || r.Detail == "" {
				t.Fatalf("rejection without reason or detail: %+v", r)
			}
		}
		for _, o := range obs {
			if o.TS.After(testNow.Add(testLimits.FutureSkew)) || o.TS.Before(testNow.Add(-testLimits.LateWindow)) {
				t.Fatalf("accepted ts %v", o.TS)
			}
			if o.HasPos && (o.Lat < -90 || o.Lat > 90 || o.Lon < -180 || o.Lon > 180 || (o.Lat == 0 && o.Lon == 0)) {
				t.Fatalf("accepted position %v,%v", o.Lon, o.Lat)
			}
			for _, s := range []string{o.MsgID, o.Lane, o.Note, o.Zone, o.CallerRef, o.SnapshotURL} {
				if strings.IndexByte(s, 0) >= 0 {
					t.Fatalf("accepted NUL in %q", s)
				}
			}
		}
	})
}
