package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Issue 12: the incident detail lists the cameras near its point
// (GET /api/v1/devices?near=lon,lat&radius_m=&kind=camera): nearest first,
// with distances and each camera's latest snapshot, within the caller's
// wards, the radius capped and bad values refused.
func TestDevicesNearAPoint(t *testing.T) {
	e := newWardEnv(t)
	wards := e.app.geo.Wards()
	lake := [2]float64{105.8523, 21.0287} // Hoan Kiem lake
	homeWard, _ := wards.Lookup(lake[0], lake[1])
	// Metres east of the lake: a degree of longitude here is ~103.8 km.
	east := func(m float64) [2]float64 { return [2]float64{lake[0] + m/103_800, lake[1]} }
	now := time.Now()
	for _, d := range []struct {
		id, kind string
		at       [2]float64
	}{
		{"cam-100m", "camera", east(100)},
		{"cam-300m", "camera", east(300)},
		{"cam-2km", "camera", east(2000)},
		{"traffic-50m", "traffic", east(50)},
		{"cam-far", "camera", [2]float64{105.8190, 21.0580}}, // West Lake, ~4.9 km, another ward
	} {
		ward, _ := wards.Lookup(d.at[0], d.at[1])
		if _, err := e.app.pool.Exec(e.ctx, `INSERT INTO devices (id, kind, geom, ward_code, first_seen, last_seen)
			VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326), $5, $6, $6)`, d.id, d.kind, d.at[0], d.at[1], ward, now); err != nil {
			t.Fatal(err)
		}
	}
	// Two events of cam-100m (the newer one's snapshot is shown), one
	// without a snapshot, and one of cam-300m older than the window.
	for _, ev := range []struct {
		id   string
		ago  time.Duration
		snap any
	}{
		{"cam-100m", 10 * time.Minute, "https://vms.example/snap/old.jpg"},
		{"cam-100m", time.Minute, "https://vms.example/snap/new.jpg"},
		{"cam-100m", 30 * time.Second, nil},
		{"cam-300m", 2 * time.Hour, "https://vms.example/snap/stale.jpg"},
	} {
		ts := now.Add(-ev.ago)
		if _, err := e.app.pool.Exec(e.ctx, `INSERT INTO camera_events (device_id, ts, received_at, geom, event, confidence, snapshot_url)
			VALUES ($1, $2, $2, ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 'crowd', 0.9, $3)`, ev.id, ts, ev.snap); err != nil {
			t.Fatal(err)
		}
	}

	type device struct {
		ID          string   `json:"id"`
		DistanceM   *float64 `json:"distance_m"`
		SnapshotURL string   `json:"snapshot_url"`
	}
	list := func(token, q string) ([]device, int, string) {
		w := e.call("GET", "/api/v1/devices?"+q, token)
		var l struct {
			Items      []device `json:"items"`
			NextCursor string   `json:"next_cursor"`
		}
		json.Unmarshal(w.Body.Bytes(), &l)
		if l.NextCursor != "" {
			t.Errorf("%s: a nearest-first answer has no cursor, got %q", q, l.NextCursor)
		}
		return l.Items, w.Code, w.Body.String()
	}
	ids := func(ds []device) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.ID)
		}
		return strings.Join(s, ",")
	}
	op := e.session(t, "operator-1", "operator")
	near := "near=105.8523,21.0287"

	got, code, body := list(op, near+"&radius_m=1000&kind=camera")
	if code != 200 || ids(got) != "cam-100m,cam-300m" {
		t.Fatalf("cameras within 1 km: %d %s", code, body)
	}
	if d := got[0].DistanceM; d == nil || *d < 95 || *d > 105 {
		t.Errorf("cam-100m distance %v, want ~100 m", d)
	}
	if got[0].SnapshotURL != "https://vms.example/snap/new.jpg" || got[1].SnapshotURL != "" {
		t.Errorf("snapshots %q %q, want the newest within the hour and none for a stale one", got[0].SnapshotURL, got[1].SnapshotURL)
	}
	if got, code, body := list(op, near+"&radius_m=5000&kind=camera&limit=3"); code != 200 || ids(got) != "cam-100m,cam-300m,cam-2km" {
		t.Errorf("limit 3 within 5 km: %d %s", code, body)
	}
	if got, code, body := list(op, near); code != 200 || ids(got) != "traffic-50m,cam-100m,cam-300m" {
		t.Errorf("every kind, default radius 500 m: %d %s", code, body)
	}
	// Without near the list is as before: by id, no distances.
	if got, code, body := list(op, "kind=camera"); code != 200 || ids(got) != "cam-100m,cam-2km,cam-300m,cam-far" || got[0].DistanceM != nil {
		t.Errorf("without near: %d %s", code, body)
	}

	// A ward-limited operator sees only its ward's cameras, near or not.
	scoped := e.session(t, "ward-operator", "operator", homeWard)
	westLake := "near=105.8190,21.0580&radius_m=1000&kind=camera"
	if got := ids(mustList(t, list, op, westLake)); got != "cam-far" {
		t.Errorf("city-wide operator at West Lake: %q, want cam-far", got)
	}
	if got := ids(mustList(t, list, scoped, westLake)); got != "" {
		t.Errorf("ward-limited operator at West Lake: %q, want none (cam-far is in another ward)", got)
	}
	if got := ids(mustList(t, list, scoped, near+"&radius_m=400&kind=camera")); got != "cam-100m,cam-300m" {
		t.Errorf("ward-limited operator at the lake: %q", got)
	}

	for _, q := range []string{
		"near=105.85", "near=abc,21", "near=105.85,91", "near=,", "near=105.85,21.03,7",
		near + "&radius_m=0", near + "&radius_m=5001", near + "&radius_m=x", "radius_m=100",
		near + "&cursor=" + "eyJ4IjoxfQ",
	} {
		if w := e.call("GET", "/api/v1/devices?"+q, op); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, w.Code, w.Body)
		}
	}
}

func mustList[D any](t *testing.T, list func(token, q string) ([]D, int, string), token, q string) []D {
	t.Helper()
	got, code, body := list(token, q)
	if code != 200 {
		t.Fatalf("%s: %d %s", q, code, body)
	}
	return got
}
