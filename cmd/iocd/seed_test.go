package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"ioc/sim/seed"
)

// The API reads a seeded history: devices, a sensor's telemetry, the
// incident list, and one incident with its timeline.
func TestSeededHistoryThroughAPI(t *testing.T) {
	e := newWardEnv(t)
	end := time.Now().UTC().Truncate(time.Minute)
	sum, err := seed.Run(context.Background(), e.app.pool, seed.Config{Telemetry: 20_000, Incidents: 1_000, Days: 2, End: end,
		WardsPath: wardsFile, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	admin := e.session(t, "seed-admin", "admin")
	code, list := e.do(t, "GET", "/api/v1/devices?kind=traffic&limit=5", admin, "", "")
	items, _ := list["items"].([]any)
	if code != 200 || len(items) != 5 {
		t.Fatalf("devices: %d %v", code, list)
	}
	id := items[0].(map[string]any)["id"].(string)
	q := url.Values{"from": {end.Add(-24 * time.Hour).Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}, "limit": {"5000"}}
	code, tel := e.do(t, "GET", "/api/v1/devices/"+id+"/telemetry?"+q.Encode(), admin, "", "")
	readings, _ := tel["items"].([]any)
	// Sensors report every 5 minutes or so: about 288 a day.
	if code != 200 || len(readings) < 200 || len(readings) > 400 {
		t.Fatalf("telemetry of %s: %d, %d readings", id, code, len(readings))
	}
	if _, ok := readings[0].(map[string]any)["speed_kmh"]; !ok {
		t.Errorf("reading without speed: %v", readings[0])
	}
	code, inc := e.do(t, "GET", "/api/v1/incidents?status=resolved&limit=50", admin, "", "")
	incs, _ := inc["items"].([]any)
	if code != 200 || len(incs) != 50 || inc["next_cursor"] == nil {
		t.Fatalf("incidents: %d, %d items, next %v", code, len(incs), inc["next_cursor"])
	}
	first := incs[0].(map[string]any)
	code, one := e.do(t, "GET", fmt.Sprintf("/api/v1/incidents/%s", first["id"]), admin, "", "")
	tl, _ := one["timeline"].([]any)
	if code != 200 || len(tl) < 2 || tl[0].(map[string]any)["action"] != "opened" {
		t.Fatalf("incident %v: %d, timeline %v", first["id"], code, tl)
	}
	if sum.Rows["incidents"] != 1_000 {
		t.Errorf("summary: %v", sum.Rows)
	}
}
