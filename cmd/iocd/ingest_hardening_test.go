package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Finding 10: an admin registers devices (POST /api/v1/devices) and
// removes registrations (DELETE /api/v1/devices/{id}); that is what
// require_registered_devices admits. Others may not, nor may a
// ward-scoped admin (the registry is city-wide).
func TestDeviceRegistrationRoutes(t *testing.T) {
	e := newRouteEnv(t)
	admin := e.session(t, "reg-admin", "admin")
	w := e.send("POST", "/api/v1/devices", admin, `{"id":"CAM-REG-1","kind":"camera","fixed_location":{"type":"Point","coordinates":[105.85,21.03]}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	var d struct {
		ID            string     `json:"id"`
		RegisteredAt  *time.Time `json:"registered_at"`
		FixedLocation *struct {
			Coordinates [2]float64 `json:"coordinates"`
		} `json:"fixed_location"`
	}
	json.Unmarshal(w.Body.Bytes(), &d)
	if d.ID != "CAM-REG-1" || d.RegisteredAt == nil || d.FixedLocation == nil || d.FixedLocation.Coordinates != [2]float64{105.85, 21.03} {
		t.Errorf("registered device: %s", w.Body)
	}
	var registered bool
	e.app.pool.QueryRow(e.ctx, `SELECT registered_at IS NOT NULL FROM devices WHERE id = 'CAM-REG-1'`).Scan(&registered)
	if !registered {
		t.Error("no registered_at")
	}
	for _, body := range []string{`{"id":"bad id","kind":"camera"}`, `{"id":"X","kind":"drone"}`, `{"id":"X","kind":"camera","fixed_location":{"type":"Point","coordinates":[500,0]}}`, `{"id":"X","kind":"camera","extra":1}`} {
		if w := e.send("POST", "/api/v1/devices", admin, body); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, w.Code)
		}
	}
	if w := e.send("POST", "/api/v1/devices", e.session(t, "reg-scoped", "admin", "00008"), `{"id":"CAM-REG-2","kind":"camera"}`); w.Code != http.StatusForbidden {
		t.Errorf("ward-scoped admin: %d, want 403", w.Code)
	}
	if w := e.send("POST", "/api/v1/devices", e.session(t, "reg-op", "operator"), `{"id":"CAM-REG-2","kind":"camera"}`); w.Code != http.StatusForbidden {
		t.Errorf("operator: %d, want 403", w.Code)
	}
	if w := e.call("DELETE", "/api/v1/devices/CAM-REG-1", admin); w.Code != http.StatusNoContent {
		t.Errorf("unregister: %d %s", w.Code, w.Body)
	}
	if w := e.call("DELETE", "/api/v1/devices/CAM-REG-1", admin); w.Code != http.StatusNotFound {
		t.Errorf("unregister twice: %d, want 404", w.Code)
	}
}

// Finding 7: while ingest's writes fail for a reason of the database's
// own (a column renamed away) /readyz says so, though the database
// answers pings; once they succeed again ingest is reported ok.
func TestReadyReportsFailingIngestWrites(t *testing.T) {
	e := newRouteEnv(t)
	pool := e.app.pool
	if _, err := pool.Exec(e.ctx, `ALTER TABLE traffic_readings RENAME COLUMN volume TO volume_gone`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.app.ing.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	acked := make(chan struct{})
	payload := fmt.Sprintf(`{"ts":%q,"lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2}`, time.Now().UTC().Format(time.RFC3339Nano))
	if err := e.app.ing.Submit(ctx, "city/traffic/S-READY", []byte(payload), false, func() { close(acked) }); err != nil {
		t.Fatal(err)
	}
	ready := func() map[string]string {
		w := e.call("GET", "/readyz", "")
		var checks map[string]string
		json.Unmarshal(w.Body.Bytes(), &checks)
		if w.Code != http.StatusServiceUnavailable { // the broker is not connected in this test
			t.Errorf("/readyz: %d, want 503", w.Code)
		}
		return checks
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.app.ing.Healthy() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c := ready(); c["ingest"] != "writes_failing" || c["database"] != "ok" || c["mqtt"] != "disconnected" {
		t.Errorf("/readyz while writes fail: %v", c)
	}
	if _, err := pool.Exec(e.ctx, `ALTER TABLE traffic_readings RENAME COLUMN volume_gone TO volume`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acked:
	case <-time.After(20 * time.Second):
		t.Fatal("not stored after the column came back")
	}
	if c := ready(); c["ingest"] != "ok" {
		t.Errorf("/readyz after recovery: %v", c)
	}
}
