package streams

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// The hand-written encoders give what json.Marshal gives.
func TestDeviceStateJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	vol := int64(17)
	seen := time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)
	cases := []deviceState{
		{ID: "S-1", Online: true, LastSeen: seen, LastTS: seen.Add(-time.Second)},
		{ID: "tfc-00619-025", Kind: "traffic", Location: &pointJSON{"Point", [2]float64{105.753473, 21.052629}},
			Ward: &wardJSON{Code: "00004", Name: `Phường "Ba Đình"` + "\u2028<&>"}, Online: true, LastSeen: seen,
			LastTS: seen.In(time.FixedZone("ICT", 7*3600)), SpeedKmh: f(42.7), Volume: &vol, Occupancy: f(0.034)},
		{ID: "cam.7", Kind: "camera", Event: "fire", Online: false, LastSeen: seen, LastTS: seen,
			Location: &pointJSON{"Point", [2]float64{1e-7, -1e21}}, SpeedKmh: f(0), Occupancy: f(1e20), Volume: new(int64)},
		{ID: "cc115", Kind: "emergency", Type: "medical", LastSeen: seen, LastTS: seen, SpeedKmh: f(math.SmallestNonzeroFloat64), Occupancy: f(123456789.125)},
	}
	for _, d := range cases {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}
