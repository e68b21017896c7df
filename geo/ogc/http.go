package ogc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"ioc/alerts"
	"ioc/api"
	"ioc/auth"
	"ioc/geo"
	"ioc/ingest"
)

// Page sizes: the default, and the maximum declared in the OpenAPI
// document. A larger limit is served at the maximum with a next link.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxBackPages is how many earlier pages a page token remembers for its
// prev link (the sources page forward only, by keyset).
const maxBackPages = 8

// Config connects the API to the query functions of the packages that own
// the data; it adds no query of its own except ST_Transform.
type Config struct {
	// Incidents is alerts.Store.List.
	Incidents func(ctx context.Context, f alerts.IncidentFilter) ([]*alerts.Incident, string, error)
	// Devices is ingest.Reader.Devices.
	Devices func(ctx context.Context, f ingest.DeviceFilter) ([]ingest.Device, bool, error)
	// Wards is geo.ListAreas over a pool.
	Wards func(ctx context.Context, f geo.AreaFilter) (geo.AreaPage, error)
	// Pool runs ST_Transform for projected CRSs (EPSG:3405).
	Pool *pgxpool.Pool
	// Extent is the data's lon/lat bounds, for collection metadata.
	Extent [4]float64
	// Registerer takes the metrics (nil: prometheus.DefaultRegisterer).
	Registerer prometheus.Registerer
}

// Service serves OGC API – Features at /ogc. Safe for concurrent use.
type Service struct {
	cfg   Config
	cols  []*collection
	byID  map[string]*collection
	rp    reprojector
	items *prometheus.CounterVec
	bad   *prometheus.CounterVec
}

// New builds the service and registers its metrics.
func New(cfg Config) (*Service, error) {
	if cfg.Incidents == nil || cfg.Devices == nil || cfg.Wards == nil || cfg.Pool == nil {
		return nil, errors.New("ogc: Incidents, Devices, Wards and Pool are required")
	}
	s := &Service{cfg: cfg, rp: reprojector{cfg.Pool}, byID: map[string]*collection{}}
	s.cols = s.collections()
	for _, c := range s.cols {
		s.byID[c.id] = c
	}
	s.items = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_ogc_items_requests_total",
		Help: "OGC API items pages served, by collection and whether a CQL2 filter was pushed to the database.",
	}, []string{"collection", "filtered"})
	s.bad = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_ogc_rejected_total",
		Help: "OGC API requests refused with 400, by parameter.",
	}, []string{"param"})
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	for _, c := range []prometheus.Collector{s.items, s.bad} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ogc: metrics: %w", err)
		}
	}
	return s, nil
}

// Register adds the routes (all ogc:read, ward scope applied):
//
//	GET /ogc                                          landing page
//	GET /ogc/api                                      OpenAPI 3.0
//	GET /ogc/conformance
//	GET /ogc/collections
//	GET /ogc/collections/{collectionId}
//	GET /ogc/collections/{collectionId}/queryables    JSON Schema
//	GET /ogc/collections/{collectionId}/items         ?bbox=&bbox-crs=&datetime=&limit=&filter=&filter-lang=&crs=&cursor=&<queryable>=
//	GET /ogc/collections/{collectionId}/items/{featureId}  ?crs=
func (s *Service) Register(srv *api.Server) {
	srv.Handle("GET", "/ogc", auth.ActOGCRead, s.landing)
	srv.Handle("GET", "/ogc/", auth.ActOGCRead, s.notFound)
	srv.Handle("GET", "/ogc/api", auth.ActOGCRead, s.openAPI)
	srv.Handle("GET", "/ogc/conformance", auth.ActOGCRead, s.conformance)
	srv.Handle("GET", "/ogc/collections", auth.ActOGCRead, s.listCollections)
	srv.Handle("GET", "/ogc/collections/{collectionId}", auth.ActOGCRead, s.getCollection)
	srv.Handle("GET", "/ogc/collections/{collectionId}/queryables", auth.ActOGCRead, s.queryablesDoc)
	srv.HandleHeavy("GET", "/ogc/collections/{collectionId}/items", auth.ActOGCRead, s.itemsPage)
	srv.Handle("GET", "/ogc/collections/{collectionId}/items/{featureId}", auth.ActOGCRead, s.oneItem)
}

// Media types.
const (
	mediaJSON    = "application/json"
	mediaGeoJSON = "application/geo+json"
	mediaOpenAPI = "application/vnd.oai.openapi+json;version=3.0"
	mediaSchema  = "application/schema+json"
)

type link struct {
	Href  string `json:"href"`
	Rel   string `json:"rel"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

// base is the absolute URL of /ogc as the client reached it; GDAL resolves
// a link that starts with / against the landing page, so links are
// absolute.
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host + "/ogc"
}

// metaQuery checks the query of a metadata route: only f (json).
func (s *Service) metaQuery(w http.ResponseWriter, r *http.Request) bool {
	q := api.NewQuery(r, "f")
	format(q)
	return !s.badParam(w, r, q.Err())
}

// format accepts f=json (GDAL and browsers' tools send it) and geojson.
func format(q *api.Query) {
	q.Enum("f", "json", "geojson", "application/json", "application/geo+json")
}

func (s *Service) badParam(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	name := "other"
	var pe *api.ParamError
	var p *api.Problem
	switch {
	case errors.As(err, &pe):
		name = pe.Name
	case errors.As(err, &p) && p.Code == errBadFilter.Code:
		name = "filter"
	}
	switch name {
	case "bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang", "limit", "cursor", "f":
	default:
		name = "other"
	}
	s.bad.WithLabelValues(name).Inc()
	api.Fail(w, r, err)
	return true
}

func writeJSON(w http.ResponseWriter, media string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		api.Error(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	w.Header().Set("Content-Type", media)
	w.Write(buf.Bytes())
}

func (s *Service) notFound(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ogc/" {
		s.landing(w, r)
		return
	}
	api.Error(w, http.StatusNotFound, "not_found", "no such OGC API resource: "+api.Clip(r.URL.Path)+" (start at /ogc)")
}

func (s *Service) landing(w http.ResponseWriter, r *http.Request) {
	if !s.metaQuery(w, r) {
		return
	}
	b := base(r)
	writeJSON(w, mediaJSON, map[string]any{
		"title":       "Hanoi city operations centre",
		"description": "Incidents, devices and wards of Hanoi's operations centre as OGC API – Features (Part 1 Core, Part 2 CRS, Part 3 filtering with CQL2 text). Map data " + geo.Attribution + ".",
		"attribution": geo.Attribution,
		"links": []link{
			{b, "self", mediaJSON, "This document"},
			{b + "/api", "service-desc", mediaOpenAPI, "The API definition (OpenAPI 3.0)"},
			{b + "/conformance", "conformance", mediaJSON, "Conformance classes"},
			{b + "/conformance", "http://www.opengis.net/def/rel/ogc/1.0/conformance", mediaJSON, "Conformance classes"},
			{b + "/collections", "data", mediaJSON, "Collections"},
			{b + "/collections", "http://www.opengis.net/def/rel/ogc/1.0/data", mediaJSON, "Collections"},
		},
	})
}

// conformanceClasses this API implements.
var conformanceClasses = []string{
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
	"http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
	"http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
	"http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
	"http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
}

func (s *Service) conformance(w http.ResponseWriter, r *http.Request) {
	if !s.metaQuery(w, r) {
		return
	}
	writeJSON(w, mediaJSON, map[string]any{"conformsTo": conformanceClasses})
}

func crsURIs() []string {
	out := make([]string, len(supportedCRS))
	for i, c := range supportedCRS {
		out[i] = c.uri
	}
	return out
}

func (s *Service) collectionDoc(b string, c *collection) map[string]any {
	cb := b + "/collections/" + c.id
	e := s.cfg.Extent
	temporal := map[string]any{"interval": [][]any{{nil, nil}}, "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
	extent := map[string]any{"spatial": map[string]any{"bbox": [][]float64{{e[0], e[1], e[2], e[3]}}, "crs": crs84.uri}}
	if c.temporal != "" {
		extent["temporal"] = temporal
	}
	return map[string]any{
		"id": c.id, "title": c.title, "description": c.description, "itemType": "feature",
		"crs": crsURIs(), "storageCrs": crs84.uri, "extent": extent,
		"links": []link{
			{cb, "self", mediaJSON, c.title},
			{cb + "/items", "items", mediaGeoJSON, c.title + " as GeoJSON"},
			{cb + "/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", mediaSchema, "What filter may name"},
		},
	}
}

func (s *Service) listCollections(w http.ResponseWriter, r *http.Request) {
	if !s.metaQuery(w, r) {
		return
	}
	b := base(r)
	docs := make([]map[string]any, 0, len(s.cols))
	for _, c := range s.cols {
		docs = append(docs, s.collectionDoc(b, c))
	}
	writeJSON(w, mediaJSON, map[string]any{
		"links":       []link{{b + "/collections", "self", mediaJSON, "Collections"}},
		"collections": docs,
		"crs":         crsURIs(),
	})
}

func (s *Service) collection(w http.ResponseWriter, r *http.Request) (*collection, bool) {
	c, ok := s.byID[r.PathValue("collectionId")]
	if !ok {
		api.Error(w, http.StatusNotFound, "not_found", "no collection "+strconv.Quote(api.Clip(r.PathValue("collectionId")))+" (incidents, devices, wards)")
	}
	return c, ok
}

func (s *Service) getCollection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.collection(w, r)
	if !ok || !s.metaQuery(w, r) {
		return
	}
	writeJSON(w, mediaJSON, s.collectionDoc(base(r), c))
}

func (s *Service) queryablesDoc(w http.ResponseWriter, r *http.Request) {
	c, ok := s.collection(w, r)
	if !ok || !s.metaQuery(w, r) {
		return
	}
	props := map[string]any{"geometry": map[string]any{"$ref": c.geomSchema}}
	for _, q := range c.queryables {
		p := map[string]any{"title": q.title}
		switch q.typ {
		case typeDateTime:
			p["type"], p["format"] = "string", "date-time"
		default:
			p["type"] = q.typ
		}
		if len(q.enum) > 0 {
			p["enum"] = q.enum
		}
		props[q.name] = p
	}
	writeJSON(w, mediaSchema, map[string]any{
		"$schema": "https://json-schema.org/draft/2019-09/schema",
		"$id":     base(r) + "/collections/" + c.id + "/queryables",
		"type":    "object", "title": c.title, "properties": props, "additionalProperties": false,
	})
}

// pageToken is the cursor parameter of items pages: the source's cursor
// and the cursors of up to maxBackPages pages before it, for prev.
type pageToken struct {
	C string   `json:"c,omitempty"`
	P []string `json:"p,omitempty"`
}

// itemParams are the items parameters besides the queryables.
var itemParams = []string{"limit", "bbox", "bbox-crs", "datetime", "filter", "filter-lang", "filter-crs", "crs", "cursor", "f"}

// parsed is an items request's parameters.
type parsed struct {
	req     itemsRequest
	out     crs
	tok     pageToken
	limit   int
	filterd bool
}

func (s *Service) parseItems(r *http.Request, c *collection, one bool) (parsed, error) {
	var p parsed
	if one {
		q := api.NewQuery(r, "crs", "f")
		format(q)
		p.out = crs84
		if v := q.String("crs", 200); v != "" {
			var ok bool
			if p.out, ok = parseCRS(v); !ok {
				return p, &api.ParamError{Name: "crs", Problem: "want one of " + strings.Join(crsURIs(), ", ")}
			}
		}
		return p, q.Err()
	}
	allowed := append([]string{}, itemParams...)
	for _, qb := range c.queryables {
		allowed = append(allowed, qb.name)
	}
	q := api.NewQuery(r, allowed...)
	format(q)
	// A limit above the maximum is served at the maximum (with a next
	// link), as Part 1's example and GDAL's paging expect.
	p.limit = q.Int("limit", DefaultLimit, 1, math.MaxInt32)
	p.limit = min(p.limit, MaxLimit)
	p.req.limit = p.limit
	bboxS, bboxCRS := q.String("bbox", 200), q.String("bbox-crs", 200)
	dt := q.String("datetime", 100)
	filter, lang, filterCRS := q.String("filter", maxFilterBytes), q.String("filter-lang", 20), q.String("filter-crs", 200)
	crsS := q.String("crs", 200)
	cursor := q.String("cursor", 3072)
	props := map[string]string{}
	for _, qb := range c.queryables {
		if v := q.String(qb.name, 200); v != "" {
			props[qb.name] = v
		}
	}
	if err := q.Err(); err != nil {
		return p, err
	}
	p.out = crs84
	if crsS != "" {
		var ok bool
		if p.out, ok = parseCRS(crsS); !ok {
			return p, &api.ParamError{Name: "crs", Problem: "want one of " + strings.Join(crsURIs(), ", ")}
		}
	}
	if bboxCRS != "" && bboxS == "" {
		return p, &api.ParamError{Name: "bbox-crs", Problem: "given without bbox"}
	}
	if bboxS != "" {
		bc := crs84
		if bboxCRS != "" {
			var ok bool
			if bc, ok = parseCRS(bboxCRS); !ok {
				return p, &api.ParamError{Name: "bbox-crs", Problem: "want one of " + strings.Join(crsURIs(), ", ")}
			}
		}
		var nums []float64
		for _, part := range strings.Split(bboxS, ",") {
			f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil {
				return p, &api.ParamError{Name: "bbox", Problem: fmt.Sprintf("%q is not a number", api.Clip(part))}
			}
			nums = append(nums, f)
		}
		b, err := bboxIn(bc, nums)
		if err != nil {
			return p, &api.ParamError{Name: "bbox", Problem: err.Error()}
		}
		if bc.geographic {
			p.req.bbox = b
		} else {
			p.req.where = append(p.req.where, bboxCondition(c.geomColumn, bc.srid, b))
		}
	}
	if dt != "" {
		if c.temporal == "" {
			return p, &api.ParamError{Name: "datetime", Problem: "the " + c.id + " collection has no time"}
		}
		from, to, err := parseDatetime(dt)
		if err != nil {
			return p, &api.ParamError{Name: "datetime", Problem: err.Error()}
		}
		p.req.from, p.req.to = from, to
	}
	if lang != "" && lang != "cql2-text" && lang != "cql-text" {
		return p, &api.ParamError{Name: "filter-lang", Problem: "only cql2-text is supported (cql-text is read as cql2-text)"}
	}
	if filterCRS != "" {
		if fc, ok := parseCRS(filterCRS); !ok || fc.uri != crs84.uri {
			return p, &api.ParamError{Name: "filter-crs", Problem: "only " + crs84.uri + " (filters have no spatial operators)"}
		}
	}
	if filter != "" {
		n, err := parseCQL2(filter)
		if err != nil {
			return p, err
		}
		cond, err := compile(n, c.queryables)
		if err != nil {
			return p, err
		}
		p.req.where = append(p.req.where, cond)
		p.filterd = true
	}
	// Queryables as parameters (Part 3 queryables-query-parameters):
	// equality, as a filter would say it.
	for _, qb := range c.queryables {
		v, ok := props[qb.name]
		if !ok {
			continue
		}
		var lit literal
		switch qb.typ {
		case typeString, typeDateTime:
			lit = literal{kind: litString, s: v}
		case typeInteger, typeNumber:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return p, &api.ParamError{Name: qb.name, Problem: "want a number"}
			}
			lit = literal{kind: litNumber, n: f}
		case typeBoolean:
			if v != "true" && v != "false" {
				return p, &api.ParamError{Name: qb.name, Problem: "want true or false"}
			}
			lit = literal{kind: litBool, b: v == "true"}
		}
		cond, err := compile(comparison{qb.name, "=", lit}, c.queryables)
		if err != nil {
			return p, &api.ParamError{Name: qb.name, Problem: strings.TrimPrefix(err.Error(), "filter: ")}
		}
		p.req.where = append(p.req.where, cond)
		p.filterd = true
	}
	if cursor != "" {
		if err := api.DecodeCursor(cursor, &p.tok); err != nil || len(p.tok.P) > maxBackPages {
			return p, &api.ParamError{Name: "cursor", Problem: "not a cursor from a previous page"}
		}
		p.req.cursor = p.tok.C
	}
	return p, nil
}

// parseDatetime reads an instant or an interval (start/end, either end
// open as .. or empty) into [from, to). An interval's end is inclusive
// (Part 1), so to is one microsecond (the stored precision) past it; a
// date alone is its whole UTC day.
func parseDatetime(s string) (time.Time, time.Time, error) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		from, to, err := instant(parts[0])
		return from, to, err
	case 2:
		var from, to time.Time
		if o := parts[0]; o != "" && o != ".." {
			f, _, err := instant(o)
			if err != nil {
				return from, to, err
			}
			from = f
		}
		if o := parts[1]; o != "" && o != ".." {
			_, t, err := instant(o)
			if err != nil {
				return from, to, err
			}
			to = t
		}
		if !from.IsZero() && !to.IsZero() && !from.Before(to) {
			return from, to, errors.New("the interval ends before it starts")
		}
		return from, to, nil
	}
	return time.Time{}, time.Time{}, errors.New("want an instant or start/end (RFC 3339; .. for an open end)")
}

// instant is [t, t+1µs) for a date-time, or the day of a date.
func instant(s string) (time.Time, time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d, d.AddDate(0, 0, 1), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1970 || t.Year() > 2999 {
		return time.Time{}, time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time (such as 2026-07-01T08:00:00+07:00) or date", api.Clip(s))
	}
	return t, t.Add(time.Microsecond), nil
}

func (s *Service) itemsPage(w http.ResponseWriter, r *http.Request) {
	c, ok := s.collection(w, r)
	if !ok {
		return
	}
	p, err := s.parseItems(r, c, false)
	if s.badParam(w, r, err) {
		return
	}
	p.req.caller = api.CallerFrom(r.Context())
	pg, err := c.list(r.Context(), p.req)
	if err != nil {
		if s.badParam(w, r, asParamError(err)) {
			return
		}
		api.Fail(w, r, err)
		return
	}
	gs := make([]geom.T, len(pg.features))
	for i, f := range pg.features {
		gs[i] = f.geom
	}
	if err := s.rp.to(r.Context(), p.out, gs); err != nil {
		api.Fail(w, r, err)
		return
	}
	s.items.WithLabelValues(c.id, strconv.FormatBool(p.filterd)).Inc()

	self := pageURL(r, c, p.limit, p.tok)
	links := []link{{self, "self", mediaGeoJSON, "This page"}}
	var header []string
	if pg.next != "" {
		back := append([]string{p.tok.C}, p.tok.P...)
		if len(back) > maxBackPages {
			back = back[:maxBackPages]
		}
		u := pageURL(r, c, p.limit, pageToken{C: pg.next, P: back})
		links = append(links, link{u, "next", mediaGeoJSON, "Next page"})
		header = append(header, "<"+u+`>; rel="next"; type="`+mediaGeoJSON+`"`)
	}
	if p.tok.C != "" {
		prev := pageToken{}
		if len(p.tok.P) > 0 {
			prev = pageToken{C: p.tok.P[0], P: p.tok.P[1:]}
		}
		// A page deeper than the token remembers has no prev link.
		if len(p.tok.P) > 0 {
			u := pageURL(r, c, p.limit, prev)
			links = append(links, link{u, "prev", mediaGeoJSON, "Previous page"})
			header = append(header, "<"+u+`>; rel="prev"; type="`+mediaGeoJSON+`"`)
		}
	}
	links = append(links, link{base(r) + "/collections/" + c.id, "collection", mediaJSON, c.title})

	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection","features":[`)
	for i, f := range pg.features {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeFeature(&buf, f, gs[i], ""); err != nil {
			api.Fail(w, r, err)
			return
		}
	}
	buf.WriteString(`],`)
	meta := map[string]any{"timeStamp": time.Now().UTC().Format(time.RFC3339), "numberReturned": len(pg.features), "links": links}
	if pg.matched >= 0 {
		meta["numberMatched"] = pg.matched
	}
	if c.id == "wards" {
		meta["attribution"] = geo.Attribution
	}
	m, err := json.Marshal(meta)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	buf.Write(m[1:]) // the metadata's members close the object
	buf.WriteByte('\n')
	w.Header().Set("Content-Type", mediaGeoJSON)
	w.Header().Set("Content-Crs", "<"+p.out.uri+">")
	for _, h := range header {
		w.Header().Add("Link", h)
	}
	w.Write(buf.Bytes())
}

// asParamError: a source's bad cursor is the API's bad cursor.
func asParamError(err error) error {
	var pe *api.ParamError
	if errors.As(err, &pe) {
		return err
	}
	return nil
}

// pageURL is this request's URL with the page's cursor and limit.
func pageURL(r *http.Request, c *collection, limit int, tok pageToken) string {
	v := url.Values{}
	for k, vs := range r.URL.Query() {
		v[k] = vs
	}
	v.Del("cursor")
	if tok.C != "" {
		v.Set("cursor", api.EncodeCursor(tok))
	}
	v.Set("limit", strconv.Itoa(limit))
	return base(r) + "/collections/" + c.id + "/items?" + v.Encode()
}

func (s *Service) oneItem(w http.ResponseWriter, r *http.Request) {
	c, ok := s.collection(w, r)
	if !ok {
		return
	}
	p, err := s.parseItems(r, c, true)
	if s.badParam(w, r, err) {
		return
	}
	id := r.PathValue("featureId")
	if id == "" || len(id) > 64 {
		api.Error(w, http.StatusNotFound, "not_found", "no such feature")
		return
	}
	p.req.id, p.req.limit, p.req.caller = id, 1, api.CallerFrom(r.Context())
	pg, err := c.list(r.Context(), p.req)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	// Outside the caller's wards is not found, as elsewhere.
	if len(pg.features) == 0 {
		api.Error(w, http.StatusNotFound, "not_found", "no "+c.id+" feature "+strconv.Quote(api.Clip(id)))
		return
	}
	gs := []geom.T{pg.features[0].geom}
	if err := s.rp.to(r.Context(), p.out, gs); err != nil {
		api.Fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	cb := base(r) + "/collections/" + c.id
	if err := encodeFeature(&buf, pg.features[0], gs[0], cb); err != nil {
		api.Fail(w, r, err)
		return
	}
	buf.WriteByte('\n')
	w.Header().Set("Content-Type", mediaGeoJSON)
	w.Header().Set("Content-Crs", "<"+p.out.uri+">")
	w.Write(buf.Bytes())
}

// encodeFeature writes one GeoJSON Feature; with collURL, its self and
// collection links.
func encodeFeature(buf *bytes.Buffer, f feature, g geom.T, collURL string) error {
	out := struct {
		Type       string            `json:"type"`
		ID         string            `json:"id"`
		Geometry   *geojson.Geometry `json:"geometry"`
		Properties map[string]any    `json:"properties"`
		Links      []link            `json:"links,omitempty"`
	}{Type: "Feature", ID: f.id, Properties: f.props}
	if g != nil {
		gj, err := geojson.Encode(g)
		if err != nil {
			return fmt.Errorf("encode feature %s: %w", f.id, err)
		}
		out.Geometry = gj
	}
	if collURL != "" {
		out.Links = []link{
			{collURL + "/items/" + url.PathEscape(f.id), "self", mediaGeoJSON, ""},
			{collURL, "collection", mediaJSON, ""},
		}
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("encode feature %s: %w", f.id, err)
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}
