package geo

import (
	"ioc/api"

	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twpayne/go-geom"
)

// Geofence is an operator-drawn zone that alert rules can refer to: a
// polygon (Polygon or MultiPolygon) or a circle, with tags and the hours in
// which it applies.
type Geofence struct {
	ID          int64
	Name        string
	Tags        []string
	Shape       string             // "polygon" or "circle"
	Polygon     *geom.MultiPolygon // Shape "polygon"; a Polygon input is promoted
	Center      [2]float64         // Shape "circle": lon, lat
	RadiusM     float64            // Shape "circle"
	ActiveHours []ActiveHours      // empty: always active
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CreatedBy   string
	UpdatedBy   string
}

// ActiveHours is a weekly window in Hanoi time: on the given ISO weekdays
// (1 Monday … 7 Sunday) from From to To ("HH:MM"). A window whose To is
// not after From runs over midnight into the next day.
type ActiveHours struct {
	Days []int  `json:"days"`
	From string `json:"from"`
	To   string `json:"to"`
	from int    // minutes after midnight
	to   int
}

// Hanoi is the city's time zone (UTC+7, no daylight saving time), fixed so
// a host without tzdata behaves the same.
var Hanoi = time.FixedZone("Asia/Ho_Chi_Minh", 7*3600)

// ActiveAt reports whether the geofence applies at t.
func (f *Geofence) ActiveAt(t time.Time) bool {
	if len(f.ActiveHours) == 0 {
		return true
	}
	t = t.In(Hanoi)
	day := isoWeekday(t.Weekday())
	m := t.Hour()*60 + t.Minute()
	prev := day - 1
	if prev == 0 {
		prev = 7
	}
	for _, h := range f.ActiveHours {
		if h.from < h.to {
			if m >= h.from && m < h.to && slices.Contains(h.Days, day) {
				return true
			}
			continue
		}
		// Over midnight: the evening part today, the morning part of a
		// window that started yesterday.
		if (m >= h.from && slices.Contains(h.Days, day)) || (m < h.to && slices.Contains(h.Days, prev)) {
			return true
		}
	}
	return false
}

func isoWeekday(d time.Weekday) int {
	if d == time.Sunday {
		return 7
	}
	return int(d)
}

// GeofenceLimits bounds what a geofence may be. Region, if not empty,
// is where every coordinate must lie (the service area's box plus slack).
type GeofenceLimits struct {
	MaxVertices   int     // over all rings
	MaxRings      int     // per polygon, exterior included
	MaxPolygons   int     // per MultiPolygon
	MaxSpanDeg    float64 // width and height of the bounding box
	MinRadiusM    float64
	MaxRadiusM    float64
	MaxTags       int
	MaxNameRunes  int
	MaxHourRanges int
	Region        bbox
}

// DefaultGeofenceLimits suit a city: 10,000 vertices, 2° (about 200 km) at
// most across, radius 1 m to 50 km, coordinates anywhere valid.
func DefaultGeofenceLimits() GeofenceLimits {
	return GeofenceLimits{
		MaxVertices: 10_000, MaxRings: 100, MaxPolygons: 100, MaxSpanDeg: 2,
		MinRadiusM: 1, MaxRadiusM: 50_000, MaxTags: 20, MaxNameRunes: 200, MaxHourRanges: 20,
		Region: bbox{-180, -90, 180, 90},
	}
}

// ValidationError is a geofence the API refuses with 400; Field names the
// offending part ("geometry.coordinates[0][3]", "radius_m", ...).
type ValidationError struct {
	Field, Problem string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Problem }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// geofenceJSON is the wire form, in and out.
type geofenceJSON struct {
	ID          int64           `json:"id,omitempty"`
	Name        string          `json:"name"`
	Tags        []string        `json:"tags"`
	Geometry    json.RawMessage `json:"geometry,omitempty"`
	Circle      *circleJSON     `json:"circle,omitempty"`
	ActiveHours []ActiveHours   `json:"active_hours"`
	Version     int64           `json:"version,omitempty"`
	CreatedAt   *time.Time      `json:"created_at,omitempty"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
	CreatedBy   string          `json:"created_by,omitempty"`
	UpdatedBy   string          `json:"updated_by,omitempty"`
}

type circleJSON struct {
	Center  []float64 `json:"center"`
	RadiusM float64   `json:"radius_m"`
}

var tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,39}$`)

// DecodeGeofence parses and validates a geofence sent by a client:
//
//	{"name": "Hoan Kiem walking street", "tags": ["pedestrian_zone"],
//	 "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], ...]]},
//	 "active_hours": [{"days": [5, 6, 7], "from": "19:00", "to": "24:00"}]}
//
// or, for a circle, "circle": {"center": [lon, lat], "radius_m": 300}
// instead of "geometry". Unknown fields are refused. The coordinates are
// read by a scanner that stops as soon as a limit is passed, so a hostile
// body cannot make it allocate more than the limits allow. Errors are
// *ValidationError.
func DecodeGeofence(body []byte, lim GeofenceLimits) (*Geofence, error) {
	var in geofenceJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, invalid("body", "not a geofence JSON object: %s", jsonProblem(err))
	}
	if dec.More() {
		return nil, invalid("body", "trailing data after the JSON object")
	}
	if in.ID != 0 || in.Version != 0 || in.CreatedAt != nil || in.UpdatedAt != nil || in.CreatedBy != "" || in.UpdatedBy != "" {
		return nil, invalid("body", "id, version, created_* and updated_* are set by the server")
	}
	f := &Geofence{Name: strings.TrimSpace(in.Name), Tags: in.Tags, ActiveHours: in.ActiveHours}
	if err := validateName(f.Name, lim); err != nil {
		return nil, err
	}
	if len(f.Tags) > lim.MaxTags {
		return nil, invalid("tags", "at most %d tags", lim.MaxTags)
	}
	seen := map[string]bool{}
	for i, t := range f.Tags {
		if !tagRE.MatchString(t) {
			return nil, invalid(fmt.Sprintf("tags[%d]", i), "a tag is 1-40 of a-z 0-9 _ starting with a letter or digit, got %q", api.Clip(t))
		}
		if seen[t] {
			return nil, invalid(fmt.Sprintf("tags[%d]", i), "%q given twice", t)
		}
		seen[t] = true
	}
	if f.Tags == nil {
		f.Tags = []string{}
	}
	if err := validateHours(f.ActiveHours, lim); err != nil {
		return nil, err
	}
	switch {
	case in.Circle != nil && len(in.Geometry) > 0:
		return nil, invalid("body", "give either geometry or circle, not both")
	case in.Circle != nil:
		c := in.Circle
		if len(c.Center) != 2 {
			return nil, invalid("circle.center", "want [lon, lat]")
		}
		if err := checkCoord("circle.center", c.Center[0], c.Center[1], lim); err != nil {
			return nil, err
		}
		if math.IsNaN(c.RadiusM) || c.RadiusM < lim.MinRadiusM || c.RadiusM > lim.MaxRadiusM {
			return nil, invalid("circle.radius_m", "want metres from %g to %g, got %g", lim.MinRadiusM, lim.MaxRadiusM, c.RadiusM)
		}
		f.Shape = "circle"
		f.Center = [2]float64{c.Center[0], c.Center[1]}
		f.RadiusM = c.RadiusM
	case len(in.Geometry) > 0:
		mp, err := decodePolygonGeometry(in.Geometry, lim)
		if err != nil {
			return nil, err
		}
		f.Shape = "polygon"
		f.Polygon = mp
	default:
		return nil, invalid("geometry", "missing: give a GeoJSON Polygon or MultiPolygon, or a circle")
	}
	return f, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s", te.Field, te.Type)
	}
	return api.Clip(err.Error())
}

func validateName(name string, lim GeofenceLimits) error {
	if name == "" {
		return invalid("name", "required")
	}
	if !utf8.ValidString(name) {
		return invalid("name", "not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > lim.MaxNameRunes {
		return invalid("name", "at most %d characters, got %d", lim.MaxNameRunes, n)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalid("name", "control characters are not allowed")
		}
	}
	return nil
}

func validateHours(hs []ActiveHours, lim GeofenceLimits) error {
	if len(hs) > lim.MaxHourRanges {
		return invalid("active_hours", "at most %d windows", lim.MaxHourRanges)
	}
	for i := range hs {
		h := &hs[i]
		field := fmt.Sprintf("active_hours[%d]", i)
		if len(h.Days) == 0 || len(h.Days) > 7 {
			return invalid(field+".days", "want 1 to 7 ISO weekdays (1 Monday … 7 Sunday)")
		}
		seen := [8]bool{}
		for _, d := range h.Days {
			if d < 1 || d > 7 {
				return invalid(field+".days", "weekday %d is not 1 (Monday) … 7 (Sunday)", d)
			}
			if seen[d] {
				return invalid(field+".days", "weekday %d given twice", d)
			}
			seen[d] = true
		}
		var ok bool
		if h.from, ok = parseHHMM(h.From); !ok || h.from == 24*60 {
			return invalid(field+".from", "want HH:MM from 00:00 to 23:59, got %q", api.Clip(h.From))
		}
		if h.to, ok = parseHHMM(h.To); !ok {
			return invalid(field+".to", "want HH:MM from 00:00 to 24:00, got %q", api.Clip(h.To))
		}
		if h.from == h.to {
			return invalid(field, "from and to are equal; leave active_hours empty for always")
		}
	}
	return nil
}

func parseHHMM(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

func checkCoord(field string, lon, lat float64, lim GeofenceLimits) error {
	if math.IsNaN(lon) || math.IsNaN(lat) || math.IsInf(lon, 0) || math.IsInf(lat, 0) ||
		lon < -180 || lon > 180 || lat < -90 || lat > 90 {
		return invalid(field, "(%g, %g) is not a WGS 84 [lon, lat]", lon, lat)
	}
	if !lim.Region.contains(lon, lat) {
		return invalid(field, "(%g, %g) is outside the region geofences may cover (%g,%g – %g,%g)",
			lon, lat, lim.Region.minX, lim.Region.minY, lim.Region.maxX, lim.Region.maxY)
	}
	return nil
}

// decodePolygonGeometry reads {"type": "Polygon"|"MultiPolygon",
// "coordinates": ...} and validates the shape.
func decodePolygonGeometry(raw json.RawMessage, lim GeofenceLimits) (*geom.MultiPolygon, error) {
	var g struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, invalid("geometry", "not a GeoJSON geometry object: %s", jsonProblem(err))
	}
	depth := 0
	switch g.Type {
	case "Polygon":
		depth = 3
	case "MultiPolygon":
		depth = 4
	case "":
		return nil, invalid("geometry.type", "missing")
	default:
		return nil, invalid("geometry.type", "want Polygon or MultiPolygon, got %q", api.Clip(g.Type))
	}
	if len(g.Coordinates) == 0 {
		return nil, invalid("geometry.coordinates", "missing")
	}
	sc := coordScanner{src: g.Coordinates, lim: lim}
	flat, endss, err := sc.scan(depth)
	if err != nil {
		return nil, err
	}
	mp := geom.NewMultiPolygonFlat(geom.XY, flat, endss).SetSRID(4326)
	if err := validatePolygons(mp, depth == 3, lim); err != nil {
		return nil, err
	}
	return mp, nil
}

// coordScanner reads nested coordinate arrays straight into flat XY
// coordinates and ring ends, counting as it goes.
type coordScanner struct {
	src      []byte
	pos      int
	lim      GeofenceLimits
	vertices int
}

func (s *coordScanner) fail(format string, args ...any) error {
	return invalid("geometry.coordinates", "at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *coordScanner) ws() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *coordScanner) expect(c byte) bool {
	s.ws()
	if s.pos < len(s.src) && s.src[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// list calls item for each element of a JSON array.
func (s *coordScanner) list(what string, item func(i int) error) error {
	if !s.expect('[') {
		return s.fail("want an array of %s", what)
	}
	if s.expect(']') {
		return nil
	}
	for i := 0; ; i++ {
		if err := item(i); err != nil {
			return err
		}
		if s.expect(']') {
			return nil
		}
		if !s.expect(',') {
			return s.fail("want , or ] in the array of %s", what)
		}
	}
}

func (s *coordScanner) number() (float64, error) {
	s.ws()
	start := s.pos
	for s.pos < len(s.src) && s.pos-start < 40 && strings.IndexByte("+-0123456789.eE", s.src[s.pos]) >= 0 {
		s.pos++
	}
	if start == s.pos {
		return 0, s.fail("want a number")
	}
	v, err := strconv.ParseFloat(string(s.src[start:s.pos]), 64)
	if err != nil || s.src[start] == '+' {
		return 0, s.fail("%q is not a number", api.Clip(string(s.src[start:s.pos])))
	}
	return v, nil
}

func (s *coordScanner) scan(depth int) (flat []float64, endss [][]int, err error) {
	readPolygon := func(pi int) error {
		if len(endss) >= s.lim.MaxPolygons {
			return s.fail("more than %d polygons", s.lim.MaxPolygons)
		}
		var ends []int
		err := s.list("rings", func(ri int) error {
			if len(ends) >= s.lim.MaxRings {
				return s.fail("more than %d rings in polygon %d", s.lim.MaxRings, pi)
			}
			n := 0
			err := s.list("positions", func(int) error {
				s.vertices++
				if s.vertices > s.lim.MaxVertices {
					return s.fail("more than %d vertices", s.lim.MaxVertices)
				}
				var xy [2]float64
				k := 0
				err := s.list("numbers", func(int) error {
					v, err := s.number()
					if err != nil {
						return err
					}
					if k >= 3 {
						return s.fail("a position has 2 or 3 numbers")
					}
					if k < 2 {
						xy[k] = v
					}
					k++
					return nil
				})
				if err != nil {
					return err
				}
				if k < 2 {
					return s.fail("a position needs [lon, lat]")
				}
				flat = append(flat, xy[0], xy[1])
				n++
				return nil
			})
			if err != nil {
				return err
			}
			ends = append(ends, len(flat))
			return nil
		})
		if err != nil {
			return err
		}
		if len(ends) == 0 {
			return s.fail("polygon %d has no rings", pi)
		}
		endss = append(endss, ends)
		return nil
	}
	if depth == 3 {
		err = readPolygon(0)
	} else {
		err = s.list("polygons", readPolygon)
	}
	if err != nil {
		return nil, nil, err
	}
	s.ws()
	if s.pos != len(s.src) {
		return nil, nil, s.fail("unexpected data after the coordinates")
	}
	if len(endss) == 0 {
		return nil, nil, invalid("geometry.coordinates", "no polygons")
	}
	return flat, endss, nil
}

// validatePolygons checks what PostGIS would call an invalid polygon, and
// the limits: closed rings of at least 4 positions and 3 distinct points,
// non-zero area, no ring crossing or touching itself or another ring, holes
// inside their shell, polygons of a MultiPolygon not overlapping, a sane
// size and valid coordinates.
func validatePolygons(mp *geom.MultiPolygon, single bool, lim GeofenceLimits) error {
	// ringField names a ring as the client wrote it (Polygon or MultiPolygon).
	ringField := func(p, r int) string {
		if single {
			return fmt.Sprintf("geometry.coordinates[%d]", r)
		}
		return fmt.Sprintf("geometry.coordinates[%d][%d]", p, r)
	}
	box := emptyBBox()
	var segs []ringSeg
	var flat0 error // first ring without area, reported after crossings
	for p := 0; p < mp.NumPolygons(); p++ {
		poly := mp.Polygon(p)
		for r := 0; r < poly.NumLinearRings(); r++ {
			field := ringField(p, r)
			flat := poly.LinearRing(r).FlatCoords()
			n := len(flat) / 2
			for i := 0; i < n; i++ {
				if err := checkCoord(fmt.Sprintf("%s[%d]", field, i), flat[2*i], flat[2*i+1], lim); err != nil {
					return err
				}
				box.extend(flat[2*i], flat[2*i+1])
			}
			if n < 4 {
				return invalid(field, "a ring needs at least 4 positions (the first repeated at the end), got %d", n)
			}
			if flat[0] != flat[2*n-2] || flat[1] != flat[2*n-1] {
				return invalid(field, "ring is not closed: the last position must equal the first")
			}
			distinct := map[[2]float64]bool{}
			area2 := 0.0
			k := 0
			for i := 0; i+1 < n; i++ {
				distinct[[2]float64{flat[2*i], flat[2*i+1]}] = true
				// Shoelace relative to the first point, to keep precision.
				x0, y0 := flat[0], flat[1]
				area2 += (flat[2*i]-x0)*(flat[2*i+3]-y0) - (flat[2*i+2]-x0)*(flat[2*i+1]-y0)
				if flat[2*i] == flat[2*i+2] && flat[2*i+1] == flat[2*i+3] {
					continue // repeated point: no segment
				}
				segs = append(segs, ringSeg{edge{flat[2*i], flat[2*i+1], flat[2*i+2], flat[2*i+3]}, p, r, i, k})
				k++
			}
			if len(distinct) < 3 {
				return invalid(field, "a ring needs at least 3 distinct points")
			}
			if math.Abs(area2)/2 < 1e-12 { // about 0.01 m²
				if collinear(flat) {
					return invalid(field, "ring has no area (all points on a line)")
				}
				if flat0 == nil {
					flat0 = invalid(field, "ring has no area")
				}
			}
		}
	}
	if w, h := box.maxX-box.minX, box.maxY-box.minY; w > lim.MaxSpanDeg || h > lim.MaxSpanDeg {
		return invalid("geometry", "%.3g° × %.3g° across; at most %g° (about %d km) allowed", w, h, lim.MaxSpanDeg, int(lim.MaxSpanDeg*111))
	}
	if a, b, ok := findIntersection(segs); ok {
		if a.poly == b.poly && a.ring == b.ring {
			return invalid(ringField(a.poly, a.ring),
				"ring intersects itself: segment %d crosses or touches segment %d near (%.6f, %.6f)", a.seg, b.seg, b.x1, b.y1)
		}
		return invalid("geometry", "rings intersect: %s segment %d meets %s segment %d near (%.6f, %.6f)",
			ringField(a.poly, a.ring), a.seg, ringField(b.poly, b.ring), b.seg, b.x1, b.y1)
	}
	if flat0 != nil {
		return flat0
	}
	// With no crossings, a hole is inside its shell iff one of its points is,
	// and two polygons overlap iff a point of one lies in the other.
	shapes := make([]*shape, mp.NumPolygons())
	for p := range shapes {
		shapes[p], _ = newShape(mp.Polygon(p))
		poly := mp.Polygon(p)
		shell := &shape{box: shapes[p].box, polys: []polygon{{rings: shapes[p].polys[0].rings[:1]}}}
		for r := 1; r < poly.NumLinearRings(); r++ {
			c := poly.LinearRing(r).Coord(0)
			if !shell.covers(c[0], c[1]) {
				return invalid(ringField(p, r), "hole is outside its polygon's exterior ring")
			}
		}
	}
	for p := range shapes {
		for q := range shapes {
			if p == q {
				continue
			}
			c := mp.Polygon(q).LinearRing(0).Coord(0)
			if shapes[p].covers(c[0], c[1]) {
				return invalid("geometry", "polygons %d and %d of the MultiPolygon overlap", p, q)
			}
		}
	}
	return nil
}

// collinear reports whether all points of the flat XY ring are on one line.
func collinear(flat []float64) bool {
	x0, y0 := flat[0], flat[1]
	for i := 2; i+1 < len(flat); i += 2 {
		if flat[i] != x0 || flat[i+1] != y0 {
			for j := i + 2; j+1 < len(flat); j += 2 {
				if orient(x0, y0, flat[i], flat[i+1], flat[j], flat[j+1]) != 0 {
					return false
				}
			}
			return true
		}
	}
	return true
}

type ringSeg struct {
	edge
	poly, ring, seg int // seg: index of the first position, for messages
	k               int // index among the ring's non-degenerate segments
}

// findIntersection sweeps the segments by x and returns a pair of
// segments that cross or touch, other than neighbours in the same ring
// sharing their common end.
func findIntersection(segs []ringSeg) (ringSeg, ringSeg, bool) {
	order := make([]int, len(segs))
	for i := range order {
		order[i] = i
	}
	minX := func(s ringSeg) float64 { return math.Min(s.x1, s.x2) }
	maxX := func(s ringSeg) float64 { return math.Max(s.x1, s.x2) }
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Compare(minX(segs[a]), minX(segs[b]))
	})
	ringLen := map[[2]int]int{}
	for _, s := range segs {
		ringLen[[2]int{s.poly, s.ring}]++
	}
	for oi, i := range order {
		a := segs[i]
		ax := maxX(a)
		for _, j := range order[oi+1:] {
			b := segs[j]
			if minX(b) > ax {
				break
			}
			if math.Max(a.y1, a.y2) < math.Min(b.y1, b.y2) || math.Max(b.y1, b.y2) < math.Min(a.y1, a.y2) {
				continue
			}
			if !segmentsMeet(a.edge, b.edge) {
				continue
			}
			if a.poly == b.poly && a.ring == b.ring && adjacentOnly(a, b, ringLen[[2]int{a.poly, a.ring}]) {
				continue
			}
			if a.seg > b.seg && a.poly == b.poly && a.ring == b.ring {
				a, b = b, a
			}
			return a, b, true
		}
	}
	return ringSeg{}, ringSeg{}, false
}

// adjacentOnly: consecutive segments of a ring (k and k+1, or the last
// and the first) meet at their shared vertex; that is fine unless they are
// collinear and fold back over each other (a spike).
func adjacentOnly(a, b ringSeg, n int) bool {
	d := a.k - b.k
	if d < 0 {
		d = -d
	}
	if d != 1 && d != n-1 {
		return false
	}
	if orient(a.x1, a.y1, a.x2, a.y2, b.x1, b.y1) != 0 || orient(a.x1, a.y1, a.x2, a.y2, b.x2, b.y2) != 0 {
		return true
	}
	// Collinear: fine only if they leave the shared vertex in opposite
	// directions.
	if !(b.k == a.k+1 || (a.k == n-1 && b.k == 0)) {
		a, b = b, a
	}
	// Now a comes just before b: a ends where b starts.
	dot := (a.x1-a.x2)*(b.x2-b.x1) + (a.y1-a.y2)*(b.y2-b.y1)
	return dot < 0
}

func orient(ax, ay, bx, by, cx, cy float64) int {
	v := float64((bx-ax)*(cy-ay)) - float64((cx-ax)*(by-ay))
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// segmentsMeet reports whether two closed segments share a point.
func segmentsMeet(a, b edge) bool {
	o1 := orient(a.x1, a.y1, a.x2, a.y2, b.x1, b.y1)
	o2 := orient(a.x1, a.y1, a.x2, a.y2, b.x2, b.y2)
	o3 := orient(b.x1, b.y1, b.x2, b.y2, a.x1, a.y1)
	o4 := orient(b.x1, b.y1, b.x2, b.y2, a.x2, a.y2)
	if o1*o2 < 0 && o3*o4 < 0 {
		return true
	}
	return (o1 == 0 && onSegment(a, b.x1, b.y1)) || (o2 == 0 && onSegment(a, b.x2, b.y2)) ||
		(o3 == 0 && onSegment(b, a.x1, a.y1)) || (o4 == 0 && onSegment(b, a.x2, a.y2))
}

// MarshalJSON writes the API form; a polygon fence's geometry is a
// MultiPolygon.
func (f *Geofence) MarshalJSON() ([]byte, error) {
	out := geofenceJSON{
		ID: f.ID, Name: f.Name, Tags: f.Tags, ActiveHours: f.ActiveHours, Version: f.Version,
		CreatedBy: f.CreatedBy, UpdatedBy: f.UpdatedBy,
	}
	if out.ActiveHours == nil {
		out.ActiveHours = []ActiveHours{}
	}
	if !f.CreatedAt.IsZero() {
		out.CreatedAt, out.UpdatedAt = &f.CreatedAt, &f.UpdatedAt
	}
	switch f.Shape {
	case "circle":
		out.Circle = &circleJSON{Center: []float64{f.Center[0], f.Center[1]}, RadiusM: f.RadiusM}
	default:
		b, err := marshalMultiPolygon(f.Polygon)
		if err != nil {
			return nil, err
		}
		out.Geometry = b
	}
	return json.Marshal(out)
}

func marshalMultiPolygon(mp *geom.MultiPolygon) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"type":"MultiPolygon","coordinates":[`)
	for p := 0; p < mp.NumPolygons(); p++ {
		if p > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('[')
		poly := mp.Polygon(p)
		for r := 0; r < poly.NumLinearRings(); r++ {
			if r > 0 {
				buf.WriteByte(',')
			}
			buf.WriteByte('[')
			flat := poly.LinearRing(r).FlatCoords()
			for i := 0; i+1 < len(flat); i += 2 {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.WriteByte('[')
				buf.WriteString(strconv.FormatFloat(flat[i], 'f', -1, 64))
				buf.WriteByte(',')
				buf.WriteString(strconv.FormatFloat(flat[i+1], 'f', -1, 64))
				buf.WriteByte(']')
			}
			buf.WriteByte(']')
		}
		buf.WriteByte(']')
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), nil
}
