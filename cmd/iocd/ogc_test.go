package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ogcEnv is iocd with Hanoi's wards and a known set of incidents and
// devices in two wards.
type ogcEnv struct {
	*routeEnv
	home, away string // ward codes
	homePt     [2]float64
	t0         time.Time // opened_at of the newest named incident
	tok        string    // city-wide analyst
}

// ogcBulk is how many extra incidents (in the away ward) make paging past
// the maximum page size possible.
const ogcBulk = 1005

func newOGCEnv(t *testing.T) *ogcEnv {
	t.Helper()
	e := &ogcEnv{routeEnv: newWardEnv(t)}
	wards := e.app.geo.Wards()
	e.homePt = [2]float64{105.8523, 21.0287} // Hoan Kiem lake
	awayPt := [2]float64{105.8190, 21.0580}  // West Lake
	var ok1, ok2 bool
	e.home, ok1 = wards.Lookup(e.homePt[0], e.homePt[1])
	e.away, ok2 = wards.Lookup(awayPt[0], awayPt[1])
	if !ok1 || !ok2 || e.home == e.away {
		t.Fatalf("test points: %q %q", e.home, e.away)
	}
	e.t0 = time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	pool := e.app.pool
	// 20 named incidents H00..H19 (home ward, status new for even i,
	// acknowledged for odd), one per minute back from t0; A00..A04 in the
	// away ward; then the bulk, a day earlier.
	_, err := pool.Exec(e.ctx, `
		INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, last_evidence_at, escalation_level)
		SELECT 'H' || lpad(g::text, 2, '0'), CASE WHEN g % 3 = 0 THEN 'fire' ELSE 'accident' END,
			CASE WHEN g < 5 THEN 'severe' ELSE 'minor' END, CASE WHEN g % 2 = 0 THEN 'new' ELSE 'acknowledged' END,
			'Sự cố ' || g, ST_SetSRID(ST_MakePoint($1 + g * 0.0001, $2), 4326), $3, 'rule:test', false,
			$4::timestamptz - g * interval '1 minute', $4, $4, g % 4
		FROM generate_series(0, 19) g
		UNION ALL
		SELECT 'A' || lpad(g::text, 2, '0'), 'flooding', 'moderate', 'new', 'Ngập ' || g,
			ST_SetSRID(ST_MakePoint($5, $6), 4326), $7, 'rule:test', false, $4::timestamptz - g * interval '1 minute' - interval '30 seconds', $4, $4, 0
		FROM generate_series(0, 4) g
		UNION ALL
		SELECT 'B' || lpad(g::text, 5, '0'), 'traffic_congestion', 'minor', 'resolved', 'Ùn tắc ' || g,
			ST_SetSRID(ST_MakePoint($5, $6), 4326), $7, 'rule:test', true, $4::timestamptz - interval '1 day' - g * interval '1 second', $4, $4, 0
		FROM generate_series(1, $8::int) g`,
		e.homePt[0], e.homePt[1], e.home, e.t0, awayPt[0], awayPt[1], e.away, ogcBulk)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		id, ward string
		pt       [2]float64
		online   bool
	}{{"cam-home", e.home, e.homePt, true}, {"cam-away", e.away, awayPt, false}, {"gw-nowhere", "", [2]float64{}, true}} {
		var geom any
		if d.ward != "" {
			geom = fmt.Sprintf("SRID=4326;POINT(%f %f)", d.pt[0], d.pt[1])
		}
		var ward any
		if d.ward != "" {
			ward = d.ward
		}
		if _, err := pool.Exec(e.ctx, `INSERT INTO devices (id, kind, geom, ward_code, first_seen, last_seen, online)
			VALUES ($1, 'camera', $2::geometry, $3, $4, $4, $5)`, d.id, geom, ward, e.t0, d.online); err != nil {
			t.Fatal(err)
		}
	}
	e.tok = e.session(t, "ogc-analyst", "analyst")
	return e
}

// TestOGC runs the OGC API's tests on one database (its fixture of 1030
// incidents and 126 wards is read-only), to keep the suite's time small.
func TestOGC(t *testing.T) {
	e := newOGCEnv(t)
	t.Run("Metadata", func(t *testing.T) { ogcMetadata(t, e) })
	t.Run("ItemsPaging", func(t *testing.T) { ogcItemsPaging(t, e) })
	t.Run("ItemsParameters", func(t *testing.T) { ogcItemsParameters(t, e) })
	t.Run("CRSAxisOrder", func(t *testing.T) { ogcCRSAxisOrder(t, e) })
	t.Run("WardScope", func(t *testing.T) { ogcWardScope(t, e) })
	t.Run("WithGDAL", func(t *testing.T) { ogcWithGDAL(t, e) })
}

type ogcPage struct {
	Type     string `json:"type"`
	Features []struct {
		ID       string `json:"id"`
		Geometry *struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
		Properties map[string]any `json:"properties"`
	} `json:"features"`
	NumberMatched  *int `json:"numberMatched"`
	NumberReturned int  `json:"numberReturned"`
	Links          []struct {
		Href, Rel, Type string
	} `json:"links"`
}

func (p ogcPage) link(rel string) string {
	for _, l := range p.Links {
		if l.Rel == rel {
			return l.Href
		}
	}
	return ""
}

func (p ogcPage) ids() []string {
	var out []string
	for _, f := range p.Features {
		out = append(out, f.ID)
	}
	return out
}

// get calls path (absolute links are made relative) and decodes a page.
func (e *ogcEnv) get(t *testing.T, path, token string) (*httptest.ResponseRecorder, ogcPage) {
	t.Helper()
	if u, err := url.Parse(path); err == nil && u.Host != "" {
		path = u.RequestURI()
	}
	w := e.send("GET", path, token, "")
	var p ogcPage
	if w.Code == 200 && strings.Contains(path, "/items") {
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("GET %s: %v: %.300s", path, err, w.Body)
		}
	}
	return w, p
}

func (e *ogcEnv) page(t *testing.T, path string) ogcPage {
	t.Helper()
	w, p := e.get(t, path, e.tok)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %.300s", path, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/geo+json" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if p.NumberReturned != len(p.Features) {
		t.Fatalf("GET %s: numberReturned %d for %d features", path, p.NumberReturned, len(p.Features))
	}
	return p
}

func ogcMetadata(t *testing.T, e *ogcEnv) {
	getJSON := func(path, wantType string) map[string]any {
		t.Helper()
		w := e.send("GET", path, e.tok, "")
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), wantType) {
			t.Fatalf("GET %s: %d %s %.200s", path, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return v
	}
	rels := func(v map[string]any) map[string]string {
		out := map[string]string{}
		for _, l := range v["links"].([]any) {
			m := l.(map[string]any)
			out[m["rel"].(string)] = m["href"].(string)
		}
		return out
	}
	for _, path := range []string{"/ogc", "/ogc/", "/ogc?f=json"} {
		l := rels(getJSON(path, "application/json"))
		for rel, want := range map[string]string{"self": "/ogc", "service-desc": "/ogc/api", "conformance": "/ogc/conformance", "data": "/ogc/collections"} {
			if !strings.HasPrefix(l[rel], "http://") || !strings.HasSuffix(l[rel], want) {
				t.Errorf("%s: link %s = %q, want an absolute URL ending %s", path, rel, l[rel], want)
			}
		}
	}
	conf := getJSON("/ogc/conformance", "application/json")["conformsTo"].([]any)
	for _, c := range []string{"ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson", "ogcapi-features-1/1.0/conf/oas30",
		"ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter", "ogcapi-features-3/1.0/conf/features-filter",
		"ogcapi-features-3/1.0/conf/queryables", "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/basic-cql2"} {
		if !slices.Contains(conf, any("http://www.opengis.net/spec/"+c)) {
			t.Errorf("conformance lacks %s", c)
		}
	}
	oas := getJSON("/ogc/api", "application/vnd.oai.openapi+json")
	limit := oas["components"].(map[string]any)["parameters"].(map[string]any)["limit"].(map[string]any)["schema"].(map[string]any)
	if limit["maximum"] != float64(1000) || limit["default"] != float64(100) {
		t.Errorf("OpenAPI limit: %v", limit)
	}
	for _, c := range []string{"incidents", "devices", "wards"} {
		p := oas["paths"].(map[string]any)["/collections/"+c+"/items"].(map[string]any)["get"].(map[string]any)
		if !strings.Contains(fmt.Sprint(p["parameters"]), "#/components/parameters/limit") {
			t.Errorf("OpenAPI: %s items has no limit parameter", c)
		}
	}
	cols := getJSON("/ogc/collections", "application/json")["collections"].([]any)
	var ids []string
	for _, c := range cols {
		m := c.(map[string]any)
		ids = append(ids, m["id"].(string))
		crs := m["crs"].([]any)
		if len(crs) != 3 || m["storageCrs"] != "http://www.opengis.net/def/crs/OGC/1.3/CRS84" ||
			!slices.Contains(crs, any("http://www.opengis.net/def/crs/EPSG/0/3405")) {
			t.Errorf("collection %s crs: %v %v", m["id"], crs, m["storageCrs"])
		}
		if rels(m)["items"] == "" || rels(m)["http://www.opengis.net/def/rel/ogc/1.0/queryables"] == "" {
			t.Errorf("collection %s links: %v", m["id"], rels(m))
		}
	}
	if fmt.Sprint(ids) != "[incidents devices wards]" {
		t.Errorf("collections %v", ids)
	}
	q := getJSON("/ogc/collections/incidents/queryables", "application/schema+json")
	props := q["properties"].(map[string]any)
	if props["status"].(map[string]any)["enum"] == nil || props["opened_at"].(map[string]any)["format"] != "date-time" || props["geometry"] == nil {
		t.Errorf("incident queryables: %v", props)
	}
	getJSON("/ogc/collections/wards", "application/json")
	for path, want := range map[string]int{
		"/ogc/collections/nope":             404,
		"/ogc/collections/nope/items":       404,
		"/ogc/collections/incidents/items/": 404,
		"/ogc/nothing-here":                 404,
		"/ogc/collections?f=html":           400,
		"/ogc/conformance?x=1":              400,
	} {
		if w := e.send("GET", path, e.tok, ""); w.Code != want || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("GET %s: %d %.200s, want %d in the error shape", path, w.Code, w.Body, want)
		}
	}
	if w := e.send("GET", "/ogc/collections", "", ""); w.Code != 401 {
		t.Errorf("without a token: %d", w.Code)
	}
}

func ogcItemsPaging(t *testing.T, e *ogcEnv) {
	// The named 25, ten a page, newest first; next links chain them and
	// the Link header says the same.
	var seen []string
	path := "/ogc/collections/incidents/items?limit=10&datetime=2026-07-01T07:00:00Z/..&f=json"
	var pages []ogcPage
	for path != "" {
		w, p := e.get(t, path, e.tok)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %.300s", path, w.Code, w.Body)
		}
		if next := p.link("next"); next != "" && !strings.Contains(strings.Join(w.Header().Values("Link"), ","), `<`+next+`>; rel="next"`) {
			t.Errorf("Link header %v lacks next %s", w.Header().Values("Link"), next)
		}
		if p.NumberMatched != nil {
			t.Errorf("incidents give numberMatched %d (documented as omitted)", *p.NumberMatched)
		}
		seen = append(seen, p.ids()...)
		pages = append(pages, p)
		path = p.link("next")
	}
	if len(pages) != 3 || len(seen) != 25 || seen[0] != "H00" || seen[1] != "A00" {
		t.Fatalf("%d pages, %d features: %v", len(pages), len(seen), seen)
	}
	if len(slices.Compact(slices.Clone(seen))) != 25 {
		t.Fatalf("a feature came twice: %v", seen)
	}
	// prev from page 3 is page 2, from page 2 page 1; page 1 has none.
	if pages[0].link("prev") != "" {
		t.Errorf("first page has a prev link")
	}
	if back := e.page(t, pages[2].link("prev")); fmt.Sprint(back.ids()) != fmt.Sprint(pages[1].ids()) {
		t.Errorf("prev of page 3: %v, want %v", back.ids(), pages[1].ids())
	}
	if back := e.page(t, pages[1].link("prev")); fmt.Sprint(back.ids()) != fmt.Sprint(pages[0].ids()) {
		t.Errorf("prev of page 2: %v, want %v", back.ids(), pages[0].ids())
	}

	// Above the maximum: served at 1000 with a next link (not a 400).
	p := e.page(t, "/ogc/collections/incidents/items?limit=5000")
	if len(p.Features) != 1000 || p.link("next") == "" || !strings.Contains(p.link("self"), "limit=1000") {
		t.Fatalf("limit=5000: %d features, next %q, self %q", len(p.Features), p.link("next"), p.link("self"))
	}
	rest := e.page(t, p.link("next"))
	if len(rest.Features) != 25+ogcBulk-1000 || rest.link("next") != "" {
		t.Fatalf("after the first 1000: %d, next %q", len(rest.Features), rest.link("next"))
	}
	// Default page size.
	if p := e.page(t, "/ogc/collections/incidents/items"); len(p.Features) != 100 {
		t.Errorf("default page: %d", len(p.Features))
	}
	// Wards: numberMatched exact, paged by code.
	w1 := e.page(t, "/ogc/collections/wards/items?limit=100")
	w2 := e.page(t, w1.link("next"))
	if w1.NumberMatched == nil || *w1.NumberMatched != 126 || len(w1.Features)+len(w2.Features) != 126 || w2.link("next") != "" {
		t.Errorf("wards: matched %v, %d + %d", w1.NumberMatched, len(w1.Features), len(w2.Features))
	}
}

func ogcItemsParameters(t *testing.T, e *ogcEnv) {
	const items = "/ogc/collections/incidents/items?limit=1000&"
	recent := "datetime=" + url.QueryEscape("2026-07-01T07:00:00Z/..") + "&"
	check := func(query string, want func(id string, props map[string]any) bool, wantN int) {
		t.Helper()
		p := e.page(t, items+query)
		if len(p.Features) != wantN {
			t.Errorf("%s: %d features, want %d: %v", query, len(p.Features), wantN, p.ids())
		}
		for _, f := range p.Features {
			if !want(f.ID, f.Properties) {
				t.Errorf("%s: %s does not match: %v", query, f.ID, f.Properties)
			}
		}
	}
	q := url.QueryEscape
	is := func(k, v string) func(string, map[string]any) bool {
		return func(_ string, p map[string]any) bool { return p[k] == v }
	}
	check(recent+"filter="+q("status = 'new'"), is("status", "new"), 10+5)
	check(recent+"filter="+q("status='new' AND ward = '"+e.home+"'")+"&filter-lang=cql2-text", is("ward", e.home), 10)
	check(recent+"filter="+q("kind = 'fire' OR severity = 'severe'"), func(_ string, p map[string]any) bool {
		return p["kind"] == "fire" || p["severity"] == "severe"
	}, 10) // fire: 0,3,6,9,12,15,18; severe: 0..4
	check(recent+"filter="+q("NOT (status = 'new') AND title LIKE 'Sự cố 1%'"), is("status", "acknowledged"), 6) // 1,11,13,15,17,19
	check(recent+"filter="+q("escalation_level >= 3"), func(_ string, p map[string]any) bool { return p["escalation_level"].(float64) >= 3 }, 5)
	check(recent+"filter="+q("escalation_level IN (1, 2) AND resolved_at IS NULL"), func(_ string, p map[string]any) bool {
		l := p["escalation_level"].(float64)
		return l == 1 || l == 2
	}, 10)
	check("filter="+q("opened_at < TIMESTAMP('2026-07-01T07:00:00Z')"), is("status", "resolved"), 1000)
	check("status=acknowledged", is("status", "acknowledged"), 10) // a queryable as a parameter
	// datetime: an instant, a closed interval (both ends in), open ends.
	check("datetime=2026-07-01T08:00:00Z", func(id string, _ map[string]any) bool { return id == "H00" }, 1)
	check("datetime="+q("2026-07-01T07:58:00Z/2026-07-01T08:00:00Z"), func(id string, _ map[string]any) bool {
		return slices.Contains([]string{"H00", "H01", "H02", "A00", "A01"}, id)
	}, 5)
	check("datetime="+q("../2026-06-30T08:00:00Z"), is("status", "resolved"), 1000)
	check("datetime="+q("2026-06-30"), is("status", "resolved"), 1000)
	// bbox around the home points only.
	box := fmt.Sprintf("%f,%f,%f,%f", e.homePt[0]-0.0001, e.homePt[1]-0.0001, e.homePt[0]+0.003, e.homePt[1]+0.0001)
	check("bbox="+box, is("ward", e.home), 20)

	// Malformed parameters: 400 with the contract's error body naming them.
	for query, wantIn := range map[string]string{
		"limit=0": "limit", "limit=-5": "limit", "limit=ten": "limit", "limit=1.5": "limit",
		"bbox=1,2,3": "bbox", "bbox=a,b,c,d": "bbox", "bbox=106,21,105,20": "bbox", "bbox=105,20,106,91": "bbox",
		"bbox-crs=EPSG:4326": "bbox-crs", "bbox=1,2,3,4&bbox-crs=EPSG:9999": "bbox-crs",
		"crs=EPSG:32648": "crs", "crs=" + q("http://www.opengis.net/def/crs/EPSG/0/9999"): "crs",
		"datetime=yesterday": "datetime", "datetime=" + q("2026-07-02T00:00:00Z/2026-07-01T00:00:00Z"): "datetime",
		"datetime=" + q("a/b/c"):   "datetime",
		"filter=" + q("status = "): "filter", "filter=" + q("secret = 1"): "filter", "filter=" + q("status = 5"): "filter",
		"filter=" + q(strings.Repeat("(", 40)+"status='new'"+strings.Repeat(")", 40)): "filter",
		"filter=x&filter-lang=cql2-json":                                              "filter-lang", "filter-crs=EPSG:3405&filter=status='new'": "filter-crs",
		"cursor=garbage": "cursor", "sortby=opened_at": "sortby", "f=html": "f", "limit=1&limit=2": "limit",
		"escalation_level=high": "escalation_level", "auto_resolve=yes": "auto_resolve",
	} {
		w := e.send("GET", items+query, e.tok, "")
		var b struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != 400 || b.Error.Code == "" || !strings.Contains(b.Error.Message, wantIn) {
			t.Errorf("%s: %d %.200s, want 400 naming %s", query, w.Code, w.Body, wantIn)
		}
	}
	// Wards have no time.
	if w := e.send("GET", "/ogc/collections/wards/items?datetime=2026-07-01", e.tok, ""); w.Code != 400 {
		t.Errorf("datetime on wards: %d", w.Code)
	}
	// One item: found, with links; unknown → 404.
	w := e.send("GET", "/ogc/collections/incidents/items/H03", e.tok, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"id":"H03"`) || !strings.Contains(w.Body.String(), `"rel":"collection"`) {
		t.Errorf("one incident: %d %.300s", w.Code, w.Body)
	}
	for _, path := range []string{"/ogc/collections/incidents/items/NOPE", "/ogc/collections/devices/items/nope", "/ogc/collections/wards/items/99999"} {
		if w := e.send("GET", path, e.tok, ""); w.Code != 404 {
			t.Errorf("%s: %d", path, w.Code)
		}
	}
	if w := e.send("GET", "/ogc/collections/incidents/items/H03?limit=5", e.tok, ""); w.Code != 400 {
		t.Errorf("one item with limit: %d", w.Code)
	}
	// Devices: filter on a boolean, no position is a null geometry.
	p := e.page(t, "/ogc/collections/devices/items?filter="+q("online = TRUE"))
	if fmt.Sprint(p.ids()) != "[cam-home gw-nowhere]" || p.Features[1].Geometry != nil {
		t.Errorf("online devices: %v", p.ids())
	}
	p = e.page(t, "/ogc/collections/wards/items?filter="+q("code = '"+e.home+"' OR code = '"+e.away+"'"))
	if len(p.Features) != 2 || *p.NumberMatched != 2 || p.Features[0].Geometry.Type != "MultiPolygon" {
		t.Errorf("two wards by filter: %v %v", p.ids(), p.NumberMatched)
	}
}

// coords reads a Point's coordinates.
func coords(t *testing.T, raw json.RawMessage) [2]float64 {
	t.Helper()
	var c [2]float64
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("coordinates %s: %v", raw, err)
	}
	return c
}

func ogcCRSAxisOrder(t *testing.T, e *ogcEnv) {
	const one = "/ogc/collections/incidents/items?datetime=2026-07-01T08:00:00Z" // H00, at homePt
	var east, north float64
	if err := e.app.pool.QueryRow(e.ctx, `SELECT ST_X(p), ST_Y(p) FROM ST_Transform(ST_SetSRID(ST_MakePoint($1, $2), 4326), 3405) p`,
		e.homePt[0], e.homePt[1]).Scan(&east, &north); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		crs  string
		want [2]float64
	}{
		{"", e.homePt},
		{"http://www.opengis.net/def/crs/OGC/1.3/CRS84", e.homePt},
		{"http://www.opengis.net/def/crs/EPSG/0/4326", [2]float64{e.homePt[1], e.homePt[0]}}, // latitude first
		{"http://www.opengis.net/def/crs/EPSG/0/3405", [2]float64{east, north}},
	} {
		path := one
		if c.crs != "" {
			path += "&crs=" + url.QueryEscape(c.crs)
		}
		w, p := e.get(t, path, e.tok)
		if w.Code != 200 || len(p.Features) != 1 {
			t.Fatalf("%s: %d %.200s", path, w.Code, w.Body)
		}
		got := coords(t, p.Features[0].Geometry.Coordinates)
		if math.Abs(got[0]-c.want[0]) > 1e-6*math.Max(1, math.Abs(c.want[0])) || math.Abs(got[1]-c.want[1]) > 1e-6*math.Max(1, math.Abs(c.want[1])) {
			t.Errorf("crs %q: %v, want %v", c.crs, got, c.want)
		}
		wantCRS := c.crs
		if wantCRS == "" {
			wantCRS = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
		}
		if h := w.Header().Get("Content-Crs"); h != "<"+wantCRS+">" {
			t.Errorf("crs %q: Content-Crs %q", c.crs, h)
		}
		// The single item agrees.
		path = "/ogc/collections/incidents/items/H00"
		if c.crs != "" {
			path += "?crs=" + url.QueryEscape(c.crs)
		}
		w1 := e.send("GET", path, e.tok, "")
		var f struct {
			Geometry struct{ Coordinates json.RawMessage } `json:"geometry"`
		}
		json.Unmarshal(w1.Body.Bytes(), &f)
		if got1 := coords(t, f.Geometry.Coordinates); got1 != got {
			t.Errorf("one item in %q: %v, page says %v", c.crs, got1, got)
		}
	}
	// The 3405 output is metres in UTM 48N around Hanoi.
	if east < 500000 || east > 700000 || north < 2250000 || north > 2400000 {
		t.Errorf("EPSG:3405 of Hoan Kiem: %f, %f", east, north)
	}
	// bbox-crs: the same box in each CRS's own axis order selects the same.
	lon0, lat0, lon1, lat1 := e.homePt[0]-0.0001, e.homePt[1]-0.0001, e.homePt[0]+0.003, e.homePt[1]+0.0001
	var e0, n0, e1, n1 float64
	if err := e.app.pool.QueryRow(e.ctx, `SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
		FROM ST_Transform(ST_MakeEnvelope($1, $2, $3, $4, 4326), 3405) b`, lon0, lat0, lon1, lat1).Scan(&e0, &n0, &e1, &n1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ bbox, crs string }{
		{fmt.Sprintf("%f,%f,%f,%f", lon0, lat0, lon1, lat1), ""},
		{fmt.Sprintf("%f,%f,%f,%f", lat0, lon0, lat1, lon1), "http://www.opengis.net/def/crs/EPSG/0/4326"},
		{fmt.Sprintf("%f,%f,%f,%f", e0, n0, e1, n1), "http://www.opengis.net/def/crs/EPSG/0/3405"},
	} {
		path := "/ogc/collections/incidents/items?bbox=" + c.bbox
		if c.crs != "" {
			path += "&bbox-crs=" + url.QueryEscape(c.crs)
		}
		p := e.page(t, path)
		if len(p.Features) != 20 {
			t.Errorf("bbox %s in %q: %d features, want the 20 home ones", c.bbox, c.crs, len(p.Features))
		}
	}
	// Lon-first numbers given as EPSG:4326 are refused, not silently swapped.
	if w := e.send("GET", "/ogc/collections/incidents/items?bbox="+fmt.Sprintf("%f,%f,%f,%f", lon0, lat0, lon1, lat1)+
		"&bbox-crs="+url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/4326"), e.tok, ""); w.Code != 400 {
		t.Errorf("lon-first bbox as EPSG:4326: %d", w.Code)
	}
	// Wards in EPSG:3405 are polygons in metres.
	p := e.page(t, "/ogc/collections/wards/items?limit=1&crs="+url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/3405"))
	if !strings.Contains(string(p.Features[0].Geometry.Coordinates), "[[[") || strings.Contains(string(p.Features[0].Geometry.Coordinates[:40]), "105.") {
		t.Errorf("ward in EPSG:3405: %.80s", p.Features[0].Geometry.Coordinates)
	}
}

func ogcWardScope(t *testing.T, e *ogcEnv) {
	scoped := e.session(t, "ogc-scoped", "operator", e.home)
	get := func(path string) (*httptest.ResponseRecorder, ogcPage) { return e.get(t, path, scoped) }
	w, p := get("/ogc/collections/incidents/items?limit=1000")
	if w.Code != 200 || len(p.Features) != 20 {
		t.Fatalf("scoped incidents: %d %d", w.Code, len(p.Features))
	}
	for _, f := range p.Features {
		if f.Properties["ward"] != e.home {
			t.Errorf("scoped caller sees %s in %v", f.ID, f.Properties["ward"])
		}
	}
	// A filter cannot widen the scope.
	_, p = get("/ogc/collections/incidents/items?filter=" + url.QueryEscape("ward = '"+e.away+"' OR status = 'resolved'"))
	if len(p.Features) != 0 {
		t.Errorf("filter widened the scope: %v", p.ids())
	}
	if w, _ := get("/ogc/collections/incidents/items/A00"); w.Code != 404 {
		t.Errorf("other ward's incident: %d", w.Code)
	}
	_, p = get("/ogc/collections/devices/items")
	if fmt.Sprint(p.ids()) != "[cam-home]" {
		t.Errorf("scoped devices: %v", p.ids())
	}
	if w, _ := get("/ogc/collections/devices/items/cam-away"); w.Code != 404 {
		t.Errorf("other ward's device: %d", w.Code)
	}
	_, p = get("/ogc/collections/wards/items")
	if fmt.Sprint(p.ids()) != "["+e.home+"]" || *p.NumberMatched != 1 {
		t.Errorf("scoped wards: %v %v", p.ids(), p.NumberMatched)
	}
	if w, _ := get("/ogc/collections/wards/items/" + e.away); w.Code != 404 {
		t.Errorf("other ward: %d", w.Code)
	}
}

// GDAL reads the endpoint as QGIS would: several pages, with the
// attribute filter sent to the server as CQL2, and a bearer token.
func ogcWithGDAL(t *testing.T, e *ogcEnv) {
	ogrinfo, err := exec.LookPath("ogrinfo")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("ogrinfo (Debian gdal-bin) is not installed and CI is unset; deploy/setup.sh installs it")
		}
		t.Fatal("ogrinfo is missing in CI: deploy/setup.sh installs gdal-bin")
	}
	var itemPages, filtered atomic.Int64
	var lastFilter atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/items") {
			itemPages.Add(1)
			if f := r.URL.Query().Get("filter"); f != "" {
				filtered.Add(1)
				lastFilter.Store(f)
			}
		}
		e.h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	headers := filepath.Join(t.TempDir(), "headers")
	os.WriteFile(headers, []byte("Authorization: Bearer "+e.tok+"\n"), 0o600)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(ogrinfo, args...)
		cmd.Env = append(os.Environ(), "GDAL_HTTP_HEADER_FILE="+headers, "GDAL_HTTP_TIMEOUT=30")
		if os.Getenv("IOC_TEST_LOG") != "" {
			cmd.Env = append(cmd.Env, "CPL_DEBUG=ON", "CPL_CURL_VERBOSE=YES")
		}
		out, err := cmd.CombinedOutput()
		if os.Getenv("IOC_TEST_LOG") != "" {
			t.Logf("ogrinfo %v:\n%s", args, out)
		}
		if err != nil {
			t.Fatalf("ogrinfo %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// Only the named recent incidents with status new: 15, in pages of 4.
	out := run("-ro", "-so", "-oo", "PAGE_SIZE=4", "-where", "status = 'new' AND opened_at >= '2026/07/01 07:00:00'",
		"OAPIF:"+srv.URL+"/ogc", "incidents")
	m := regexp.MustCompile(`Feature Count: (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] != "15" {
		t.Fatalf("ogrinfo feature count: %v\n%s", m, out)
	}
	if filtered.Load() < 4 {
		t.Fatalf("%d of %d items requests carried the filter, want the 4+ pages of 15 features", filtered.Load(), itemPages.Load())
	}
	t.Logf("GDAL: %d items pages, %d with filter %q", itemPages.Load(), filtered.Load(), lastFilter.Load())
	for _, want := range []string{"status: String", "opened_at: DateTime", "Geometry: Point"} {
		if !strings.Contains(out, want) {
			t.Errorf("ogrinfo schema lacks %q:\n%s", want, out)
		}
	}
	// All features of one ward, with attributes, through the same paging.
	itemPages.Store(0)
	out = run("-ro", "-al", "-oo", "PAGE_SIZE=50", "-where", "code = '"+e.home+"'", "OAPIF:"+srv.URL+"/ogc/collections/wards")
	if !strings.Contains(out, "Feature Count: 1") && !strings.Contains(out, "code (String) = "+e.home) {
		t.Errorf("ogrinfo wards:\n%.2000s", out)
	}
	_ = strconv.Itoa
}
