package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/geo"
)

// newWardEnv is newRouteEnv with Hanoi's wards loaded, for tests that
// place things in real wards.
func newWardEnv(t *testing.T) *routeEnv {
	t.Helper()
	pool, dbURL := dbtest.New(t)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.AreasFile = "../../../shared/data/hanoi/wards.geojson"
	pwFile := filepath.Join(t.TempDir(), "admin-pw")
	os.WriteFile(pwFile, []byte("first-start-secret-pw\n"), 0o600)
	cfg.BootstrapAdminPasswordFile = pwFile
	a, err := newApp(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.close)
	store := auth.NewStore(pool, auth.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}, 2)
	return &routeEnv{app: a, h: a.srv.Handler(), store: store, ctx: context.Background()}
}

func (e *routeEnv) send(method, path, token, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	r.RemoteAddr = "127.0.0.1:50000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// Issue 9 finding 4: a ward-limited user ranks, sees and dispatches only
// units in its wards, and cannot change the city's geofences.
func TestWardScopeGaps(t *testing.T) {
	e := newWardEnv(t)
	wards := e.app.geo.Wards()
	// Hoan Kiem lake and West Lake: two points in different wards.
	home, away := [2]float64{105.8523, 21.0287}, [2]float64{105.8190, 21.0580}
	homeWard, ok1 := wards.Lookup(home[0], home[1])
	awayWard, ok2 := wards.Lookup(away[0], away[1])
	if !ok1 || !ok2 || homeWard == awayWard {
		t.Fatalf("test points: %q %v, %q %v", homeWard, ok1, awayWard, ok2)
	}
	units := e.app.geo.Units()
	now := time.Now()
	units.Observe(geo.UnitPosition{ID: "amb-home", Kind: "ambulance", Status: "available", Lon: home[0] + 0.001, Lat: home[1], TS: now})
	// The other ward's ambulance is nearer to the home point than some
	// home-ward units would be: it must still not be offered.
	units.Observe(geo.UnitPosition{ID: "amb-away", Kind: "ambulance", Status: "available", Lon: away[0], Lat: away[1], TS: now})

	scoped := e.session(t, "ward-dispatcher", "dispatcher", homeWard)
	cityWide := e.session(t, "city-dispatcher", "dispatcher")
	ids := func(w *httptest.ResponseRecorder) string {
		var l struct {
			Items []struct{ ID string } `json:"items"`
		}
		json.Unmarshal(w.Body.Bytes(), &l)
		var s []string
		for _, it := range l.Items {
			s = append(s, it.ID)
		}
		return strings.Join(s, ",")
	}
	q := "/api/v1/nearest-units?lon=105.8523&lat=21.0287&limit=10"
	if w := e.call("GET", q, scoped); w.Code != 200 || ids(w) != "amb-home" {
		t.Errorf("nearest units for a ward-limited dispatcher: %d %q, want only amb-home", w.Code, ids(w))
	}
	if w := e.call("GET", q, cityWide); w.Code != 200 || ids(w) != "amb-home,amb-away" {
		t.Errorf("nearest units city-wide: %d %q", w.Code, ids(w))
	}

	// An incident in the home ward, opened by hand.
	w := e.send("POST", "/api/v1/incidents", scoped,
		`{"kind":"accident","severity":"severe","title":"va chạm","location":{"type":"Point","coordinates":[105.8523,21.0287]}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("open incident: %d %s", w.Code, w.Body)
	}
	var inc struct {
		ID string `json:"id"`
	}
	json.Unmarshal(w.Body.Bytes(), &inc)
	etag := w.Header().Get("ETag")
	if w := e.call("GET", "/api/v1/incidents/"+inc.ID+"/nearest-units?limit=10", scoped); w.Code != 200 || ids(w) != "amb-home" {
		t.Errorf("incident's nearest units for a ward-limited dispatcher: %d %q, want only amb-home", w.Code, ids(w))
	}
	if w := e.send("POST", "/api/v1/incidents/"+inc.ID+"/dispatch", scoped, `{"unit_ids":["amb-away"]}`, "If-Match", etag); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("dispatching another ward's unit: %d %s, want 422", w.Code, w.Body)
	}
	if w := e.send("POST", "/api/v1/incidents/"+inc.ID+"/dispatch", scoped, `{"unit_ids":["amb-home"]}`, "If-Match", etag); w.Code != 200 {
		t.Errorf("dispatching an own-ward unit: %d %s", w.Code, w.Body)
	}

	// Geofences are city-wide: a ward-limited admin reads them, never writes.
	scopedAdmin := e.session(t, "ward-admin", "admin", homeWard)
	admin := e.session(t, "city-admin", "admin")
	fence := `{"name":"Hồ Gươm","tags":["lake"],"geometry":{"type":"Polygon","coordinates":[[[105.851,21.027],[105.854,21.027],[105.854,21.030],[105.851,21.030],[105.851,21.027]]]}}`
	if w := e.send("POST", "/api/v1/geofences", scopedAdmin, fence); w.Code != http.StatusForbidden {
		t.Errorf("geofence create by a ward-limited admin: %d %s", w.Code, w.Body)
	}
	w = e.send("POST", "/api/v1/geofences", admin, fence)
	if w.Code != http.StatusCreated {
		t.Fatalf("geofence create by a city-wide admin: %d %s", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	if w := e.send("PUT", loc, scopedAdmin, fence); w.Code != http.StatusForbidden {
		t.Errorf("geofence update by a ward-limited admin: %d", w.Code)
	}
	if w := e.send("DELETE", loc, scopedAdmin, ""); w.Code != http.StatusForbidden {
		t.Errorf("geofence delete by a ward-limited admin: %d", w.Code)
	}
	if w := e.call("GET", loc, scopedAdmin); w.Code != 200 {
		t.Errorf("geofence read by a ward-limited admin: %d", w.Code)
	}
}
