package streams

import (
	"strings"
	"testing"

	"ioc/api"
)

func TestParseSubscribe(t *testing.T) {
	known := func(w string) bool { return w == "00004" || w == "00008" }
	cases := []struct {
		in, err string
	}{
		{`{"type":"subscribe"}`, ""},
		{`{"type":"subscribe","layers":["incidents","devices","units","wards"],"bbox":[105.78,20.98,105.9,21.06],"wards":["00004"],"min_severity":"moderate","since":12,"epoch":"e"}`, ""},
		{`{"type":"subscribe","layers":["cats"]}`, "unknown layer"},
		{`{"type":"subscribe","layers":["units","units"]}`, "twice"},
		{`{"type":"subscribe","bbox":[1,2,3]}`, "bbox"},
		{`{"type":"subscribe","bbox":[106,21,105,22]}`, "bbox"},
		{`{"type":"subscribe","bbox":[0,0,500,1]}`, "bbox"},
		{`{"type":"subscribe","wards":["99999"]}`, "unknown ward"},
		{`{"type":"subscribe","min_severity":"huge"}`, "min_severity"},
		{`{"type":"subscribe","since":-1}`, "since"},
		{`{"type":"subscribe","since":"x"}`, "not a subscribe"},
		{`{"type":"subscribe","extra":1}`, "not a subscribe"},
		{`{"type":"hello"}`, "type"},
		{`{"type":"subscribe"}{"type":"subscribe"}`, "one JSON object"},
		{`not json`, "not a subscribe"},
		{`{"type":"subscribe","epoch":"` + strings.Repeat("e", 65) + `"}`, "epoch"},
		{strings.Repeat(" ", MaxMessageBytes+1), "larger"},
	}
	for _, c := range cases {
		_, err := ParseSubscribe([]byte(c.in), known)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%.60s: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%.60s: got %v, want %q", c.in, err, c.err)
		}
	}
}

func TestViewNarrowsToScope(t *testing.T) {
	scoped := api.Caller{Name: "w", Role: "operator", Wards: []string{"00004"}}
	v, ok := newView(Subscribe{Layers: []string{LayerIncidents}}, scoped)
	if !ok || !v.incident(incidentKey{ward: "00004", sev: 0}) || v.incident(incidentKey{ward: "00008", sev: 3}) || v.incident(incidentKey{ward: "", sev: 3}) {
		t.Errorf("scoped view: %+v", v)
	}
	if _, ok := newView(Subscribe{Layers: []string{LayerIncidents}, Wards: []string{"00008"}}, scoped); ok {
		t.Error("a scoped caller got a view of another ward")
	}
	v, _ = newView(Subscribe{Layers: []string{LayerIncidents}, Wards: []string{"00004", "00008"}}, scoped)
	if v.incident(incidentKey{ward: "00008"}) {
		t.Error("asking for more wards widened the scope")
	}
	city, _ := newView(Subscribe{Layers: []string{LayerIncidents}, BBox: []float64{105, 21, 106, 22}, MinSeverity: "severe"}, api.Caller{Role: "operator"})
	for _, c := range []struct {
		k    incidentKey
		want bool
	}{
		{incidentKey{lon: 105.5, lat: 21.5, sev: 2}, true},
		{incidentKey{lon: 105.5, lat: 21.5, sev: 1}, false},
		{incidentKey{lon: 107, lat: 21.5, sev: 3}, false},
		{incidentKey{ward: "x", lon: 105.5, lat: 21.5, sev: 3}, true},
	} {
		if got := city.incident(c.k); got != c.want {
			t.Errorf("%+v: %v, want %v", c.k, got, c.want)
		}
	}
}

func FuzzParseSubscribe(f *testing.F) {
	f.Add([]byte(`{"type":"subscribe","layers":["incidents"],"bbox":[105.78,20.98,105.9,21.06],"wards":["00004"],"min_severity":"moderate","since":1}`))
	f.Add([]byte(`{"type":"subscribe","bbox":[1e308,-1e308,0,0]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := ParseSubscribe(raw, func(string) bool { return true })
		if err != nil {
			return
		}
		if len(s.Layers) == 0 || len(s.Layers) > 4 || (s.BBox != nil && len(s.BBox) != 4) || len(s.Wards) > maxWards {
			t.Fatalf("accepted %q as %+v", raw, s)
		}
		if v, ok := newView(s, api.Caller{Wards: []string{"00004"}}); ok && v.wards == nil {
			t.Fatal("a scoped view without wards")
		}
	})
}
