package alerts

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// An observation just inside the correlation radius joins the open
// incident, one just outside opens its own, north and east alike: the
// index prefilter (a box in degrees) never cuts what the distance on the
// sphere keeps.
func TestCorrelationRadiusEdges(t *testing.T) {
	v := newEnv(t, nil)
	r := v.e.Rules().correlationFor("medical").RadiusM
	const lon0, lat0 = 105.85, 21.03
	const earth = 6371008.8
	north := func(m float64) (float64, float64) { return lon0, lat0 + m/earth*180/math.Pi }
	east := func(m float64) (float64, float64) {
		return lon0 + m/(earth*math.Cos(lat0*math.Pi/180))*180/math.Pi, lat0
	}
	now := time.Now()
	n := 0
	call := func(lon, lat float64) string {
		n++
		id := fmt.Sprintf("edge-%d", n)
		return v.apply(t, Trigger{Rule: "emergency", Kind: "medical", Severity: "severe", Title: "medical", Lon: lon, Lat: lat,
			At: now, DeviceID: "cc115-hanoi", Evidence: []Evidence{{DeviceID: "cc115-hanoi", Kind: "emergency", ObservedAt: now, MsgID: id}}})
	}
	for _, dir := range []struct {
		name string
		at   func(float64) (float64, float64)
	}{{"north", north}, {"east", east}} {
		v.pool.Exec(v.ctx, `UPDATE incidents SET status = 'resolved'`)
		first := call(lon0, lat0)
		if got := call(dir.at(r * 0.99)); got != first {
			t.Fatalf("%s: a call %.0f m away (radius %.0f m) opened %s instead of joining %s", dir.name, r*0.99, r, got, first)
		}
		if got := call(dir.at(r * 1.05)); got == first {
			t.Fatalf("%s: a call %.0f m away (radius %.0f m) joined", dir.name, r*1.05, r)
		}
	}
}
