package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func fenceBody(geometry string) string {
	return `{"name":"Hoan Kiem walking street","tags":["pedestrian_zone"],"geometry":` + geometry + `}`
}

const okPolygon = `{"type":"Polygon","coordinates":[[[105.850,21.030],[105.856,21.030],[105.856,21.036],[105.850,21.036],[105.850,21.030]]]}`

func TestDecodeGeofenceValid(t *testing.T) {
	lim := DefaultGeofenceLimits()
	for _, c := range []struct{ name, body string }{
		{"polygon", fenceBody(okPolygon)},
		{"polygon with hole", fenceBody(`{"type":"Polygon","coordinates":[
			[[105.80,21.00],[105.90,21.00],[105.90,21.10],[105.80,21.10],[105.80,21.00]],
			[[105.82,21.02],[105.84,21.02],[105.84,21.04],[105.82,21.04],[105.82,21.02]]]}`)},
		{"multipolygon", fenceBody(`{"type":"MultiPolygon","coordinates":[
			[[[105.80,21.00],[105.81,21.00],[105.81,21.01],[105.80,21.00]]],
			[[[105.90,21.00],[105.91,21.00],[105.91,21.01],[105.90,21.00]]]]}`)},
		{"3D positions", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0,10],[105.9,21.0,10],[105.9,21.1,10],[105.8,21.0,10]]]}`)},
		{"circle", `{"name":"School gate","tags":["school"],"circle":{"center":[105.85,21.03],"radius_m":300},
			"active_hours":[{"days":[1,2,3,4,5],"from":"06:30","to":"17:30"}]}`},
		{"overnight hours", `{"name":"Night market","circle":{"center":[105.85,21.03],"radius_m":50},
			"active_hours":[{"days":[5,6],"from":"22:00","to":"02:00"}]}`},
	} {
		f, err := DecodeGeofence([]byte(c.body), lim)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		// The API form decodes back to the same fence.
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		delete(m, "id")
		b, _ = json.Marshal(m)
		if _, err := DecodeGeofence(b, lim); err != nil {
			t.Errorf("%s: round trip %s: %v", c.name, b, err)
		}
	}
}

func TestDecodeGeofenceHostile(t *testing.T) {
	lim := DefaultGeofenceLimits()
	lim.Region = bbox{104, 20, 107, 22}
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"type":"Polygon","coordinates":[[`)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "[105.8,21.%06d],", i)
		}
		b.WriteString(`[105.8,21.0]]]}`)
		return b.String()
	}
	for _, c := range []struct{ name, body, field, want string }{
		{"not JSON", `{"name":`, "body", "not a geofence JSON"},
		{"unknown field", `{"name":"x","colour":"red","geometry":` + okPolygon + `}`, "body", "unknown field"},
		{"no name", `{"geometry":` + okPolygon + `}`, "name", "required"},
		{"control chars", `{"name":"a\u0007b","geometry":` + okPolygon + `}`, "name", "control"},
		{"bad tag", `{"name":"x","tags":["Schools!"],"geometry":` + okPolygon + `}`, "tags[0]", "tag"},
		{"no geometry", `{"name":"x"}`, "geometry", "missing"},
		{"both", `{"name":"x","geometry":` + okPolygon + `,"circle":{"center":[105.8,21],"radius_m":5}}`, "body", "not both"},
		{"point", fenceBody(`{"type":"Point","coordinates":[105.8,21.0]}`), "geometry.type", "Polygon or MultiPolygon"},
		{"unclosed", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.1]]]}`), "geometry.coordinates[0]", "not closed"},
		{"too short", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.8,21.0]]]}`), "geometry.coordinates[0]", "at least 4"},
		{"collinear", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.85,21.0],[105.9,21.0],[105.8,21.0]]]}`), "geometry.coordinates[0]", "no area"},
		{"bow tie", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.1],[105.9,21.0],[105.8,21.1],[105.8,21.0]]]}`), "geometry.coordinates[0]", "intersects itself"},
		{"figure eight at a vertex", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.85,21.05],[105.9,21.0],[105.9,21.1],[105.85,21.05],[105.8,21.1],[105.8,21.0]]]}`), "geometry.coordinates[0]", "intersects itself"},
		{"spike", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.95,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.0]]]}`), "geometry.coordinates[0]", "intersects itself"},
		{"hole outside", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.1],[105.8,21.0]],[[106.0,21.0],[106.1,21.0],[106.1,21.1],[106.0,21.0]]]}`), "geometry.coordinates[1]", "outside"},
		{"hole crossing", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.1],[105.8,21.0]],[[105.85,21.05],[105.95,21.05],[105.95,21.06],[105.85,21.05]]]}`), "geometry", "rings intersect"},
		{"overlapping polygons", fenceBody(`{"type":"MultiPolygon","coordinates":[[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.1],[105.8,21.0]]],[[[105.82,21.02],[105.83,21.02],[105.83,21.03],[105.82,21.02]]]]}`), "geometry", "overlap"},
		{"NaN-ish", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[1e400,21.0],[105.9,21.1],[105.8,21.0]]]}`), "geometry.coordinates", "not a number"},
		{"out of range", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[305.9,21.0],[105.9,21.1],[105.8,21.0]]]}`), "geometry.coordinates[0][1]", "not a WGS 84"},
		{"outside region", fenceBody(`{"type":"Polygon","coordinates":[[[2.3,48.8],[2.4,48.8],[2.4,48.9],[2.3,48.8]]]}`), "geometry.coordinates[0][0]", "outside the region"},
		{"absurd size", fenceBody(`{"type":"Polygon","coordinates":[[[104.1,20.1],[106.9,20.1],[106.9,21.9],[104.1,20.1]]]}`), "geometry", "at most 2°"},
		{"too many vertices", fenceBody(many(10_001)), "geometry.coordinates", "more than 10000 vertices"},
		{"string number", fenceBody(`{"type":"Polygon","coordinates":[[["105.8",21.0],[105.9,21.0],[105.9,21.1],[105.8,21.0]]]}`), "geometry.coordinates", "want a number"},
		{"4D position", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0,1,2],[105.9,21.0],[105.9,21.1],[105.8,21.0]]]}`), "geometry.coordinates", "2 or 3"},
		{"too deep", fenceBody(`{"type":"Polygon","coordinates":[[[[105.8,21.0]]]]}`), "geometry.coordinates", "want a number"},
		{"empty polygon", fenceBody(`{"type":"Polygon","coordinates":[]}`), "geometry.coordinates", "no rings"},
		{"trailing garbage", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.0]]] x}`), "body", "not a geofence JSON"},
		{"radius zero", `{"name":"x","circle":{"center":[105.8,21.0],"radius_m":0}}`, "circle.radius_m", "metres"},
		{"radius huge", `{"name":"x","circle":{"center":[105.8,21.0],"radius_m":1e9}}`, "circle.radius_m", "metres"},
		{"radius negative", `{"name":"x","circle":{"center":[105.8,21.0],"radius_m":-5}}`, "circle.radius_m", "metres"},
		{"centre short", `{"name":"x","circle":{"center":[105.8],"radius_m":5}}`, "circle.center", "[lon, lat]"},
		{"bad day", `{"name":"x","circle":{"center":[105.8,21],"radius_m":5},"active_hours":[{"days":[0],"from":"07:00","to":"08:00"}]}`, "active_hours[0].days", "weekday 0"},
		{"bad time", `{"name":"x","circle":{"center":[105.8,21],"radius_m":5},"active_hours":[{"days":[1],"from":"7am","to":"08:00"}]}`, "active_hours[0].from", "HH:MM"},
		{"server fields", `{"id":5,"name":"x","circle":{"center":[105.8,21],"radius_m":5}}`, "body", "set by the server"},
	} {
		_, err := DecodeGeofence([]byte(c.body), lim)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err = %v, want a ValidationError", c.name, err)
			continue
		}
		if ve.Field != c.field || !strings.Contains(ve.Error(), c.want) {
			t.Errorf("%s: %q, want field %q and %q", c.name, ve.Error(), c.field, c.want)
		}
	}
}

func TestActiveHours(t *testing.T) {
	f, err := DecodeGeofence([]byte(`{"name":"x","circle":{"center":[105.8,21],"radius_m":5},
		"active_hours":[{"days":[1,2,3,4,5],"from":"07:00","to":"17:00"},{"days":[6],"from":"22:00","to":"02:00"}]}`), DefaultGeofenceLimits())
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		t    string
		want bool
	}{
		{"2026-11-23T07:00:00+07:00", true},  // Monday 07:00
		{"2026-11-23T00:30:00Z", true},       // Monday 07:30 in Hanoi
		{"2026-11-23T17:00:00+07:00", false}, // end is exclusive
		{"2026-11-22T12:00:00+07:00", false}, // Sunday
		{"2026-11-28T23:00:00+07:00", true},  // Saturday night
		{"2026-11-29T01:59:00+07:00", true},  // ... into Sunday
		{"2026-11-29T02:00:00+07:00", false},
		{"2026-11-27T23:00:00+07:00", false}, // Friday night
	} {
		if got := f.ActiveAt(at(c.t)); got != c.want {
			t.Errorf("ActiveAt(%s) = %v, want %v", c.t, got, c.want)
		}
	}
}

// FuzzDecodeGeofence: no input makes the decoder panic, hang or accept a
// fence the index cannot use; what it accepts survives a round trip.
func FuzzDecodeGeofence(f *testing.F) {
	f.Add([]byte(fenceBody(okPolygon)))
	f.Add([]byte(`{"name":"c","circle":{"center":[105.85,21.03],"radius_m":300}}`))
	f.Add([]byte(fenceBody(`{"type":"MultiPolygon","coordinates":[[[[105.8,21.0],[105.81,21.0],[105.81,21.01],[105.8,21.0]]]]}`)))
	f.Add([]byte(fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.1],[105.9,21.0],[105.8,21.1],[105.8,21.0]]]}`)))
	f.Add([]byte(`{"name":"x","circle":{"center":[105.8,21],"radius_m":5},"active_hours":[{"days":[6],"from":"22:00","to":"02:00"}]}`))
	lim := DefaultGeofenceLimits()
	lim.MaxVertices = 500
	f.Fuzz(func(t *testing.T, body []byte) {
		g, err := DecodeGeofence(body, lim)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		e, err := compileFence(g)
		if err != nil {
			t.Fatalf("accepted fence does not compile: %v", err)
		}
		e.contains(105.85, 21.03)
		if g.Polygon != nil && len(g.Polygon.FlatCoords()) > 2*lim.MaxVertices {
			t.Fatalf("%d coordinates accepted, limit %d vertices", len(g.Polygon.FlatCoords()), lim.MaxVertices)
		}
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		b, _ = json.Marshal(m)
		if _, err := DecodeGeofence(b, lim); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
	})
}
