package geo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ioc/api"
)

// Register adds the geo routes to srv:
//
//	GET    /api/v1/areas                  areas:read       wards as GeoJSON
//	GET    /api/v1/geofences              geofences:read   ?tag=&contains=lon,lat&limit=&cursor=
//	POST   /api/v1/geofences              geofences:write
//	GET    /api/v1/geofences/{id}         geofences:read
//	PUT    /api/v1/geofences/{id}         geofences:write  If-Match: version (optional)
//	DELETE /api/v1/geofences/{id}         geofences:write  If-Match: version (optional)
//	GET    /api/v1/units                  units:read       ?kind=&status=&limit=&cursor= latest state of every unit
//	GET    /api/v1/nearest-units          units:read       ?lon=&lat=&kind=&limit=
//	GET    /api/v1/hospitals              areas:read       ?near=lon,lat&emergency=true&limit=
//
// GET /api/v1/incidents/{id}/nearest-units belongs with incidents: its
// handler finds the incident's point and calls NearestUnitsHandler's logic
// through Units().NearestUnits (see WriteNearestUnits).
func (s *Service) Register(srv *api.Server) {
	srv.Handle("GET", "/api/v1/areas", "areas:read", s.handleAreas)
	srv.Handle("GET", "/api/v1/geofences", "geofences:read", s.handleListFences)
	srv.Handle("POST", "/api/v1/geofences", "geofences:write", s.handleCreateFence)
	srv.Handle("GET", "/api/v1/geofences/{id}", "geofences:read", s.handleGetFence)
	srv.Handle("PUT", "/api/v1/geofences/{id}", "geofences:write", s.handleUpdateFence)
	srv.Handle("DELETE", "/api/v1/geofences/{id}", "geofences:write", s.handleDeleteFence)
	srv.Handle("GET", "/api/v1/units", "units:read", s.handleUnits)
	srv.Handle("GET", "/api/v1/nearest-units", "units:read", s.handleNearestUnits)
	srv.Handle("GET", "/api/v1/hospitals", "areas:read", s.handleHospitals)
}

func (s *Service) handleAreas(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	c := api.CallerFrom(r.Context())
	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection","attribution":"` + Attribution + `","features":[`)
	n := 0
	for _, code := range s.areas.codes {
		if !c.SeesWard(code) {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(s.areas.features[code])
		n++
	}
	buf.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/geo+json")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Write(buf.Bytes())
}

// fencePage is the cursor of the geofence list: the last id served.
type fencePage struct {
	After int64 `json:"a"`
}

func (s *Service) handleListFences(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "tag", "contains", "limit", "cursor")
	tag := q.String("tag", 40)
	limit := q.Int("limit", 100, 1, 1000)
	var cur fencePage
	q.Cursor("cursor", &cur)
	contains := q.String("contains", 64)
	if api.BadParam(w, q.Err()) {
		return
	}
	var list []*Geofence
	if contains != "" {
		lon, lat, err := parseLonLat(contains)
		if err != nil {
			api.Error(w, http.StatusBadRequest, "bad_parameter", "contains: "+err.Error())
			return
		}
		list = s.fences.Containing(nil, lon, lat)
		sortFences(list)
	} else {
		list = s.fences.List()
	}
	out := api.List[*Geofence]{Items: []*Geofence{}}
	for _, f := range list {
		if f.ID <= cur.After || (tag != "" && !containsString(f.Tags, tag)) {
			continue
		}
		if len(out.Items) == limit {
			out.NextCursor = api.EncodeCursor(fencePage{After: out.Items[len(out.Items)-1].ID})
			break
		}
		out.Items = append(out.Items, f)
	}
	api.JSON(w, http.StatusOK, out)
}

func sortFences(l []*Geofence) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].ID < l[j-1].ID; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// errCityWideFences: geofences apply to the whole city (a fence can span
// wards, and every rule sees every fence), so only city-wide users change
// them; a ward-limited user reads them.
var errCityWideFences = api.NewProblem(http.StatusForbidden, "forbidden", "geofences are city-wide: only a user without a ward limit may change them")

func (s *Service) handleCreateFence(w http.ResponseWriter, r *http.Request) {
	if api.CallerFrom(r.Context()).Scoped() {
		api.Fail(w, r, errCityWideFences)
		return
	}
	f, ok := s.readFence(w, r)
	if !ok {
		return
	}
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	out, err := s.fences.Create(r.Context(), f, api.CallerFrom(r.Context()).Name)
	if s.writeFenceError(w, r, err) {
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/geofences/%d", out.ID))
	api.SetETag(w, out.Version)
	api.JSON(w, http.StatusCreated, out)
}

func (s *Service) handleGetFence(w http.ResponseWriter, r *http.Request) {
	id, ok := fenceID(w, r)
	if !ok {
		return
	}
	f, found := s.fences.Get(id)
	if !found {
		api.NotFound(w, "geofence")
		return
	}
	api.SetETag(w, f.Version)
	api.JSON(w, http.StatusOK, f)
}

func (s *Service) handleUpdateFence(w http.ResponseWriter, r *http.Request) {
	if api.CallerFrom(r.Context()).Scoped() {
		api.Fail(w, r, errCityWideFences)
		return
	}
	id, ok := fenceID(w, r)
	if !ok {
		return
	}
	ifVersion, err := api.IfMatch(r)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	f, ok := s.readFence(w, r)
	if !ok {
		return
	}
	out, err := s.fences.Update(r.Context(), id, ifVersion, f, api.CallerFrom(r.Context()).Name)
	if s.writeFenceError(w, r, err) {
		return
	}
	api.SetETag(w, out.Version)
	api.JSON(w, http.StatusOK, out)
}

func (s *Service) handleDeleteFence(w http.ResponseWriter, r *http.Request) {
	if api.CallerFrom(r.Context()).Scoped() {
		api.Fail(w, r, errCityWideFences)
		return
	}
	id, ok := fenceID(w, r)
	if !ok {
		return
	}
	ifVersion, err := api.IfMatch(r)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	if s.writeFenceError(w, r, s.fences.Delete(r.Context(), id, ifVersion)) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readFence decodes a geofence body with geo's own decoder (it caps what a
// hostile GeoJSON may allocate), not api.DecodeJSON.
func (s *Service) readFence(w http.ResponseWriter, r *http.Request) (*Geofence, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		api.Fail(w, r, err) // 413 for an oversized body
		return nil, false
	}
	f, err := DecodeGeofence(body, s.fences.Limits())
	if err != nil {
		s.writeFenceError(w, r, err)
		return nil, false
	}
	return f, true
}

// writeFenceError answers err, if any: a validation error as 400
// invalid_geofence, the rest through api.Fail.
func (s *Service) writeFenceError(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		err = api.Problemf(http.StatusBadRequest, "invalid_geofence", "%s", ve.Error())
	}
	api.Fail(w, r, err)
	return true
}

func fenceID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		api.NotFound(w, "geofence")
		return 0, false
	}
	return id, true
}

// unitJSON is a unit as the API shows it.
type unitJSON struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	Location   pointJSON `json:"location"`
	Ward       *wardRef  `json:"ward,omitempty"`
	TS         time.Time `json:"ts"`
	SpeedKmh   *float64  `json:"speed_kmh,omitempty"`
	HeadingDeg *float64  `json:"heading_deg,omitempty"`
	DistanceM  *float64  `json:"distance_m,omitempty"`
	ETASeconds *float64  `json:"eta_s,omitempty"`
}

type pointJSON struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

type wardRef struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

func (s *Service) ward(code string) *wardRef {
	if code == "" {
		return nil
	}
	return &wardRef{Code: code, Name: s.areas.wards[code].Name}
}

func (s *Service) unitOut(u Unit) unitJSON {
	return unitJSON{
		ID: u.ID, Kind: u.Kind, Status: u.Status, Location: pointJSON{"Point", [2]float64{u.Lon, u.Lat}},
		Ward: s.ward(u.Ward), TS: u.TS, SpeedKmh: u.SpeedKmh, HeadingDeg: u.HeadingDeg,
	}
}

var unitKinds = []string{"police", "fire", "ambulance", "rescue", "traffic_police"}

// unitsPage: a map of Hanoi's responders fits one page; more are paged.
const unitsPage = 1000

func (s *Service) handleUnits(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "kind", "status", "limit", "cursor")
	kind := q.Enum("kind", unitKinds...)
	status := q.Enum("status", "available", "dispatched", "en_route", "on_scene", "out_of_service")
	limit := q.Int("limit", unitsPage, 1, unitsPage)
	var after string
	q.Cursor("cursor", &after)
	if api.BadParam(w, q.Err()) {
		return
	}
	c := api.CallerFrom(r.Context())
	units, more := s.units.Page(after, limit, func(u Unit) bool {
		return (kind == "" || u.Kind == kind) && (status == "" || u.Status == status) && c.SeesWard(u.Ward)
	})
	out := api.List[unitJSON]{Items: make([]unitJSON, 0, len(units))}
	for _, u := range units {
		out.Items = append(out.Items, s.unitOut(u))
	}
	if more {
		out.NextCursor = api.EncodeCursor(units[len(units)-1].ID)
	}
	api.JSON(w, http.StatusOK, out)
}

func (s *Service) handleNearestUnits(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "lon", "lat", "kind", "limit")
	lonS, latS := q.String("lon", 32), q.String("lat", 32)
	kind := q.Enum("kind", unitKinds...)
	limit := q.Int("limit", 5, 1, 100)
	if api.BadParam(w, q.Err()) {
		return
	}
	lon, err := parseDegrees("lon", lonS, 180)
	if err == nil {
		lat, err := parseDegrees("lat", latS, 90)
		if err == nil {
			if !s.callerSeesPoint(r, lon, lat) {
				api.Error(w, http.StatusForbidden, "forbidden", "the point is outside your wards")
				return
			}
			s.WriteNearestUnits(w, r, lon, lat, kind, limit, nil)
			return
		}
		api.BadParam(w, err)
		return
	}
	api.BadParam(w, err)
}

// WriteNearestUnits answers a nearest-units request for a point: the
// incident route (GET /incidents/{id}/nearest-units) calls it with the
// incident's location after its own access checks. Only units in the
// caller's wards are ranked: a ward-limited dispatcher is not shown (and
// cannot dispatch) another ward's units. The units in except (those already
// on the incident) are never offered.
func (s *Service) WriteNearestUnits(w http.ResponseWriter, r *http.Request, lon, lat float64, kind string, limit int, except []string) {
	out := api.List[unitJSON]{Items: []unitJSON{}}
	for _, n := range s.units.NearestUnits(lon, lat, kind, limit, api.CallerFrom(r.Context()).SeesWard, except) {
		u := s.unitOut(n.Unit)
		d, eta := math.Round(n.DistanceM), n.ETASeconds
		u.DistanceM, u.ETASeconds = &d, &eta
		out.Items = append(out.Items, u)
	}
	api.JSON(w, http.StatusOK, out)
}

// UnitVisible reports whether the caller may see (and so dispatch) the
// unit: it is known, and in one of the caller's wards.
func (s *Service) UnitVisible(c api.Caller, id string) bool {
	u, ok := s.units.Get(id)
	return ok && c.SeesWard(u.Ward)
}

// callerSeesPoint: a caller limited to some wards may only ask about
// points in them.
func (s *Service) callerSeesPoint(r *http.Request, lon, lat float64) bool {
	c := api.CallerFrom(r.Context())
	if !c.Scoped() {
		return true
	}
	code, ok := s.areas.index.Lookup(lon, lat)
	return ok && c.SeesWard(code)
}

type hospitalJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Emergency bool      `json:"emergency"`
	Location  pointJSON `json:"location"`
	Ward      *wardRef  `json:"ward,omitempty"`
	DistanceM *float64  `json:"distance_m,omitempty"`
}

func (s *Service) handleHospitals(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "near", "emergency", "limit")
	near := q.String("near", 64)
	emergency := q.Enum("emergency", "true", "false") == "true"
	limit := q.Int("limit", -1, 1, 1000)
	if api.BadParam(w, q.Err()) {
		return
	}
	if s.hospitals == nil {
		api.Error(w, http.StatusNotFound, "not_found", "no hospital data configured")
		return
	}
	type response struct {
		Items       []hospitalJSON `json:"items"`
		Attribution string         `json:"attribution"`
	}
	out := response{Items: []hospitalJSON{}, Attribution: Attribution}
	var list []NearHospital
	if near != "" {
		lon, lat, err := parseLonLat(near)
		if err != nil {
			api.Error(w, http.StatusBadRequest, "bad_parameter", "near: "+err.Error())
			return
		}
		if limit < 0 {
			limit = 5
		}
		list = s.hospitals.Nearest(lon, lat, emergency, limit)
	} else {
		for _, h := range s.hospitals.All() {
			if !emergency || h.Emergency {
				list = append(list, NearHospital{Hospital: h, DistanceM: -1})
			}
		}
		if limit >= 0 && len(list) > limit {
			list = list[:limit]
		}
	}
	for _, h := range list {
		x := hospitalJSON{ID: h.ID, Name: h.Name, Emergency: h.Emergency,
			Location: pointJSON{"Point", [2]float64{h.Lon, h.Lat}}, Ward: s.ward(h.Ward)}
		if h.DistanceM >= 0 {
			d := math.Round(h.DistanceM)
			x.DistanceM = &d
		}
		out.Items = append(out.Items, x)
	}
	api.JSON(w, http.StatusOK, out)
}

// parseDegrees reads a required coordinate within ±max.
func parseDegrees(name, s string, max float64) (float64, error) {
	if s == "" {
		return 0, &api.ParamError{Name: name, Problem: "required"}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < -max || v > max {
		return 0, &api.ParamError{Name: name, Problem: fmt.Sprintf("want degrees from %g to %g", -max, max)}
	}
	return v, nil
}

// parseLonLat reads "lon,lat".
func parseLonLat(s string) (float64, float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return 0, 0, errors.New("want lon,lat")
	}
	lon, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	lat, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err1 != nil || err2 != nil || math.IsNaN(lon) || math.IsNaN(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90 {
		return 0, 0, errors.New("want lon,lat in WGS 84 degrees")
	}
	return lon, lat, nil
}

// UnitJSON is a unit encoded as GET /api/v1/units shows it (the
// websocket's unit frames carry the same object).
func (s *Service) UnitJSON(u Unit) ([]byte, error) { return json.Marshal(s.unitOut(u)) }
