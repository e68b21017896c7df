package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ioc/geo"
)

// Issue 12: a unit dispatched to an incident is not offered again for it,
// although its own reports still say available (a crew changes its status
// only when it moves off).
func TestIncidentNearestUnitsLeaveOutItsUnits(t *testing.T) {
	e := newWardEnv(t)
	lake := [2]float64{105.8523, 21.0287}
	units := e.app.geo.Units()
	now := time.Now()
	units.Observe(geo.UnitPosition{ID: "amb-near", Kind: "ambulance", Status: "available", Lon: lake[0] + 0.001, Lat: lake[1], TS: now})
	units.Observe(geo.UnitPosition{ID: "amb-far", Kind: "ambulance", Status: "available", Lon: lake[0] + 0.01, Lat: lake[1], TS: now})
	disp := e.session(t, "dispatcher-1", "dispatcher")
	ids := func(w *httptest.ResponseRecorder) string {
		var l struct {
			Items []struct{ ID string } `json:"items"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
			t.Fatalf("nearest units answer: %v: %s", err, w.Body)
		}
		var s []string
		for _, it := range l.Items {
			s = append(s, it.ID)
		}
		return strings.Join(s, ",")
	}

	w := e.send("POST", "/api/v1/incidents", disp,
		`{"kind":"accident","severity":"severe","title":"va chạm","location":{"type":"Point","coordinates":[105.8523,21.0287]}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("open incident: %d %s", w.Code, w.Body)
	}
	var inc struct {
		ID string `json:"id"`
	}
	json.Unmarshal(w.Body.Bytes(), &inc)
	path := "/api/v1/incidents/" + inc.ID
	if w := e.call("GET", path+"/nearest-units?limit=5", disp); w.Code != 200 || ids(w) != "amb-near,amb-far" {
		t.Fatalf("before dispatch: %d %q, want amb-near,amb-far", w.Code, ids(w))
	}
	if w := e.send("POST", path+"/dispatch", disp, `{"unit_ids":["amb-near"]}`, "If-Match", w.Header().Get("ETag")); w.Code != 200 {
		t.Fatalf("dispatch: %d %s", w.Code, w.Body)
	}
	// The registry still says available: the unit has not reported since.
	if u, _ := units.Get("amb-near"); u.Status != "available" {
		t.Fatalf("amb-near status %q, want it still reporting available", u.Status)
	}
	if w := e.call("GET", path+"/nearest-units?limit=5", disp); w.Code != 200 || ids(w) != "amb-far" {
		t.Errorf("after dispatching amb-near: %d %q, want only amb-far", w.Code, ids(w))
	}
	if w := e.call("GET", path+"/nearest-units?limit=1&kind=ambulance", disp); w.Code != 200 || ids(w) != "amb-far" {
		t.Errorf("limit 1 after dispatch: %d %q, want amb-far (the limit counts offered units)", w.Code, ids(w))
	}
	// The point route knows no incident: it still ranks every available unit.
	if w := e.call("GET", "/api/v1/nearest-units?lon=105.8523&lat=21.0287&limit=5", disp); w.Code != 200 || ids(w) != "amb-near,amb-far" {
		t.Errorf("point route: %d %q", w.Code, ids(w))
	}
}
