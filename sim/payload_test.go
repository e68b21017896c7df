package sim

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every malformed case, for every kind it applies to, breaks exactly the
// rule it claims and no other.
func TestCorpusEachCaseBreaksExactlyItsRule(t *testing.T) {
	if len(badCorpus) < 40 {
		t.Errorf("corpus has %d cases, want at least 40", len(badCorpus))
	}
	for _, r := range BadReasons {
		if len(casesByReason[r]) == 0 {
			t.Errorf("reason %s has no case", r)
		}
	}
	ts := monday7
	pos := Point{Lon: 105.8542, Lat: 21.0285}
	for i := range badCorpus {
		c := &badCorpus[i]
		for _, kind := range Kinds {
			if !c.applies(kind) {
				continue
			}
			t.Run(c.reason+"/"+c.name+"/"+kind, func(t *testing.T) {
				in := &badInput{prefix: "city", kind: kind, device: "dev-00004-001", id: "r1-42", ts: ts, pos: pos,
					rng: rand.New(rand.NewPCG(1, 2))}
				if got := Check("city", in.topic(), in.base().json(), ts); len(got) != 0 {
					t.Fatalf("the valid base already fails: %v\n%s", got, in.base().json())
				}
				m := makeBad(c, in)
				got := Check("city", m.Topic, m.Payload, ts)
				if !slices.Equal(got, []string{c.reason}) {
					t.Errorf("Check = %v, want [%s]\ntopic %q\npayload %.300q", got, c.reason, m.Topic, m.Payload)
				}
				if m.Bad != c.reason {
					t.Errorf("Bad = %q", m.Bad)
				}
				if c.reason == "batch_too_large" && len(m.Payload) > MaxPayload {
					t.Errorf("batch of %d bytes is also too large", len(m.Payload))
				}
			})
		}
	}
}

// The checker itself: a few decisions spelled out.
func TestCheck(t *testing.T) {
	now := monday7
	ok := `{"ts":"2026-03-02T07:00:00.000+07:00","lat":21.0285,"lon":105.8542,"speed_kmh":30,"volume":10,"occupancy":0.2}`
	for _, tc := range []struct {
		name, topic, payload string
		want                 []string
	}{
		{"valid", "city/traffic/s1", ok, nil},
		{"valid epoch ms", "city/traffic/s1", strings.Replace(ok, `"2026-03-02T07:00:00.000+07:00"`, "1772409600000", 1), nil},
		{"valid batch", "city/traffic/s1", "[" + ok + "," + ok + "]", nil},
		{"status without position", "city/status/s1", `{"ts":1772409600000,"online":false}`, nil},
		{"four minutes ahead is fine", "city/traffic/s1", strings.Replace(ok, "07:00:00.000", "07:04:00.000", 1), nil},
		{"empty array", "city/traffic/s1", `[]`, []string{"empty"}},
		{"wrong prefix", "town/traffic/s1", ok, []string{"bad_topic"}},
		{"two faults", "city/traffic/s1", strings.Replace(strings.Replace(ok, `"volume":10`, `"volume":-1`, 1), `"ts"`, `"tz"`, 1), []string{"missing_field", "out_of_range"}},
		{"string number", "city/traffic/s1", strings.Replace(ok, `"speed_kmh":30`, `"speed_kmh":"30"`, 1), []string{"wrong_type"}},
		{"NaN string", "city/traffic/s1", strings.Replace(ok, `"lat":21.0285`, `"lat":"NaN"`, 1), []string{"wrong_type"}},
		{"top-level number", "city/traffic/s1", `42`, []string{"bad_json"}},
		{"old heartbeat", "city/status/s1", `{"ts":"2026-01-01T00:00:00+07:00","online":false}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check("city", tc.topic, []byte(tc.payload), now)
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

// decoded is a generated payload read back.
type decoded struct {
	ID        string   `json:"id"`
	TS        any      `json:"ts"`
	Lat       float64  `json:"lat"`
	Lon       float64  `json:"lon"`
	Speed     *float64 `json:"speed_kmh"`
	Occupancy float64  `json:"occupancy"`
	Event     string   `json:"event"`
	Conf      float64  `json:"confidence"`
	Type      string   `json:"type"`
	Channel   string   `json:"channel"`
	Priority  int      `json:"priority"`
	Status    string   `json:"status"`
	Kind      string   `json:"kind"`
}

func decodeTS(t *testing.T, v any) time.Time {
	t.Helper()
	switch x := v.(type) {
	case string:
		ts, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(x, "+07:00") {
			t.Errorf("ts %q not in Hanoi time", x)
		}
		return ts
	case float64:
		return time.UnixMilli(int64(x))
	}
	t.Fatalf("ts %v (%T)", v, v)
	return time.Time{}
}

// Every generated valid message passes the contract's rules, says what
// the generator thinks it says, and every malformed one earns exactly its
// reason.
func TestGeneratedMessages(t *testing.T) {
	cfg := smallConfig(t)
	cfg.BadRatio = 0.1
	cfg.Scenarios = "all"
	cfg.Prefix = "hn"
	msgs, _ := generate(t, cfg, 8*time.Minute)
	if len(msgs) < 2000 {
		t.Fatalf("only %d messages in 8 simulated minutes", len(msgs))
	}
	kinds, reasons := map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	for _, m := range msgs {
		got := Check("hn", m.Topic, m.Payload, m.TS)
		if m.Bad != "" {
			reasons[m.Bad]++
			if !slices.Equal(got, []string{m.Bad}) {
				t.Errorf("%s/%s: Check = %v\n%s %.300q", m.Bad, m.Variant, got, m.Topic, m.Payload)
			}
			continue
		}
		kinds[m.Kind]++
		if len(got) != 0 {
			t.Errorf("valid message fails %v: %s %s", got, m.Topic, m.Payload)
			continue
		}
		if m.Topic != topic("hn", m.Kind, m.Device) || !idRE.MatchString(m.Device) {
			t.Errorf("topic %q for %s %s", m.Topic, m.Kind, m.Device)
		}
		var d decoded
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID != m.ID || ids[d.ID] {
			t.Errorf("id %q (message says %q; repeated %v)", d.ID, m.ID, ids[d.ID])
		}
		ids[d.ID] = true
		if ts := decodeTS(t, d.TS); !ts.Equal(m.TS.Truncate(time.Millisecond)) {
			t.Errorf("ts %v, generated at %v", ts, m.TS)
		}
		if m.Items != 1 {
			t.Errorf("items %d", m.Items)
		}
	}
	for _, k := range Kinds {
		if kinds[k] == 0 {
			t.Errorf("no %s message", k)
		}
	}
	if len(reasons) < 12 {
		t.Errorf("only %d reasons among %d malformed messages: %v", len(reasons), len(msgs)/10, reasons)
	}
	t.Logf("%d messages: %v; malformed %v", len(msgs), kinds, reasons)
}

func TestBatches(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Batch = 5
	msgs, _ := generate(t, cfg, 6*time.Minute)
	var batches int
	for _, m := range msgs {
		if got := Check("city", m.Topic, m.Payload, m.TS); len(got) != 0 {
			t.Fatalf("%v: %s", got, m.Payload)
		}
		if m.Kind != KindTraffic {
			continue
		}
		var arr []decoded
		if err := json.Unmarshal(m.Payload, &arr); err != nil {
			t.Fatalf("traffic payload is not an array: %v", err)
		}
		if len(arr) != 5 || m.Items != 5 {
			t.Fatalf("batch of %d (items %d)", len(arr), m.Items)
		}
		for i := 1; i < len(arr); i++ {
			if a, b := decodeTS(t, arr[i-1].TS), decodeTS(t, arr[i].TS); b.Sub(a) != time.Minute {
				t.Fatalf("readings %v apart", b.Sub(a))
			}
		}
		batches++
	}
	if batches < 200 {
		t.Errorf("%d batches from 200 sensors in 6 min", batches)
	}
}

// Same seed, same devices and messages; another seed, another city.
func TestSeedRepeatable(t *testing.T) {
	cfg := smallConfig(t)
	cfg.BadRatio = 0.05
	cfg.RunID = "r"
	cfg.Scenarios = "congestion@0s,accident@1m,fire@2m"
	a, _ := generate(t, cfg, 3*time.Minute)
	b, _ := generate(t, cfg, 3*time.Minute)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d messages", len(a), len(b))
	}
	for i := range a {
		if a[i].Topic != b[i].Topic || !bytes.Equal(a[i].Payload, b[i].Payload) {
			t.Fatalf("message %d differs:\n%s %s\n%s %s", i, a[i].Topic, a[i].Payload, b[i].Topic, b[i].Payload)
		}
	}
	cfg.Seed++
	c, _ := generate(t, cfg, time.Minute)
	same := 0
	for i := range min(len(a), len(c)) {
		if bytes.Equal(a[i].Payload, c[i].Payload) {
			same++
		}
	}
	if same > len(c)/10 {
		t.Errorf("seed %d and %d share %d of %d payloads", cfg.Seed-1, cfg.Seed, same, len(c))
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := parseScenarios("congestion@90s, fire")
	if err != nil || len(got) != 2 || got[0].at != 90*time.Second || got[1].name != "fire" || got[1].at != 2*time.Minute {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"flood", "fire@soon", "accident@-1m"} {
		if _, err := parseScenarios(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if all, _ := parseScenarios("all"); len(all) != 3 {
		t.Errorf("all = %v", all)
	}
}
