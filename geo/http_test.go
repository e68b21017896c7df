package geo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"ioc/api"
	"ioc/db/dbtest"
)

func testLogger() *slog.Logger {
	if os.Getenv("IOC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestService starts the geo service on its own database.
func newTestService(t *testing.T, pool *pgxpool.Pool, redisURL string) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{
		AreasFile: wardsFile, CityFile: cityFile, ServiceMarginM: 5000, RedisURL: redisURL,
		Registerer: prometheus.NewRegistry(),
	}, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s.fences.poll = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	return s
}

type fixedAuth struct{ c api.Caller }

func (a fixedAuth) Authenticate(*http.Request) (api.Caller, error) { return a.c, nil }
func (a fixedAuth) Allow(api.Caller, string) bool                  { return true }

func serveGeo(t *testing.T, s *Service, caller *api.Caller) *httptest.Server {
	srv := api.New("127.0.0.1:0", testLogger())
	if caller != nil {
		srv.SetAuth(fixedAuth{*caller}, fixedAuth{*caller})
	}
	s.Register(srv)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func call(t *testing.T, method, url, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func TestGeofenceAPI(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	s := newTestService(t, pool, "")
	ts := serveGeo(t, s, nil)
	base := ts.URL + "/api/v1/geofences"

	r := call(t, "POST", base, fenceBody(okPolygon))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created map[string]any
	r.json(t, &created)
	id := int64(created["id"].(float64))
	loc := r.header.Get("Location")
	if created["version"].(float64) != 1 || loc == "" {
		t.Fatalf("create answered %s, Location %q", r.body, loc)
	}
	// At once in this instance's index.
	if got := s.fences.Containing(nil, 105.853, 21.033); len(got) != 1 || got[0].ID != id {
		t.Fatalf("index after create: %v", ids(got))
	}
	if r = call(t, "GET", ts.URL+loc, ""); r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s %v", r.status, r.body, r.header)
	}
	circle := `{"name":"Truong THCS Ba Dinh","tags":["school"],"circle":{"center":[105.8300,21.0400],"radius_m":250},
		"active_hours":[{"days":[1,2,3,4,5],"from":"06:30","to":"17:30"}]}`
	if r = call(t, "POST", base, circle); r.status != 201 {
		t.Fatalf("create circle: %d %s", r.status, r.body)
	}
	var list api.List[map[string]any]
	get := func(url string) {
		list = api.List[map[string]any]{}
		call(t, "GET", url, "").json(t, &list)
	}
	get(base + "?tag=school")
	if len(list.Items) != 1 || list.Items[0]["name"] != "Truong THCS Ba Dinh" {
		t.Fatalf("list by tag: %+v", list)
	}
	get(base + "?contains=105.853,21.033")
	if len(list.Items) != 1 || int64(list.Items[0]["id"].(float64)) != id {
		t.Fatalf("list containing: %+v", list)
	}
	get(base + "?limit=1")
	if len(list.Items) != 1 || list.NextCursor == "" {
		t.Fatalf("page 1: %+v", list)
	}
	get(base + "?limit=1&cursor=" + list.NextCursor)
	if len(list.Items) != 1 || list.NextCursor != "" {
		t.Fatalf("page 2: %+v", list)
	}

	// Update: a stale If-Match is a conflict, the right one moves the fence.
	moved := fenceBody(`{"type":"Polygon","coordinates":[[[105.80,21.00],[105.81,21.00],[105.81,21.01],[105.80,21.01],[105.80,21.00]]]}`)
	if r = call(t, "PUT", ts.URL+loc, moved, "If-Match", `"7"`); r.status != http.StatusConflict {
		t.Fatalf("stale update: %d %s", r.status, r.body)
	}
	if r = call(t, "PUT", ts.URL+loc, moved, "If-Match", `"1"`); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if got := s.fences.Containing(nil, 105.853, 21.033); len(got) != 0 {
		t.Fatalf("old place still indexed: %v", ids(got))
	}
	if got := s.fences.Containing(nil, 105.805, 21.005); len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("new place not indexed: %v", got)
	}
	if r = call(t, "PUT", base+"/999999", moved); r.status != 404 {
		t.Fatalf("update missing: %d %s", r.status, r.body)
	}
	if r = call(t, "DELETE", ts.URL+loc, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r = call(t, "GET", ts.URL+loc, ""); r.status != 404 {
		t.Fatalf("get deleted: %d", r.status)
	}
	if r = call(t, "DELETE", ts.URL+loc, ""); r.status != 404 {
		t.Fatalf("delete twice: %d", r.status)
	}
	if r = call(t, "GET", base+"/abc", ""); r.status != 404 {
		t.Fatalf("bad id: %d", r.status)
	}
}

func TestGeofenceAPIRefusesHostileInput(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	s := newTestService(t, pool, "")
	ts := serveGeo(t, s, nil)
	base := ts.URL + "/api/v1/geofences"
	huge := `{"name":"x","geometry":{"type":"Polygon","coordinates":[[` + strings.Repeat("[105.8,21.0],", 200_000) + `[105.8,21.0]]]}}`
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"garbage", `not json`, 400, "not a geofence JSON"},
		{"bow tie", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.1],[105.9,21.0],[105.8,21.1],[105.8,21.0]]]}`), 400, "intersects itself"},
		{"unclosed", fenceBody(`{"type":"Polygon","coordinates":[[[105.8,21.0],[105.9,21.0],[105.9,21.1],[105.8,21.1]]]}`), 400, "not closed"},
		{"far away", fenceBody(`{"type":"Polygon","coordinates":[[[2.3,48.8],[2.4,48.8],[2.4,48.9],[2.3,48.8]]]}`), 400, "outside the region"},
		{"bad radius", `{"name":"x","circle":{"center":[105.8,21.0],"radius_m":0}}`, 400, "radius_m"},
		{"too large body", huge, 413, "body over"},
		{"deep nesting", `{"name":"x","geometry":` + strings.Repeat("[", 100_000) + `}`, 400, "not a geofence JSON"},
	} {
		r := call(t, "POST", base, c.body)
		var e api.ErrorBody
		json.Unmarshal(r.body, &e)
		if r.status != c.status || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, r.status, api.Clip(string(r.body)), c.status, c.want)
		}
	}
	if s.fences.Len() != 0 {
		t.Fatalf("%d fences stored from hostile input", s.fences.Len())
	}
}

// TestGeofenceSyncAcrossInstances: a change made through one instance
// reaches another's index without a restart (NOTIFY, and with Redis).
func TestGeofenceSyncAcrossInstances(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	redisURL := os.Getenv("IOC_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	a := newTestService(t, pool, redisURL)
	b := newTestService(t, pool, redisURL)
	b.fences.poll = time.Minute // only NOTIFY or Redis can make it in time
	f, err := DecodeGeofence([]byte(fenceBody(okPolygon)), a.fences.Limits())
	if err != nil {
		t.Fatal(err)
	}
	created, err := a.fences.Create(context.Background(), f, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "create to reach instance b", func() bool { return len(b.fences.Containing(nil, 105.853, 21.033)) == 1 })
	// A change made by hand in SQL reaches both (the trigger notifies).
	if _, err := pool.Exec(context.Background(), `DELETE FROM geofences WHERE id = $1`, created.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SQL delete to reach a", func() bool { return a.fences.Len() == 0 })
	waitFor(t, "SQL delete to reach b", func() bool { return b.fences.Len() == 0 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAreasAPI(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	s := newTestService(t, pool, "")
	var fc struct {
		Type        string `json:"type"`
		Attribution string `json:"attribution"`
		Features    []struct {
			ID         string         `json:"id"`
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Type string `json:"type"`
			} `json:"geometry"`
		} `json:"features"`
	}
	r := call(t, "GET", serveGeo(t, s, nil).URL+"/api/v1/areas", "")
	r.json(t, &fc)
	if r.status != 200 || fc.Type != "FeatureCollection" || len(fc.Features) != 126 || !strings.Contains(fc.Attribution, "OpenStreetMap") {
		t.Fatalf("areas: %d, %s, %d features, attribution %q", r.status, fc.Type, len(fc.Features), fc.Attribution)
	}
	if f := fc.Features[0]; f.ID != "00004" || f.Properties["name"] != "Phường Ba Đình" || f.Geometry.Type != "MultiPolygon" {
		t.Fatalf("first feature: %+v", f)
	}
	// A caller limited to one ward sees that ward only.
	scoped := &api.Caller{Name: "op", Role: "operator", Wards: []string{"00070"}}
	call(t, "GET", serveGeo(t, s, scoped).URL+"/api/v1/areas", "").json(t, &fc)
	if len(fc.Features) != 1 || fc.Features[0].ID != "00070" {
		t.Fatalf("scoped areas: %d features", len(fc.Features))
	}
	if r := call(t, "GET", serveGeo(t, s, nil).URL+"/api/v1/areas?x=1", ""); r.status != 400 {
		t.Fatalf("unknown parameter: %d", r.status)
	}
}
