package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ioc/api"
	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
)

// contractRoles is CONTRACT section 5 written out by hand per action,
// independent of auth's policy table: a route's expected answers come
// from here, so a wrong entry in either place shows up.
var contractRoles = func() map[string][]string {
	all := []string{"operator", "dispatcher", "analyst", "admin"}
	return map[string][]string{
		"session:self": all, "devices:read": all, "telemetry:read": all, "units:read": all, "areas:read": all,
		"ogc:read": all, "ws:subscribe": all, "geofences:read": all, "rules:read": all, "incidents:read": all,
		"incidents:ack": {"operator", "dispatcher", "admin"}, "incidents:comment": {"operator", "dispatcher", "admin"},
		"incidents:open": {"dispatcher", "admin"}, "incidents:dispatch": {"dispatcher", "admin"},
		"incidents:resolve": {"dispatcher", "admin"}, "incidents:reopen": {"dispatcher", "admin"},
		"stats:read": {"analyst", "admin"}, "export:read": {"analyst", "admin"}, "rejects:read": {"analyst", "admin"},
		"metrics:read":    {"analyst", "admin"},
		"geofences:write": {"admin"}, "rules:write": {"admin"}, "audit:read": {"admin"}, "users:admin": {"admin"},
		"tokens:admin": {"admin"}, "devices:write": {"admin"},
	}
}()

// contractRoutes are contract routes (CONTRACT sections 3 and 4) with the
// action each is authorised by; newRouteEnv fails a test if newApp does
// not serve one of them.
var contractRoutes = []api.Route{
	{Method: "GET", Pattern: "/api/v1/incidents", Action: auth.ActIncidentsRead},
	{Method: "POST", Pattern: "/api/v1/incidents", Action: auth.ActIncidentsOpen},
	{Method: "GET", Pattern: "/api/v1/incidents/{id}", Action: auth.ActIncidentsRead},
	{Method: "GET", Pattern: "/api/v1/incidents/{id}/evidence", Action: auth.ActIncidentsRead},
	{Method: "GET", Pattern: "/api/v1/incidents/{id}/timeline", Action: auth.ActIncidentsRead},
	{Method: "POST", Pattern: "/api/v1/incidents/{id}/ack", Action: auth.ActIncidentsAck},
	{Method: "POST", Pattern: "/api/v1/incidents/{id}/dispatch", Action: auth.ActIncidentsDispatch},
	{Method: "POST", Pattern: "/api/v1/incidents/{id}/resolve", Action: auth.ActIncidentsResolve},
	{Method: "POST", Pattern: "/api/v1/incidents/{id}/reopen", Action: auth.ActIncidentsReopen},
	{Method: "POST", Pattern: "/api/v1/incidents/{id}/comments", Action: auth.ActIncidentsComment},
	{Method: "GET", Pattern: "/api/v1/incidents/{id}/nearest-units", Action: auth.ActIncidentsRead},
	{Method: "GET", Pattern: "/api/v1/incidents.geojson", Action: auth.ActExportRead},
	{Method: "GET", Pattern: "/api/v1/incidents.csv", Action: auth.ActExportRead},
	{Method: "GET", Pattern: "/api/v1/stats/incidents", Action: auth.ActStatsRead},
	{Method: "GET", Pattern: "/api/v1/rules", Action: auth.ActRulesRead},
	{Method: "PUT", Pattern: "/api/v1/rules", Action: auth.ActRulesWrite},
	{Method: "GET", Pattern: "/ws", Action: auth.ActWSSubscribe},
	{Method: "GET", Pattern: "/ogc/", Action: auth.ActOGCRead},
}

// publicRoutes may answer without credentials (CONTRACT section 3).
var publicRoutes = []string{"GET /healthz", "GET /readyz", "POST /api/v1/login"}

func quietLog() *slog.Logger {
	if os.Getenv("IOC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type routeEnv struct {
	app   *app
	h     http.Handler
	store *auth.Store
	ctx   context.Context
}

// newRouteEnv builds the server exactly as iocd serve does (newApp), on a
// fresh database; every contract route must be served.
func newRouteEnv(t *testing.T) *routeEnv {
	t.Helper()
	pool, dbURL := dbtest.New(t)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.MetricsAddr = ""
	pwFile := filepath.Join(t.TempDir(), "admin-pw")
	os.WriteFile(pwFile, []byte("first-start-secret-pw\n"), 0o600)
	cfg.BootstrapAdminPasswordFile = pwFile
	ctx := context.Background()
	a, err := newApp(ctx, cfg, quietLog())
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(a.close)
	served := map[string]string{} // route → action
	for _, r := range a.srv.Routes() {
		served[r.Method+" "+r.Pattern] = r.Action
	}
	for _, r := range contractRoutes {
		switch act, ok := served[r.Method+" "+r.Pattern]; {
		case !ok:
			t.Errorf("contract route %s %s is not served", r.Method, r.Pattern)
		case act != r.Action:
			t.Errorf("%s %s is authorised by %q, want %q", r.Method, r.Pattern, act, r.Action)
		}
	}
	store := auth.NewStore(pool, auth.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}, 2)
	return &routeEnv{app: a, h: a.srv.Handler(), store: store, ctx: ctx}
}

// session signs a fresh account of the role in (one per request, so a
// logout or a revocation cannot affect the next call).
func (e *routeEnv) session(t *testing.T, name, role string, wards ...string) string {
	t.Helper()
	u, err := e.store.User(e.ctx, name)
	if err != nil {
		u, err = e.store.AddUser(e.ctx, auth.NewUser{Name: name, Role: role, Wards: wards, Password: "route-test-password"})
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := e.store.NewSession(e.ctx, u, time.Hour, "127.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return s.Token
}

func (e *routeEnv) call(method, path, token string) *httptest.ResponseRecorder {
	var body io.Reader
	if method != "GET" && method != "HEAD" && method != "DELETE" {
		body = strings.NewReader(`{}`)
	}
	r := httptest.NewRequest(method, path, body)
	r.RemoteAddr = "127.0.0.1:50000"
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// concrete fills a route pattern's wildcards with values that exist or
// are harmless: a missing account, a test device, an unknown id.
func concrete(pattern string) string {
	r := strings.NewReplacer("{name}", "nobody", "{id}", "999999", "{path...}", "collections")
	p := r.Replace(pattern)
	if strings.HasSuffix(p, "/") && p != "/" {
		p += "collections"
	}
	return p
}

func TestRouteTable(t *testing.T) {
	e := newRouteEnv(t)
	roles := []string{"operator", "dispatcher", "analyst", "admin"}
	routes := e.app.srv.Routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes", len(routes))
	}
	checked := 0
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		path := concrete(rt.Pattern)
		if rt.Action == "" {
			if !slices.Contains(publicRoutes, key) && (strings.HasPrefix(rt.Pattern, "/api/") || rt.Pattern == "/ws" ||
				strings.HasPrefix(rt.Pattern, "/ogc") || rt.Pattern == "/metrics") {
				// A catch-all that answers 404 for unknown paths is fine;
				// anything else public there is not.
				if !strings.HasSuffix(rt.Pattern, "/") {
					t.Errorf("%s is public; the contract says it needs credentials", key)
				} else if w := e.call("GET", rt.Pattern+"no-such-route", ""); w.Code != http.StatusNotFound {
					t.Errorf("public catch-all %s answers %d without credentials, want 404", key, w.Code)
				}
			}
			continue
		}
		allowed, known := contractRoles[rt.Action]
		if !known {
			t.Errorf("%s uses action %q, which is not in the contract's role matrix (a typo refuses everyone)", key, rt.Action)
			continue
		}
		if w := e.call(rt.Method, path, ""); w.Code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", key, w.Code)
		}
		if w := e.call(rt.Method, path, "iocs_forged-token"); w.Code != http.StatusUnauthorized {
			t.Errorf("%s with a forged token: %d, want 401", key, w.Code)
		}
		for _, role := range roles {
			w := e.call(rt.Method, path, e.session(t, "rt-"+role, role))
			want := slices.Contains(allowed, role)
			got := w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden
			if got != want {
				t.Errorf("%s as %s: %d (allowed=%v, want %v): %.200s", key, role, w.Code, got, want, w.Body)
			}
			if w.Code >= 500 {
				t.Errorf("%s as %s: %d: %.200s", key, role, w.Code, w.Body)
			}
		}
		checked++
	}
	t.Logf("checked %d routes x (none, forged, %d roles)", checked, len(roles))
}

// A ward-scoped account sees nothing outside its wards through the routes
// that exist (devices, telemetry), and global actions refuse it.
func TestWardScopeOnRoutes(t *testing.T) {
	e := newRouteEnv(t)
	pool := e.app.pool
	for _, d := range []struct{ id, ward string }{{"cam-in", "00008"}, {"cam-out", "00004"}} {
		if _, err := pool.Exec(e.ctx, `INSERT INTO devices (id, kind, geom, ward_code, first_seen, last_seen)
			VALUES ($1, 'camera', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), $2, now(), now())`, d.id, d.ward); err != nil {
			t.Fatal(err)
		}
	}
	tok := func() string { return e.session(t, "scoped-analyst", "analyst", "00008") }
	checkHidden := func(path string) {
		t.Helper()
		w := e.call("GET", path, tok())
		if w.Code != http.StatusForbidden && w.Code != http.StatusNotFound {
			t.Errorf("GET %s outside the caller's wards: %d %.200s", path, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "00004") {
			t.Errorf("GET %s leaks the other ward: %.200s", path, w.Body)
		}
	}
	checkHidden("/api/v1/devices/cam-out")
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	checkHidden("/api/v1/devices/cam-out/telemetry?from=" + from + "&to=" + to)

	w := e.call("GET", "/api/v1/devices", tok())
	if w.Code != 200 || strings.Contains(w.Body.String(), "cam-out") || !strings.Contains(w.Body.String(), "cam-in") {
		t.Errorf("device list for a ward-scoped caller: %d %.300s", w.Code, w.Body)
	}
	w = e.call("GET", "/api/v1/devices?ward=00004", tok())
	if w.Code != http.StatusForbidden && (w.Code != 200 || strings.Contains(w.Body.String(), "cam-out")) {
		t.Errorf("asking for another ward: %d %.300s", w.Code, w.Body)
	}
	if w := e.call("GET", "/api/v1/devices/cam-in", tok()); w.Code != 200 {
		t.Errorf("own ward's device: %d %.200s", w.Code, w.Body)
	}
	// Raw rejects cannot be cut by ward: refused to a scoped analyst.
	if w := e.call("GET", "/api/v1/ingest/rejects", tok()); w.Code != http.StatusForbidden {
		t.Errorf("rejects for a ward-scoped analyst: %d", w.Code)
	}
	// A scoped admin cannot manage accounts.
	if w := e.call("GET", "/api/v1/users", e.session(t, "scoped-admin", "admin", "00008")); w.Code != http.StatusForbidden {
		t.Errorf("users for a ward-scoped admin: %d", w.Code)
	}
}

// The whole flow through iocd's own server: bootstrap admin, login, create
// an operator, CSRF on the cookie, audit of it all.
func TestSecurityThroughIocd(t *testing.T) {
	e := newRouteEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	post := func(path, body string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post("/api/v1/login", `{"name":"admin","password":"first-start-secret-pw"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("bootstrap admin login: %d", resp.StatusCode)
	}
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == "ioc_session" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" || cookie == "" {
		t.Fatalf("headers %v", resp.Header)
	}
	body := `{"name":"op1","role":"operator","wards":["00008"],"password":"operator-one-secret"}`
	if r := post("/api/v1/users", body, map[string]string{"Cookie": cookie}); r.StatusCode != 403 {
		t.Fatalf("cookie POST without X-Requested-With: %d", r.StatusCode)
	}
	if r := post("/api/v1/users", body, map[string]string{"Cookie": cookie, "X-Requested-With": "XMLHttpRequest"}); r.StatusCode != 201 {
		t.Fatalf("create operator: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/audit?limit=50", nil)
	req.Header.Set("Cookie", cookie)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var page struct {
		Items []auth.Entry `json:"items"`
	}
	json.NewDecoder(r.Body).Decode(&page)
	var actions []string
	for _, it := range page.Items {
		actions = append(actions, it.Action)
	}
	for _, want := range []string{auth.AuditBootstrap, auth.AuditLogin, auth.AuditRefused, auth.AuditUserAdd} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}
