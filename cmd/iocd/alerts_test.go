package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

// wardsFile gives the tests the real 126 wards, so incidents get theirs.
const wardsFile = "../../../shared/data/hanoi/wards.geojson"

// newAlertsEnv is newRouteEnv's server (newApp, nothing running) with the
// wards loaded.
func newAlertsEnv(t *testing.T) *routeEnv {
	t.Helper()
	pool, dbURL := dbtest.New(t)
	cfg := config.Default()
	cfg.DatabaseURL, cfg.MetricsAddr, cfg.AreasFile = dbURL, "", wardsFile
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

// runningApp is newApp with every part running except the HTTP listener
// (requests go to its handler directly).
type runningApp struct {
	*app
	h    http.Handler
	stop func()
}

func runApp(t *testing.T, dbURL, brokerURL, clientID string, opts ...func(*config.Config)) *runningApp {
	t.Helper()
	cfg := config.Default()
	cfg.DatabaseURL, cfg.MQTTURL, cfg.MQTTClientID, cfg.MetricsAddr = dbURL, brokerURL, clientID, ""
	cfg.AreasFile = wardsFile
	pwFile := filepath.Join(t.TempDir(), "admin-pw")
	os.WriteFile(pwFile, []byte("first-start-secret-pw\n"), 0o600)
	cfg.BootstrapAdminPasswordFile = pwFile
	for _, o := range opts {
		o(&cfg)
	}
	a, err := newApp(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	delete(a.runs, "http")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, run := range a.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	var once sync.Once
	r := &runningApp{app: a, h: a.srv.Handler()}
	r.stop = func() { once.Do(func() { cancel(); wg.Wait(); a.close() }) }
	t.Cleanup(r.stop)
	deadline := time.Now().Add(15 * time.Second)
	for !a.sub.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("subscriber not connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // SUBACK
	return r
}

type publisher struct{ c mqtt.Client }

func newPublisher(t *testing.T, url string) *publisher {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("alerts-test-pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &publisher{c}
}

func (p *publisher) send(t *testing.T, topic string, payload map[string]any) {
	t.Helper()
	b, _ := json.Marshal(payload)
	tok := p.c.Publish(topic, 1, false, b)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

type incidentRow struct {
	id, kind, severity, status, ward string
	evidence                         int
}

func incidents(t *testing.T, pool *pgxpool.Pool) []incidentRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, kind, severity, status, coalesce(ward_code, ''),
		(SELECT count(*) FROM incident_evidence e WHERE e.incident_id = i.id) FROM incidents i ORDER BY opened_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []incidentRow
	for rows.Next() {
		var r incidentRow
		if err := rows.Scan(&r.id, &r.kind, &r.severity, &r.status, &r.ward, &r.evidence); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// offset moves a point by metres east and north.
func offset(lon, lat, east, north float64) (float64, float64) {
	return lon + east/(111320*0.9333), lat + north/110540
}

func rfc(t time.Time) string { return t.Format(time.RFC3339Nano) }

// The simulator's scripted incidents, in the same shapes (sim/scenario.go),
// over the real broker, ingest and database, with iocd restarted in the
// middle: the right incidents, one each, with their evidence; the
// congestion resolves itself once cleared.
func TestScenariosOverBrokerWithRestart(t *testing.T) {
	b := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	clientID := fmt.Sprintf("iocd-alerts-test-%d", os.Getpid())
	a := runApp(t, dbURL, b.URL, clientID)
	pub := newPublisher(t, b.URL)
	now := time.Now()

	// Accident: camera sees it 20 m away; a 115 call 50 m from the scene.
	camLon, camLat := 105.8522, 21.0287 // Hoàn Kiếm
	sceneLon, sceneLat := offset(camLon, camLat, 15, 12)
	callLon, callLat := offset(sceneLon, sceneLat, -30, 40)
	pub.send(t, "city/camera/cam-t-001", map[string]any{"ts": rfc(now.Add(-70 * time.Second)), "lon": camLon, "lat": camLat,
		"event": "accident", "confidence": 0.9, "count": 2, "zone": "junction", "id": "acc-1"})
	// Fire: alarm, smoke 150 m away, 114 call (priority 1) 30 m from the alarm.
	faLon, faLat := 105.8420, 21.0350
	smokeLon, smokeLat := offset(faLon, faLat, 120, 90)
	c114Lon, c114Lat := offset(faLon, faLat, 20, -20)
	pub.send(t, "city/emergency/fa-t-901", map[string]any{"ts": rfc(now.Add(-3 * time.Minute)), "lon": faLon, "lat": faLat,
		"type": "fire", "priority": 2, "channel": "fire_alarm", "note": "Đầu báo khói tầng 3 kích hoạt", "id": "fire-1"})
	pub.send(t, "city/camera/cam-t-002", map[string]any{"ts": rfc(now.Add(-150 * time.Second)), "lon": smokeLon, "lat": smokeLat,
		"event": "smoke", "confidence": 0.85, "id": "fire-2"})
	// Congestion: three sensors within 400 m jammed for 3 of the 5 minutes so far.
	sensors := [][2]float64{{105.8600, 21.0200}}
	for _, d := range [][2]float64{{150, 50}, {-200, 250}} {
		lon, lat := offset(105.8600, 21.0200, d[0], d[1])
		sensors = append(sensors, [2]float64{lon, lat})
	}
	jamStart := now.Add(-12 * time.Minute)
	reading := func(i, minute int, speed, occ float64) {
		pub.send(t, fmt.Sprintf("city/traffic/tfc-t-%d", i), map[string]any{
			"ts": rfc(jamStart.Add(time.Duration(minute) * time.Minute)), "lon": sensors[i][0], "lat": sensors[i][1],
			"speed_kmh": speed, "volume": 20, "occupancy": occ, "interval_s": 60, "id": fmt.Sprintf("tfc-%d-%d", i, minute)})
	}
	for m := 0; m <= 3; m++ {
		for i := range sensors {
			reading(i, m, 9, 0.75)
		}
	}
	eventually(t, "accident and fire incidents", 15*time.Second, func() bool { return len(incidents(t, pool)) == 2 })

	// Restart in the middle: the half-held congestion window and the open
	// incidents must survive.
	a.stop()
	a = runApp(t, dbURL, b.URL, clientID)

	pub.send(t, "city/emergency/cc115-hanoi", map[string]any{"ts": rfc(now.Add(-30 * time.Second)), "lon": callLon, "lat": callLat,
		"type": "medical", "priority": 2, "channel": "call_115", "note": "Tai nạn giữa ô tô và xe máy", "caller_ref": "cc115-000001", "id": "acc-2"})
	pub.send(t, "city/emergency/cc114-hanoi", map[string]any{"ts": rfc(now.Add(-60 * time.Second)), "lon": c114Lon, "lat": c114Lat,
		"type": "fire", "priority": 1, "channel": "call_114", "note": "Cháy tầng 3 chung cư", "id": "fire-3"})
	for m := 4; m <= 6; m++ {
		for i := range sensors {
			reading(i, m, 8, 0.8)
		}
	}
	// A redelivered camera event (same id) and a replay must add nothing.
	pub.send(t, "city/camera/cam-t-001", map[string]any{"ts": rfc(now.Add(-70 * time.Second)), "lon": camLon, "lat": camLat,
		"event": "accident", "confidence": 0.9, "count": 2, "zone": "junction", "id": "acc-1"})

	wardOf := func(lon, lat float64) string { c, _ := a.geo.Wards().Lookup(lon, lat); return c }
	want := map[string]struct {
		sev, ward string
		evidence  int
	}{
		"accident":           {"severe", wardOf(camLon, camLat), 2},
		"fire":               {"severe", wardOf(faLon, faLat), 3},
		"traffic_congestion": {"moderate", wardOf(sensors[0][0], sensors[0][1]), 3},
	}
	check := func() string {
		got := incidents(t, pool)
		if len(got) != 3 {
			return fmt.Sprintf("%d incidents: %+v", len(got), got)
		}
		for _, x := range got {
			w, ok := want[x.kind]
			if !ok || x.severity != w.sev || x.ward != w.ward || x.evidence != w.evidence {
				return fmt.Sprintf("incident %+v, want %+v", x, w)
			}
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for msg := check(); msg != ""; msg = check() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The jam clears (readings back to normal); clear_for is 3 min of
	// observation time, so with readings 4 min old it resolves at the next
	// maintenance round.
	for m := 7; m <= 8; m++ {
		for i := range sensors {
			reading(i, m, 40, 0.2)
		}
	}
	eventually(t, "congestion resolved itself", 20*time.Second, func() bool {
		for _, x := range incidents(t, pool) {
			if x.kind == "traffic_congestion" {
				return x.status == "resolved"
			}
		}
		return false
	})
	for _, x := range incidents(t, pool) {
		if x.kind != "traffic_congestion" && x.status != "new" {
			t.Errorf("people-raised %s is %s", x.kind, x.status)
		}
	}
	var events, maxSeq int
	pool.QueryRow(context.Background(), `SELECT count(*), coalesce(max(seq), 0) FROM incident_events`).Scan(&events, &maxSeq)
	if events != maxSeq || events < 7 {
		t.Errorf("%d events, max seq %d", events, maxSeq)
	}
}

func (e *routeEnv) do(t *testing.T, method, path, token, ifMatch, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:50000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	if ifMatch != "" {
		r.Header.Set("If-Match", ifMatch)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// The lifecycle over HTTP: If-Match (428, 409), invalid transitions (422),
// the timeline and audit, ward scope, and the rules API.
func TestIncidentAndRulesAPI(t *testing.T) {
	e := newAlertsEnv(t)
	disp := e.session(t, "disp", "dispatcher")
	code, x := e.do(t, "POST", "/api/v1/incidents", disp, "",
		`{"kind":"medical","severity":"severe","title":"Người ngã xe","note":"gọi qua điện thoại","location":{"type":"Point","coordinates":[105.8522,21.0287]}}`)
	if code != 201 || x["status"] != "new" || x["version"].(float64) != 1 {
		t.Fatalf("open: %d %v", code, x)
	}
	id := x["id"].(string)
	ward := x["ward"].(map[string]any)["code"].(string)
	path := "/api/v1/incidents/" + id
	if code, _ := e.do(t, "POST", path+"/ack", disp, "", ``); code != 428 {
		t.Fatalf("ack without If-Match: %d", code)
	}
	if code, _ := e.do(t, "POST", path+"/reopen", disp, `"1"`, ``); code != 422 {
		t.Fatalf("reopen of a new incident: %d", code)
	}
	if code, x = e.do(t, "POST", path+"/ack", disp, `"1"`, ``); code != 200 || x["status"] != "acknowledged" {
		t.Fatalf("ack: %d %v", code, x)
	}
	if code, x = e.do(t, "POST", path+"/ack", disp, `"1"`, ``); code != 409 {
		t.Fatalf("stale ack: %d %v", code, x)
	}
	if code, _ := e.do(t, "POST", path+"/resolve", disp, `2`, `{"resolution":"fixed"}`); code != 400 {
		t.Fatalf("bad resolution: %d", code)
	}
	if code, x = e.do(t, "POST", path+"/comments", disp, "", `{"text":"đã liên hệ 115"}`); code != 200 {
		t.Fatalf("comment: %d %v", code, x)
	}
	// The comment left the version at 2 (it changes no state an If-Match protects).
	if code, x = e.do(t, "POST", path+"/resolve", disp, `2`, `{"resolution":"handled","note":"ok"}`); code != 200 || x["status"] != "resolved" {
		t.Fatalf("resolve: %d %v", code, x)
	}
	code, x = e.do(t, "GET", path, disp, "", "")
	if code != 200 || len(x["timeline"].([]any)) != 4 {
		t.Fatalf("get: %d %v", code, x)
	}
	var audits int
	e.app.pool.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE target = $1`, "incident/"+id).Scan(&audits)
	if audits != 4 {
		t.Errorf("%d audit entries for 4 changes", audits)
	}
	if code, _ := e.do(t, "GET", path+"/nearest-units?kind=ambulance&limit=3", disp, "", ""); code != 200 {
		t.Errorf("nearest units: %d", code)
	}
	// Ward scope: a scoped operator elsewhere neither sees nor acts.
	other := "00008"
	if ward == other {
		other = "00004"
	}
	scoped := e.session(t, "scoped-op", "operator", other)
	if code, _ := e.do(t, "GET", path, scoped, "", ""); code != 404 {
		t.Errorf("scoped get outside: %d", code)
	}
	if code, _ := e.do(t, "POST", path+"/comments", scoped, "", `{"text":"x"}`); code != 404 {
		t.Errorf("scoped comment outside: %d", code)
	}
	if code, x := e.do(t, "GET", "/api/v1/incidents", scoped, "", ""); code != 200 || len(x["items"].([]any)) != 0 {
		t.Errorf("scoped list: %d %v", code, x)
	}
	if code, x := e.do(t, "GET", "/api/v1/incidents?status=resolved&bbox=105.8,21.0,105.9,21.1&q=ng", disp, "", ""); code != 200 || len(x["items"].([]any)) != 1 {
		t.Errorf("filtered list: %d %v", code, x)
	}
	if code, _ := e.do(t, "GET", "/api/v1/incidents?status=done", disp, "", ""); code != 400 {
		t.Errorf("bad filter: %d", code)
	}

	// Rules: a bad set is refused naming the rule; the running set stays.
	admin := e.session(t, "adm", "admin")
	code, _ = e.do(t, "GET", "/api/v1/rules", admin, "", "")
	if code != 200 {
		t.Fatalf("get rules: %d", code)
	}
	r := httptest.NewRequest("GET", "/api/v1/rules", nil)
	r.Header.Set("Authorization", "Bearer "+admin)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	doc := w.Body.String()
	bad := strings.Replace(doc, `"min_confidence": 0.8`, `"min_confidence": 1.8`, 1)
	code, x = e.do(t, "PUT", "/api/v1/rules", admin, "", bad)
	if code != 422 || !strings.Contains(fmt.Sprint(x), "camera-accident") {
		t.Fatalf("bad rules: %d %v", code, x)
	}
	good := strings.Replace(doc, `"min_confidence": 0.8`, `"min_confidence": 0.7`, 1)
	if code, x = e.do(t, "PUT", "/api/v1/rules", admin, `"1"`, good); code != 200 {
		t.Fatalf("good rules: %d %v", code, x)
	}
	if code, _ = e.do(t, "PUT", "/api/v1/rules", admin, `"1"`, good); code != 409 {
		t.Fatalf("stale rules: %d", code)
	}
	var v int
	e.app.pool.QueryRow(e.ctx, `SELECT version FROM alert_rules`).Scan(&v)
	if v != 2 {
		t.Fatalf("rules version %d", v)
	}
}

func testRedisURL() string {
	if u := os.Getenv("IOC_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Hostile and careless parameters (issue 9, findings 3, 6 and 11): every
// ward must be a known ward code, kinds, severities and statuses known
// values, in the query and in the body of a hand-opened incident; q takes
// LIKE's wildcards literally; the rules' webhook URL, which carries its
// token, is shown in full to administrators only.
func TestIncidentParametersAreChecked(t *testing.T) {
	e := newAlertsEnv(t)
	disp := e.session(t, "disp", "dispatcher")
	for _, q := range []string{"ward=../../etc", "ward=99999", "ward=%27%20OR%201=1", "kind=nonsense", "kind=../x",
		"severity=catastrophic", "status=done"} {
		code, x := e.do(t, "GET", "/api/v1/incidents?"+q, disp, "", "")
		if code != 400 {
			t.Errorf("GET /incidents?%s: %d %v, want 400", q, code, x)
		}
		if er, _ := x["error"].(map[string]any); strings.HasPrefix(q, "ward=") && (er == nil || er["code"] != "unknown_ward") {
			t.Errorf("GET /incidents?%s: %v, want unknown_ward", q, x)
		}
	}
	at := `"location":{"type":"Point","coordinates":[105.8522,21.0287]}`
	for _, body := range []string{
		`{"kind":"bogus_kind","severity":"severe",` + at + `}`,
		`{"kind":"medical","severity":"severe","ward":"../../etc",` + at + `}`,
		`{"kind":"medical","severity":"severe","ward":"00008",` + at + `}`, // the point is in another ward
	} {
		if code, x := e.do(t, "POST", "/api/v1/incidents", disp, "", body); code != 400 {
			t.Errorf("POST /incidents %s: %d %v, want 400", body, code, x)
		}
	}
	code, x := e.do(t, "POST", "/api/v1/incidents", disp, "", `{"kind":"medical","severity":"severe","title":"50% làn đường bị chặn",`+at+`}`)
	if code != 201 {
		t.Fatalf("open: %d %v", code, x)
	}
	ward := x["ward"].(map[string]any)["code"].(string)
	for _, title := range []string{"500 người tụ tập", "5_0 ngã tư", `a\b`} {
		if code, x := e.do(t, "POST", "/api/v1/incidents", disp, "", `{"kind":"crowd","severity":"minor","title":`+strconvQuote(title)+`,`+at+`}`); code != 201 {
			t.Fatalf("open %q: %d %v", title, code, x)
		}
	}
	titles := func(q string) []string {
		code, x := e.do(t, "GET", "/api/v1/incidents?q="+q+"&ward="+ward, disp, "", "")
		if code != 200 {
			t.Fatalf("q=%s: %d %v", q, code, x)
		}
		var out []string
		for _, it := range x["items"].([]any) {
			out = append(out, it.(map[string]any)["title"].(string))
		}
		return out
	}
	if got := titles("50%25"); len(got) != 1 || got[0] != "50% làn đường bị chặn" {
		t.Errorf("q=50%%: %q, want only the literal 50%%", got)
	}
	if got := titles("5_0"); len(got) != 1 || got[0] != "5_0 ngã tư" {
		t.Errorf("q=5_0: %q, want only the literal 5_0", got)
	}
	if got := titles(`a%5C`); len(got) != 1 || got[0] != `a\b` {
		t.Errorf(`q=a\: %q`, got)
	}

	// The webhook URL: in full for an admin, scheme and host for others.
	admin := e.session(t, "adm", "admin")
	get := func(tok string) string {
		r := httptest.NewRequest("GET", "/api/v1/rules", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("get rules: %d", w.Code)
		}
		return w.Body.String()
	}
	doc := get(admin)
	var rs map[string]any
	json.Unmarshal([]byte(doc), &rs)
	rs["notify"].(map[string]any)["webhook_url"] = "https://ops:hunter2@hooks.example.org/services/T0/B0/SECRETTOKEN?token=abc123"
	b, _ := json.Marshal(rs)
	if code, x := e.do(t, "PUT", "/api/v1/rules", admin, "", string(b)); code != 200 {
		t.Fatalf("put rules: %d %v", code, x)
	}
	if d := get(admin); !strings.Contains(d, "SECRETTOKEN") || !strings.Contains(d, "abc123") {
		t.Errorf("an admin does not see the webhook URL: %.300s", d)
	}
	for _, role := range []string{"operator", "dispatcher", "analyst"} {
		d := get(e.session(t, "rules-"+role, role))
		for _, secret := range []string{"SECRETTOKEN", "abc123", "hunter2", "services/T0"} {
			if strings.Contains(d, secret) {
				t.Errorf("GET /rules as %s shows %q of the webhook URL", role, secret)
			}
		}
		if !strings.Contains(d, "hooks.example.org") {
			t.Errorf("GET /rules as %s: the webhook host is gone too: %.300s", role, d)
		}
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
