package geo

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"ioc/api"
	"ioc/db/dbtest"
)

func TestNearestUnitsMovingAndChangingStatus(t *testing.T) {
	u := NewUnits(nil, NewWardIndex(testWards(t)), testLogger())
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, Hanoi)
	u.now = func() time.Time { return now }
	incident := [2]float64{105.8524, 21.0287} // Hoan Kiem lake
	obs := func(id, kind, status string, lon, lat float64, ago time.Duration) {
		u.Observe(UnitPosition{ID: id, Kind: kind, Status: status, Lon: lon, Lat: lat, TS: now.Add(-ago)})
	}
	obs("amb-1", "ambulance", "available", 105.8600, 21.0300, time.Minute)    // ~800 m
	obs("amb-2", "ambulance", "available", 105.8300, 21.0400, time.Minute)    // ~2.6 km
	obs("amb-3", "ambulance", "dispatched", 105.8530, 21.0290, time.Minute)   // nearest but busy
	obs("amb-4", "ambulance", "available", 105.8525, 21.0288, 20*time.Minute) // nearest but silent too long
	obs("fire-1", "fire", "available", 105.8520, 21.0280, time.Minute)

	ranked := func(kind string) []string {
		var out []string
		for _, n := range u.NearestUnits(incident[0], incident[1], kind, 10, nil, nil) {
			out = append(out, n.ID)
		}
		return out
	}
	if got := ranked("ambulance"); !equalStrings(got, []string{"amb-1", "amb-2"}) {
		t.Fatalf("ambulances: %v", got)
	}
	if got := ranked(""); !equalStrings(got, []string{"fire-1", "amb-1", "amb-2"}) {
		t.Fatalf("all kinds: %v", got)
	}
	// amb-2 drives to the lake; amb-1 is dispatched elsewhere.
	obs("amb-2", "ambulance", "available", 105.8530, 21.0300, 0)
	obs("amb-1", "ambulance", "dispatched", 105.8600, 21.0300, 0)
	if got := ranked("ambulance"); !equalStrings(got, []string{"amb-2"}) {
		t.Fatalf("after moves: %v", got)
	}
	// A late, older report does not move amb-2 back.
	obs("amb-2", "ambulance", "available", 105.9000, 21.1000, 5*time.Minute)
	if x, _ := u.Get("amb-2"); x.Lon != 105.8530 {
		t.Fatalf("older report applied: %+v", x)
	}
	// amb-3 becomes available again.
	obs("amb-3", "ambulance", "available", 105.8530, 21.0290, 0)
	got := u.NearestUnits(incident[0], incident[1], "ambulance", 1, nil, nil)
	if len(got) != 1 || got[0].ID != "amb-3" {
		t.Fatalf("limit 1: %+v", got)
	}
	// Distance and ETA: about 80 m; ETA = d × 1.4 at 30 km/h.
	if d := got[0].DistanceM; d < 60 || d > 100 {
		t.Fatalf("distance %v m", d)
	}
	if want := math.Round(got[0].DistanceM * DetourFactor / (30 / 3.6)); got[0].ETASeconds != want {
		t.Fatalf("eta %v, want %v", got[0].ETASeconds, want)
	}
	if got[0].Ward != "00070" {
		t.Fatalf("ward %q", got[0].Ward)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHaversine(t *testing.T) {
	// Hoan Kiem lake to Noi Bai airport: about 21.6 km as the crow flies.
	if d := HaversineM(105.8524, 21.0287, 105.8067, 21.2187); math.Abs(d-21570) > 300 {
		t.Fatalf("distance %v", d)
	}
}

// TestUnitsPersistAndShare: states reach units_latest, never move back in
// time there, and another instance (sharing the database) picks them up.
func TestUnitsPersistAndShare(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	wards := NewWardIndex(testWards(t))
	a := NewUnits(pool, wards, testLogger())
	b := NewUnits(pool, wards, testLogger())
	now := time.Now().UTC().Truncate(time.Millisecond)
	speed := 42.0
	a.Observe(UnitPosition{ID: "pol-7", Kind: "police", Status: "available", Lon: 105.84, Lat: 21.03, TS: now, SpeedKmh: &speed})
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// b, an instance that saw an older report of the same unit, flushes it:
	// the row keeps a's newer state.
	b.Observe(UnitPosition{ID: "pol-7", Kind: "police", Status: "on_scene", Lon: 105.80, Lat: 21.00, TS: now.Add(-time.Minute)})
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var status, ward string
	var ts time.Time
	var sp float64
	if err := pool.QueryRow(ctx, `SELECT status, ward_code, ts, speed_kmh FROM units_latest WHERE unit_id = 'pol-7'`).Scan(&status, &ward, &ts, &sp); err != nil {
		t.Fatal(err)
	}
	if status != "available" || !ts.Equal(now) || sp != 42 || ward == "" {
		t.Fatalf("row: %s %s %v %v", status, ward, ts, sp)
	}
	// A third instance starting now loads it.
	c := NewUnits(pool, wards, testLogger())
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if x, ok := c.Get("pol-7"); !ok || x.Status != "available" || x.Lon != 105.84 || *x.SpeedKmh != 42 {
		t.Fatalf("loaded: %+v %v", x, ok)
	}
	// b pulls a's newer state.
	if _, err := b.pull(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if x, _ := b.Get("pol-7"); x.Status != "available" {
		t.Fatalf("b after pull: %+v", x)
	}
	// Run flushes by itself and on the way out.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	a.Observe(UnitPosition{ID: "fire-2", Kind: "fire", Status: "available", Lon: 105.85, Lat: 21.02, TS: now})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM units_latest`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d rows after Run", n)
	}
}

func TestNearestUnitsAndHospitalsAPI(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	s := newTestService(t, pool, "")
	now := time.Now()
	s.Units().Observe(UnitPosition{ID: "amb-1", Kind: "ambulance", Status: "available", Lon: 105.8600, Lat: 21.0300, TS: now})
	s.Units().Observe(UnitPosition{ID: "amb-2", Kind: "ambulance", Status: "available", Lon: 105.8530, Lat: 21.0290, TS: now})
	s.Units().Observe(UnitPosition{ID: "pol-1", Kind: "police", Status: "available", Lon: 105.8525, Lat: 21.0288, TS: now})
	ts := serveGeo(t, s, nil)
	var units api.List[struct {
		ID        string  `json:"id"`
		DistanceM float64 `json:"distance_m"`
		ETA       float64 `json:"eta_s"`
		Ward      struct {
			Code, Name string
		} `json:"ward"`
	}]
	r := call(t, "GET", ts.URL+"/api/v1/nearest-units?lon=105.8524&lat=21.0287&kind=ambulance&limit=5", "")
	r.json(t, &units)
	if r.status != 200 || len(units.Items) != 2 || units.Items[0].ID != "amb-2" || units.Items[0].ETA <= 0 || units.Items[0].Ward.Code != "00070" {
		t.Fatalf("nearest: %d %s", r.status, r.body)
	}
	for _, q := range []string{"lon=105.85", "lon=abc&lat=21", "lon=105.85&lat=21&kind=tank", "lon=105.85&lat=21&limit=0", "lon=105.85&lat=21&x=1"} {
		if r := call(t, "GET", ts.URL+"/api/v1/nearest-units?"+q, ""); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	scoped := &api.Caller{Name: "op", Role: "operator", Wards: []string{"00004"}}
	if r := call(t, "GET", serveGeo(t, s, scoped).URL+"/api/v1/nearest-units?lon=105.8524&lat=21.0287", ""); r.status != 403 {
		t.Errorf("scoped caller, point in another ward: %d", r.status)
	}
	var all api.List[map[string]any]
	call(t, "GET", ts.URL+"/api/v1/units?kind=ambulance", "").json(t, &all)
	if len(all.Items) != 2 {
		t.Fatalf("units: %+v", all)
	}

	var hosp struct {
		Items []struct {
			Name      string   `json:"name"`
			Emergency bool     `json:"emergency"`
			DistanceM *float64 `json:"distance_m"`
		} `json:"items"`
		Attribution string `json:"attribution"`
	}
	r = call(t, "GET", ts.URL+"/api/v1/hospitals?near=105.8524,21.0287&emergency=true&limit=3", "")
	r.json(t, &hosp)
	if r.status != 200 || len(hosp.Items) != 3 || !strings.Contains(hosp.Attribution, "OpenStreetMap") {
		t.Fatalf("hospitals: %d %s", r.status, r.body)
	}
	for i, h := range hosp.Items {
		if !h.Emergency || h.DistanceM == nil || (i > 0 && *h.DistanceM < *hosp.Items[i-1].DistanceM) {
			t.Fatalf("hospital %d: %+v", i, h)
		}
	}
	hosp.Items = nil
	call(t, "GET", ts.URL+"/api/v1/hospitals", "").json(t, &hosp)
	if len(hosp.Items) != 170 {
		t.Fatalf("all hospitals: %d", len(hosp.Items))
	}
	if r := call(t, "GET", ts.URL+"/api/v1/hospitals?near=200,21", ""); r.status != 400 {
		t.Fatalf("bad near: %d", r.status)
	}
}

// Finding 10: unit ids come from the broker, so the registry is bounded:
// a new unit beyond the cap is not taken, a unit not heard from for the
// expiry is forgotten (and one already that old never enters), and the
// list is paged by id.
func TestUnitsBoundedAndPaged(t *testing.T) {
	u := NewUnits(nil, nil, testLogger())
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, Hanoi)
	u.now = func() time.Time { return now }
	u.SetLimits(5, time.Hour)
	for i := range 8 {
		u.Observe(UnitPosition{ID: fmt.Sprintf("u-%d", i), Kind: "police", Status: "available", Lon: 105.85, Lat: 21.03, TS: now.Add(-time.Duration(i) * time.Minute)})
	}
	if n := len(u.List()); n != 5 {
		t.Fatalf("%d units held, cap 5", n)
	}
	u.Observe(UnitPosition{ID: "u-0", Kind: "police", Status: "dispatched", Lon: 105.85, Lat: 21.03, TS: now})
	if x, _ := u.Get("u-0"); x.Status != "dispatched" {
		t.Error("a known unit's report refused at the cap")
	}
	// Paging: 2 per page, by id, every unit once.
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		page, more := u.Page(after, 2, nil)
		for _, x := range page {
			seen = append(seen, x.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !equalStrings(seen, []string{"u-0", "u-1", "u-2", "u-3", "u-4"}) {
		t.Errorf("pages gave %v", seen)
	}
	if page, _ := u.Page("", 10, func(x Unit) bool { return x.Status == "dispatched" }); len(page) != 1 {
		t.Errorf("filtered page: %d units, want 1", len(page))
	}
	// An hour and a half later every unit is past the expiry; the room
	// they leave is there for new ones.
	now = now.Add(90 * time.Minute)
	if n := u.expire(); n != 0 {
		t.Errorf("%d units after expiry, want 0", n)
	}
	u.Observe(UnitPosition{ID: "fresh", Kind: "fire", Status: "available", Lon: 105.85, Lat: 21.03, TS: now})
	u.Observe(UnitPosition{ID: "ancient", Kind: "fire", Status: "available", Lon: 105.85, Lat: 21.03, TS: now.Add(-2 * time.Hour)})
	if n := len(u.List()); n != 1 {
		t.Errorf("%d units, want 1 (fresh)", n)
	}
	if _, ok := u.Get("ancient"); ok {
		t.Error("a report older than the expiry entered the registry")
	}
}

// GET /units pages with limit and cursor ({items, next_cursor}), keeps
// its filters and the caller's ward scope, and refuses a bad limit.
func TestUnitsAPIPaged(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	s := newTestService(t, pool, "")
	now := time.Now()
	for i := range 7 {
		s.Units().Observe(UnitPosition{ID: fmt.Sprintf("pol-%d", i), Kind: "police", Status: "available", Lon: 105.8524, Lat: 21.0287, TS: now})
	}
	s.Units().Observe(UnitPosition{ID: "amb-1", Kind: "ambulance", Status: "available", Lon: 105.8524, Lat: 21.0287, TS: now})
	ts := serveGeo(t, s, nil)
	var ids []string
	next := ""
	for pages := 0; ; pages++ {
		var page api.List[struct {
			ID string `json:"id"`
		}]
		r := call(t, "GET", ts.URL+"/api/v1/units?kind=police&limit=3&cursor="+next, "")
		r.json(t, &page)
		if r.status != 200 || len(page.Items) > 3 {
			t.Fatalf("page %d: %d %s", pages, r.status, r.body)
		}
		for _, x := range page.Items {
			ids = append(ids, x.ID)
		}
		if page.NextCursor == "" {
			break
		}
		next = page.NextCursor
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(ids) != 7 || ids[0] != "pol-0" || ids[6] != "pol-6" {
		t.Errorf("paged ids: %v", ids)
	}
	for _, q := range []string{"limit=0", "limit=1001", "cursor=!!!"} {
		if r := call(t, "GET", ts.URL+"/api/v1/units?"+q, ""); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	var scoped api.List[map[string]any]
	call(t, "GET", serveGeo(t, s, &api.Caller{Name: "op", Role: "operator", Wards: []string{"00004"}}).URL+"/api/v1/units", "").json(t, &scoped)
	if len(scoped.Items) != 0 {
		t.Errorf("a caller of another ward sees %d units", len(scoped.Items))
	}
}
