package alerts

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"ioc/api"
	"ioc/auth"
	"ioc/db/dbtest"
)

// histGeo names the two test wards.
type histGeo struct{ fakeGeo }

func (histGeo) WardName(code string) string {
	switch code {
	case "00004":
		return "Phường Ba Đình"
	case "00008":
		return "Phường Ngọc Hà"
	}
	return ""
}

// histEnv is an engine over its own database with a fixed clock, and the
// routes served for a chosen caller.
type histEnv struct {
	*env
	now time.Time
}

func newHistEnv(t *testing.T) *histEnv {
	t.Helper()
	pool, _ := dbtest.New(t)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	c := &clock{t: now}
	e, err := New(context.Background(), Config{Geo: histGeo{}, Now: c.Now, NoSignals: true, Tick: time.Hour}, pool, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return &histEnv{env: &env{e: e, pool: pool, clock: c, ctx: context.Background()}, now: now}
}

// as serves the routes to caller c under the real policy.
type fixedCaller api.Caller

func (f fixedCaller) Authenticate(*http.Request) (api.Caller, error) { return api.Caller(f), nil }

func (v *histEnv) as(t *testing.T, c api.Caller) http.Handler {
	t.Helper()
	srv := api.New("127.0.0.1:0", testLog())
	srv.SetAuth(fixedCaller(c), auth.Policy{})
	v.e.Register(srv, HTTPOptions{KnownWard: func(code string) bool { return code == "00004" || code == "00008" }})
	return srv.Handler()
}

var (
	analyst       = api.Caller{Name: "ana", Role: auth.RoleAnalyst}
	scopedAnalyst = api.Caller{Name: "ward4", Role: auth.RoleAnalyst, Wards: []string{"00004"}}
)

// row is one incident to insert.
type row struct {
	id, kind, severity, status, ward, title string
	lon, lat                                float64
	opened                                  time.Time
	ack, dispatch, resolve                  time.Duration // after opened; 0: not reached
}

func (v *histEnv) insert(t *testing.T, rows ...row) {
	t.Helper()
	for _, r := range rows {
		at := func(d time.Duration) any {
			if d == 0 {
				return nil
			}
			return r.opened.Add(d)
		}
		var ward any
		if r.ward != "" {
			ward = r.ward
		}
		_, err := v.pool.Exec(v.ctx, `INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by, auto_resolve,
				opened_at, updated_at, acknowledged_at, dispatched_at, resolved_at, last_evidence_at)
			VALUES ($1, $2, $3, $4, $5, ST_SetSRID(ST_MakePoint($6, $7), 4326), $8, 'rule:test', false, $9, $9, $10, $11, $12, $9)`,
			r.id, r.kind, r.severity, r.status, r.title, r.lon, r.lat, ward, r.opened, at(r.ack), at(r.dispatch), at(r.resolve))
		if err != nil {
			t.Fatalf("insert %s: %v", r.id, err)
		}
	}
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

func ids(t *testing.T, w *httptest.ResponseRecorder) []string {
	t.Helper()
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	var l api.List[*Incident]
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, x := range l.Items {
		out = append(out, x.ID)
	}
	return out
}

// fixture: five incidents over two wards, a day apart, newest first A.
func (v *histEnv) fixture(t *testing.T) {
	h := time.Hour
	v.insert(t,
		row{id: "A", kind: "fire", severity: "severe", status: StatusNew, ward: "00004", title: "Cháy kho", lon: 105.84, lat: 21.03, opened: v.now.Add(-1 * h)},
		row{id: "B", kind: "accident", severity: "moderate", status: StatusAcknowledged, ward: "00008", title: "=HYPERLINK(\"http://x\")", lon: 105.82, lat: 21.04, opened: v.now.Add(-25 * h), ack: 30 * time.Second},
		row{id: "C", kind: "fire", severity: "extreme", status: StatusDispatched, ward: "00004", title: "-2+3", lon: 105.85, lat: 21.02, opened: v.now.Add(-49 * h), ack: 50 * time.Second, dispatch: 100 * time.Second},
		row{id: "D", kind: "flooding", severity: "minor", status: StatusResolved, ward: "00008", title: "Ngập, \"sâu\"\nđường", lon: 105.80, lat: 21.05, opened: v.now.Add(-73 * h), ack: 90 * time.Second, dispatch: 200 * time.Second, resolve: 30 * time.Minute},
		row{id: "E", kind: "accident", severity: "severe", status: StatusResolved, title: "ngoài phường", lon: 105.95, lat: 21.20, opened: v.now.Add(-97 * h), ack: 40 * time.Second, dispatch: 110 * time.Second, resolve: 2 * time.Hour},
	)
	// E is updated late: updated_since finds it.
	if _, err := v.pool.Exec(v.ctx, `UPDATE incidents SET updated_at = $1 WHERE id = 'E'`, v.now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func q(base string, kv ...string) string {
	vals := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		vals.Set(kv[i], kv[i+1])
	}
	return base + "?" + vals.Encode()
}

func TestHistoryFilters(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	h := v.as(t, analyst)
	ts := func(d time.Duration) string { return v.now.Add(d).Format(time.RFC3339) }
	for _, c := range []struct {
		query []string
		want  string
	}{
		{nil, "A B C D E"},
		{[]string{"status", "new"}, "A"},
		{[]string{"status", "new,resolved"}, "A D E"},
		{[]string{"kind", "fire"}, "A C"},
		{[]string{"kind", "fire, flooding"}, "A C D"},
		{[]string{"severity", "severe,extreme"}, "A C E"},
		{[]string{"ward", "00008"}, "B D"},
		{[]string{"ward", "00004,00008"}, "A B C D"},
		{[]string{"active", "true"}, "A B C"},
		{[]string{"active", "false"}, "A B C D E"},
		{[]string{"bbox", "105.83,21.0,105.86,21.035"}, "A C"},
		{[]string{"from", ts(-50 * time.Hour), "to", ts(-24 * time.Hour)}, "B C"},
		{[]string{"from", ts(-2 * time.Hour)}, "A"},
		{[]string{"to", ts(-72 * time.Hour)}, "D E"},
		{[]string{"updated_since", ts(-2 * time.Hour)}, "A E"},
		{[]string{"q", "kho"}, "A"},
		{[]string{"q", "flooding"}, "D"},
		{[]string{"kind", "accident", "severity", "severe", "active", "false"}, "E"},
	} {
		got := strings.Join(ids(t, get(t, h, q("/api/v1/incidents", c.query...))), " ")
		if got != c.want {
			t.Errorf("%v: got %q, want %q", c.query, got, c.want)
		}
	}
	// The same filters select the same rows in the statistics and the
	// exports.
	w := get(t, h, q("/api/v1/stats/incidents", "group_by", "kind", "kind", "fire,flooding", "from", ts(-30*24*time.Hour)))
	var st IncidentStats
	json.Unmarshal(w.Body.Bytes(), &st)
	if w.Code != 200 || st.Total != 3 || len(st.Items) != 2 || st.Items[0] != (StatsBucket{Key: "fire", Count: 2}) {
		t.Errorf("stats by kind: %d %+v", w.Code, st)
	}
	w = get(t, h, q("/api/v1/incidents.csv", "kind", "fire,flooding"))
	if recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(w.Body.String(), "\uFEFF"))).ReadAll(); w.Code != 200 || err != nil || len(recs) != 4 {
		t.Errorf("csv of 3 incidents has %d records (status %d, %v)", len(recs), w.Code, err)
	}
}

func TestHistoryBadParameters(t *testing.T) {
	v := newHistEnv(t)
	h := v.as(t, analyst)
	for _, c := range []struct{ path, code string }{
		{"/api/v1/incidents?status=open", "bad_parameter"},
		{"/api/v1/incidents?status=new,,resolved", "bad_parameter"},
		{"/api/v1/incidents?kind=drone", "bad_parameter"},
		{"/api/v1/incidents?ward=99999", "unknown_ward"},
		{"/api/v1/incidents?ward=00004,99999", "unknown_ward"},
		{"/api/v1/incidents?active=yes", "bad_parameter"},
		{"/api/v1/incidents?limit=0", "bad_parameter"},
		{"/api/v1/incidents?limit=1001", "bad_parameter"},
		{"/api/v1/incidents?from=2025-01-01T00:00:00Z&to=2026-06-01T00:00:00Z", "span_too_long"},
		{"/api/v1/incidents?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "bad_parameter"},
		{"/api/v1/incidents?updated_since=soon", "bad_parameter"},
		{"/api/v1/incidents?cursor=xyz", "bad_parameter"},
		{"/api/v1/incidents?colour=red", "bad_parameter"},
		{"/api/v1/incidents?bbox=1,2,3", "bad_parameter"},
		{"/api/v1/stats/incidents", "bad_parameter"},
		{"/api/v1/stats/incidents?group_by=month", "bad_parameter"},
		{"/api/v1/stats/incidents?group_by=ward&from=2024-01-01T00:00:00Z", "span_too_long"},
		{"/api/v1/stats/incidents?group_by=ward&limit=5", "bad_parameter"},
		{"/api/v1/stats/response-times?by=severity", "bad_parameter"},
		{"/api/v1/incidents.csv?limit=5", "bad_parameter"},
		{"/api/v1/incidents.geojson?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "span_too_long"},
		{"/api/v1/incidents.csv?status=" + strings.Repeat("new,", 300) + "new", "bad_parameter"},
	} {
		w := get(t, h, c.path)
		var b api.ErrorBody
		json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != 400 || b.Error.Code != c.code {
			t.Errorf("%s: %d %s, want 400 %s", c.path, w.Code, w.Body.String(), c.code)
		}
	}
	// Store callers get the same checks.
	if _, _, err := v.e.store.List(v.ctx, IncidentFilter{From: v.now.Add(-400 * 24 * time.Hour), To: v.now}); err == nil {
		t.Error("List took a 400-day span")
	}
	// An operator may list but not export or count.
	op := v.as(t, api.Caller{Name: "op", Role: auth.RoleOperator})
	for _, p := range []string{"/api/v1/incidents.csv", "/api/v1/incidents.geojson", "/api/v1/incidents.atom", "/api/v1/stats/incidents?group_by=ward", "/api/v1/stats/response-times"} {
		if w := get(t, op, p); w.Code != 403 {
			t.Errorf("operator %s: %d", p, w.Code)
		}
	}
}

// Paging while incidents are being opened: every incident that existed
// when paging began is seen exactly once, in order.
func TestHistoryPagingThroughInserts(t *testing.T) {
	v := newHistEnv(t)
	const before = 250
	if _, err := v.pool.Exec(v.ctx, `INSERT INTO incidents (id, kind, severity, status, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, last_evidence_at)
		SELECT 'P' || lpad(g::text, 5, '0'), 'fire', 'severe', 'new', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), '00004', 'rule:t', false,
			$1::timestamptz - (g / 3) * interval '1 second', $1, $1
		FROM generate_series(1, $2) g`, v.now, before); err != nil {
		t.Fatal(err)
	}
	h := v.as(t, analyst)
	ctx, cancel := context.WithCancel(v.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	inserted := 0
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil && i < 500; i++ {
			// New incidents, some opened at the very instant of existing
			// ones (equal opened_at: the id breaks the tie).
			opened := v.now.Add(time.Duration(i%2) * time.Hour)
			if _, err := v.pool.Exec(ctx, `INSERT INTO incidents (id, kind, severity, status, geom, ward_code, opened_by, auto_resolve,
					opened_at, updated_at, last_evidence_at)
				VALUES ($1, 'fire', 'severe', 'new', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), '00004', 'rule:t', false, $2, $2, $2)`,
				fmt.Sprintf("N%05d", i), opened); err == nil {
				inserted++
			}
		}
	}()
	seen := map[string]int{}
	cursor, pages := "", 0
	var last *Incident
	for {
		path := "/api/v1/incidents?limit=17"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		w := get(t, h, path)
		var l api.List[*Incident]
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &l) != nil {
			t.Fatalf("page %d: %d %s", pages, w.Code, w.Body.String())
		}
		for _, x := range l.Items {
			seen[x.ID]++
			if last != nil && (x.OpenedAt.After(last.OpenedAt) || x.OpenedAt.Equal(last.OpenedAt) && x.ID >= last.ID) {
				t.Fatalf("%s after %s: out of order", x.ID, last.ID)
			}
			last = x
		}
		pages++
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	cancel()
	wg.Wait()
	for i := 1; i <= before; i++ {
		if id := fmt.Sprintf("P%05d", i); seen[id] != 1 {
			t.Fatalf("%s seen %d times over %d pages", id, seen[id], pages)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", id, n)
		}
	}
	t.Logf("%d pages, %d rows seen, %d inserted meanwhile", pages, len(seen), inserted)
}

// A ward-scoped analyst never gets another ward's incidents: not in the
// list, the statistics, the exports, the feed or CAP.
func TestHistoryWardScope(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	h := v.as(t, scopedAnalyst)
	if got := strings.Join(ids(t, get(t, h, "/api/v1/incidents")), " "); got != "A C" {
		t.Errorf("list: %q", got)
	}
	if w := get(t, h, "/api/v1/incidents?ward=00004,00008"); w.Code != 403 {
		t.Errorf("naming another ward: %d", w.Code)
	}
	for _, by := range StatsGroups {
		w := get(t, h, "/api/v1/stats/incidents?group_by="+by)
		var st IncidentStats
		json.Unmarshal(w.Body.Bytes(), &st)
		if w.Code != 200 || st.Total != 2 {
			t.Errorf("stats by %s: %d total %d", by, w.Code, st.Total)
		}
		if by == "ward" && (len(st.Items) != 1 || st.Items[0].Key != "00004") {
			t.Errorf("stats by ward: %+v", st.Items)
		}
	}
	w := get(t, h, "/api/v1/stats/response-times?by=ward")
	var rep ResponseReport
	json.Unmarshal(w.Body.Bytes(), &rep)
	if w.Code != 200 || rep.All.Count != 2 || len(rep.Items) != 1 || rep.Items[0].Key != "00004" {
		t.Errorf("response times: %d %s", w.Code, w.Body.String())
	}
	for _, p := range []string{"/api/v1/incidents.csv", "/api/v1/incidents.geojson", "/api/v1/incidents.atom"} {
		body := get(t, h, p).Body.String()
		if !strings.Contains(body, "Ba Đình") || strings.Contains(body, "00008") || strings.Contains(body, "Ngọc Hà") {
			t.Errorf("%s shows another ward:\n%s", p, body)
		}
	}
	if w := get(t, h, "/api/v1/incidents/B.cap"); w.Code != 404 {
		t.Errorf("CAP of another ward's incident: %d", w.Code)
	}
	if w := get(t, h, "/api/v1/incidents/A.cap"); w.Code != 200 {
		t.Errorf("CAP of own ward's incident: %d", w.Code)
	}
}

func TestHistoryCSV(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	w := get(t, v.as(t, analyst), "/api/v1/incidents.csv")
	body := w.Body.Bytes()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(w.Header().Get("Content-Disposition"), "attachment; filename=\"incidents-") {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if !bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")) {
		t.Fatal("no UTF-8 byte-order mark (Excel would misread the Vietnamese)")
	}
	if bytes.Count(body, []byte("\r\n")) < 6 || bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("rows do not end in CRLF")
	}
	r := csv.NewReader(bytes.NewReader(body[3:]))
	recs, err := r.ReadAll()
	if err != nil || len(recs) != 6 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("csv: %v %d rows\n%s", err, len(recs), body)
	}
	byID := map[string][]string{}
	for _, rec := range recs[1:] {
		byID[rec[0]] = rec
	}
	for id, want := range map[string]string{"B": `'=HYPERLINK("http://x")`, "C": "'-2+3", "D": "Ngập, \"sâu\"\nđường", "A": "Cháy kho"} {
		if got := byID[id][5]; got != want {
			t.Errorf("%s title %q, want %q", id, got, want)
		}
	}
	if a := byID["A"]; a[9] != "Phường Ba Đình" || a[6] != "105.84" || a[7] != "21.03" || a[11] != "2026-12-02T16:00:00+07:00" {
		t.Errorf("row A: %q", a)
	}
	if byID["E"][8] != "" || byID["D"][15] == "" {
		t.Errorf("ward-less or resolved rows: %q %q", byID["E"], byID["D"])
	}
	// The audit log has the export, with its query.
	if n := v.count(t, `SELECT count(*) FROM audit_log WHERE action = 'export:read' AND actor = 'ana' AND target = 'incidents.csv'`); n != 1 {
		t.Errorf("%d audit entries for the export", n)
	}
}

func TestCellGuard(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx",
		"\rx": "'\rx", "a=b": "a=b", "": "", "Phường": "Phường"} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHistoryGeoJSON(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	w := get(t, v.as(t, analyst), "/api/v1/incidents.geojson?kind=fire,accident")
	var fc struct {
		Type, Attribution string
		Features          []struct {
			Type       string
			ID         string
			Geometry   Point
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &fc); err != nil || w.Code != 200 {
		t.Fatalf("%d %v\n%s", w.Code, err, w.Body.String())
	}
	if w.Header().Get("Content-Type") != "application/geo+json" || fc.Type != "FeatureCollection" || !strings.Contains(fc.Attribution, "OpenStreetMap") {
		t.Errorf("collection: %s %+v", w.Header().Get("Content-Type"), fc)
	}
	if len(fc.Features) != 4 || fc.Features[0].ID != "A" || fc.Features[0].Geometry.Coordinates != [2]float64{105.84, 21.03} ||
		fc.Features[0].Properties["ward_name"] != "Phường Ba Đình" || fc.Features[3].Properties["ward_code"] != nil {
		t.Errorf("features: %+v", fc.Features)
	}
	// An empty answer is still a collection.
	w = get(t, v.as(t, analyst), "/api/v1/incidents.geojson?kind=crowd")
	if err := json.Unmarshal(w.Body.Bytes(), &fc); err != nil || len(fc.Features) != 0 {
		t.Errorf("empty export: %v %s", err, w.Body.String())
	}
}

// Exports read page after page: more rows than one page, each once.
func TestHistoryExportPages(t *testing.T) {
	v := newHistEnv(t)
	n := ExportPage*2 + 7
	if _, err := v.pool.Exec(v.ctx, `INSERT INTO incidents (id, kind, severity, status, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, last_evidence_at)
		SELECT 'X' || lpad(g::text, 6, '0'), 'fire', 'severe', 'new', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), '00004', 'rule:t', false,
			$1::timestamptz - g * interval '1 second', $1, $1
		FROM generate_series(1, $2) g`, v.now, n); err != nil {
		t.Fatal(err)
	}
	w := get(t, v.as(t, analyst), "/api/v1/incidents.csv")
	recs, err := csv.NewReader(bytes.NewReader(w.Body.Bytes()[3:])).ReadAll()
	if err != nil || len(recs) != n+1 {
		t.Fatalf("%v: %d rows, want %d", err, len(recs)-1, n)
	}
	// Newest first (opened g seconds before now), each once, across pages.
	for i, r := range recs[1:] {
		if want := fmt.Sprintf("X%06d", i+1); r[0] != want {
			t.Fatalf("row %d is %s, want %s", i, r[0], want)
		}
	}
	// A writer that fails stops the export at once: the page read ahead
	// is dropped and nothing runs on after Export returns.
	boom := errors.New("client gone")
	calls := 0
	got, err := v.e.store.Export(func() (context.Context, context.CancelFunc) { return context.WithCancel(v.ctx) },
		IncidentFilter{}, func(items []*Incident) error {
			calls++
			return boom
		})
	if !errors.Is(err, boom) || got != 0 || calls != 1 {
		t.Errorf("failing writer: %d rows, %d calls, %v", got, calls, err)
	}
	// A failing page query ends it with that error, after the pages before.
	pages := 0
	got, err = v.e.store.Export(func() (context.Context, context.CancelFunc) {
		pages++
		if pages == 2 {
			ctx, cancel := context.WithCancel(v.ctx)
			cancel()
			return ctx, cancel
		}
		return context.WithCancel(v.ctx)
	}, IncidentFilter{}, func([]*Incident) error { return nil })
	if !errors.Is(err, context.Canceled) || got != ExportPage {
		t.Errorf("failing page: %d rows, %v", got, err)
	}
}

func TestHistoryStats(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	h := v.as(t, analyst)
	stats := func(qs string) IncidentStats {
		t.Helper()
		w := get(t, h, "/api/v1/stats/incidents?"+qs)
		var st IncidentStats
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil {
			t.Fatalf("%s: %d %s", qs, w.Code, w.Body.String())
		}
		return st
	}
	st := stats("group_by=ward")
	if st.Total != 5 || len(st.Items) != 3 || st.Items[0].Count != 2 || st.Items[2] != (StatsBucket{Key: "", Count: 1}) {
		t.Errorf("by ward: %+v", st)
	}
	for _, b := range st.Items {
		if b.Key == "00008" && b.Name != "Phường Ngọc Hà" {
			t.Errorf("ward name: %+v", b)
		}
	}
	if st := stats("group_by=severity"); len(st.Items) != 4 || st.Items[0].Key != "extreme" || st.Items[3].Key != "minor" {
		t.Errorf("by severity: %+v", st.Items)
	}
	// Days in Hanoi: A opened at 09:00Z = 16:00+07 on 2 December; the
	// default span is the last 30 days, every day answered.
	st = stats("group_by=day")
	if len(st.Items) != 31 || st.Items[30].Key != "2026-12-02T00:00:00+07:00" || st.Items[30].Count != 1 || st.Total != 5 {
		t.Errorf("by day: %d buckets, last %+v", len(st.Items), st.Items[len(st.Items)-1])
	}
	// Hours: E at 10:00Z-97h = 2026-11-28T09:00Z = 16:00+07.
	from := v.now.Add(-98 * time.Hour).Format(time.RFC3339)
	st = stats("group_by=hour&from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(v.now.Format(time.RFC3339)))
	if len(st.Items) != 98 || st.Items[1] != (StatsBucket{Key: "2026-11-28T16:00:00+07:00", Count: 1}) || st.Total != 5 {
		t.Errorf("by hour: %d buckets, first %+v", len(st.Items), st.Items[:2])
	}

	// Response times: ack 30, 50, 90, 40 s; dispatch 100, 200, 110 s;
	// resolve 30 min, 2 h.
	w := get(t, h, "/api/v1/stats/response-times?by=kind")
	var rep ResponseReport
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &rep) != nil {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	all := rep.All
	if all.Count != 5 || all.Acknowledge.Reached != 4 || *all.Acknowledge.P50 != 45 || *all.Acknowledge.WithinTarget != 0.75 ||
		all.Dispatch.Reached != 3 || *all.Dispatch.P50 != 110 || *all.Dispatch.WithinTarget != 2.0/3 ||
		all.Resolve.Reached != 2 || *all.Resolve.WithinTarget != 0.5 || *all.Resolve.P90 != 1800+0.9*5400 {
		t.Errorf("all: %s", w.Body.String())
	}
	if rep.TargetsS["acknowledge"] != 60 || rep.TargetsS["dispatch"] != 120 || rep.TargetsS["resolve"] != 3600 {
		t.Errorf("targets %v", rep.TargetsS)
	}
	for _, g := range rep.Items {
		if g.Key == "fire" && (g.Count != 2 || g.Acknowledge.Reached != 1 || g.Resolve.P50 != nil || g.Resolve.WithinTarget != nil) {
			t.Errorf("fire: %+v", g)
		}
	}
	if len(rep.Items) != 3 {
		t.Errorf("%d kinds", len(rep.Items))
	}
}

// Routes: /incidents.csv and friends are not incident ids, /incidents/{id}.cap
// is the CAP of {id}, and the rest of /incidents/{id}/... still works.
func TestHistoryRoutesAndCAP(t *testing.T) {
	v := newHistEnv(t)
	v.fixture(t)
	h := v.as(t, analyst)
	for path, ctype := range map[string]string{
		"/api/v1/incidents":            "application/json; charset=utf-8",
		"/api/v1/incidents.csv":        "text/csv; charset=utf-8",
		"/api/v1/incidents.geojson":    "application/geo+json",
		"/api/v1/incidents.atom":       "application/atom+xml; charset=utf-8",
		"/api/v1/incidents/A":          "application/json; charset=utf-8",
		"/api/v1/incidents/A.cap":      "application/cap+xml; charset=utf-8",
		"/api/v1/incidents/A/events":   "",
		"/api/v1/incidents/A/timeline": "application/json; charset=utf-8",
	} {
		w := get(t, h, path)
		if ctype == "" {
			if w.Code != 404 && w.Code != 405 {
				t.Errorf("%s: %d", path, w.Code)
			}
			continue
		}
		if w.Code != 200 || w.Header().Get("Content-Type") != ctype {
			t.Errorf("%s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, p := range []string{"/api/v1/incidents/nope.cap", "/api/v1/incidents/A.cap.cap", "/api/v1/incidents/.cap"} {
		if w := get(t, h, p); w.Code != 404 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	if w := get(t, v.as(t, api.Caller{Name: "op", Role: auth.RoleOperator}), "/api/v1/incidents/A.cap"); w.Code != 403 {
		t.Errorf("operator CAP: %d", w.Code)
	}

	// The feed lists the unresolved incidents; each entry's CAP message
	// validates against the OASIS schema.
	w := get(t, h, "/api/v1/incidents.atom")
	var f atomFeed
	if err := xml.Unmarshal(w.Body.Bytes(), &f); err != nil || len(f.Entries) != 3 {
		t.Fatalf("feed: %v %d entries\n%s", err, len(f.Entries), w.Body.String())
	}
	for _, e := range f.Entries {
		u, err := url.Parse(e.Link.Href)
		if err != nil || u.Host != "example.com" {
			t.Fatalf("entry link %q", e.Link.Href)
		}
		c := get(t, h, u.Path)
		if c.Code != 200 {
			t.Fatalf("%s: %d", u.Path, c.Code)
		}
		validateCAP(t, c.Body.Bytes())
		var a capAlert
		if err := xml.Unmarshal(c.Body.Bytes(), &a); err != nil || len(a.Info) != 2 || a.Info[0].Language != "vi-VN" || a.Info[1].Language != "en-US" {
			t.Errorf("%s: %v %+v", u.Path, err, a)
		}
	}
	// A resolved incident's CAP is its all-clear.
	c := get(t, h, "/api/v1/incidents/D.cap")
	validateCAP(t, c.Body.Bytes())
	if !strings.Contains(c.Body.String(), "<urgency>Past</urgency>") || !strings.Contains(c.Body.String(), "Phường Ngọc Hà") {
		t.Errorf("resolved CAP:\n%s", c.Body.String())
	}
}
