package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"

	"ioc/geo"
)

// Point is a WGS 84 position, lon/lat in degrees.
type Point struct{ Lon, Lat float64 }

// metres per degree near Hanoi (21° N); good to a fraction of a percent over
// the city, which is all a simulator needs.
const (
	mPerDegLat = 110_700.0
	mPerDegLon = 103_900.0 // 111 320 · cos 21°
)

// distance in metres (equirectangular; fine at city scale).
func distance(a, b Point) float64 {
	dx := (a.Lon - b.Lon) * mPerDegLon
	dy := (a.Lat - b.Lat) * mPerDegLat
	return math.Hypot(dx, dy)
}

// offset moves p by east and north metres.
func offset(p Point, east, north float64) Point {
	return Point{Lon: p.Lon + east/mPerDegLon, Lat: p.Lat + north/mPerDegLat}
}

// bearing from a to b in degrees clockwise from north, [0,360).
func bearing(a, b Point) float64 {
	dx := (b.Lon - a.Lon) * mPerDegLon
	dy := (b.Lat - a.Lat) * mPerDegLat
	d := math.Atan2(dx, dy) * 180 / math.Pi
	if d < 0 {
		d += 360
	}
	return d
}

// wardArea is a ward prepared for sampling: its bounding box; whether a
// point is inside is geo.WardIndex's answer, the same that ingest gives.
type wardArea struct {
	Code       string
	Name       string
	Urban      bool // phường rather than xã: denser traffic
	Population int
	minX, minY float64
	maxX, maxY float64
}

func newWardArea(w geo.Ward) (wardArea, bool) {
	a := wardArea{Code: w.Code, Name: w.Name, Urban: w.Kind == "ward", Population: w.Population,
		minX: math.Inf(1), minY: math.Inf(1), maxX: math.Inf(-1), maxY: math.Inf(-1)}
	if w.Geom == nil {
		return a, false
	}
	flat, stride := w.Geom.FlatCoords(), w.Geom.Stride()
	for k := 0; k+1 < len(flat); k += stride {
		a.minX, a.maxX = math.Min(a.minX, flat[k]), math.Max(a.maxX, flat[k])
		a.minY, a.maxY = math.Min(a.minY, flat[k+1]), math.Max(a.maxY, flat[k+1])
	}
	return a, len(flat) > 0
}

// city is the set of wards with a population-weighted picker.
type city struct {
	wards  []wardArea
	byCode map[string]int
	cum    []float64 // cumulative weights
	ix     *geo.WardIndex
}

// cities remembers the city built from a slice of wards: the load tool
// builds a simulator per phase, the tests one per test, from the same
// wards, and indexing them is most of New's time. A city is immutable.
var cities sync.Map // cityKey → *city

type cityKey struct {
	first *geo.Ward
	n     int
}

func cityFor(ws []geo.Ward) (*city, error) {
	if len(ws) == 0 {
		return nil, fmt.Errorf("no wards")
	}
	k := cityKey{&ws[0], len(ws)}
	if c, ok := cities.Load(k); ok {
		return c.(*city), nil
	}
	c, err := newCity(ws)
	if err != nil {
		return nil, err
	}
	cities.Store(k, c)
	return c, nil
}

func newCity(ws []geo.Ward) (*city, error) {
	if len(ws) == 0 {
		return nil, fmt.Errorf("no wards")
	}
	c := &city{ix: geo.NewWardIndex(ws), byCode: map[string]int{}}
	// Sort by code so the placement does not depend on the file's order.
	ws = append([]geo.Ward(nil), ws...)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Code < ws[j].Code })
	total := 0.0
	for _, w := range ws {
		a, ok := newWardArea(w)
		if !ok {
			continue
		}
		if _, dup := c.byCode[a.Code]; dup {
			continue
		}
		weight := float64(a.Population)
		if weight <= 0 {
			weight = 20_000 // a few wards lack a population figure
		}
		total += weight
		c.byCode[a.Code] = len(c.wards)
		c.wards = append(c.wards, a)
		c.cum = append(c.cum, total)
	}
	if len(c.wards) == 0 {
		return nil, fmt.Errorf("no ward has a polygon")
	}
	return c, nil
}

// pick returns a ward with probability proportional to its population.
func (c *city) pick(rng *rand.Rand) *wardArea {
	x := rng.Float64() * c.cum[len(c.cum)-1]
	i := sort.SearchFloat64s(c.cum, x)
	if i >= len(c.wards) {
		i = len(c.wards) - 1
	}
	return &c.wards[i]
}

// wardAt returns the ward covering p, or nil outside the city.
func (c *city) wardAt(p Point) *wardArea {
	code, ok := c.ix.Lookup(p.Lon, p.Lat)
	if !ok {
		return nil
	}
	i, ok := c.byCode[code]
	if !ok {
		return nil
	}
	return &c.wards[i]
}

// sample draws a point uniformly inside ward a by rejection in its bbox.
func (c *city) sample(a *wardArea, rng *rand.Rand) Point {
	for range 10_000 {
		p := Point{Lon: a.minX + rng.Float64()*(a.maxX-a.minX), Lat: a.minY + rng.Float64()*(a.maxY-a.minY)}
		if code, ok := c.ix.Lookup(p.Lon, p.Lat); ok && code == a.Code {
			return p
		}
	}
	// A degenerate ward; its bbox centre is still near it.
	return Point{Lon: (a.minX + a.maxX) / 2, Lat: (a.minY + a.maxY) / 2}
}

// randomPoint is a population-weighted point in the city.
func (c *city) randomPoint(rng *rand.Rand) Point { return c.sample(c.pick(rng), rng) }

// loadHospitals reads Points from hospitals.geojson; only those marked as
// having an emergency department when emergencyOnly.
func loadHospitals(path string) ([]Point, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hospitals: %w", err)
	}
	var fc struct {
		Features []struct {
			Properties struct {
				Emergency bool `json:"emergency"`
			} `json:"properties"`
			Geometry struct {
				Type        string    `json:"type"`
				Coordinates []float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		return nil, fmt.Errorf("decode hospitals %s: %w", path, err)
	}
	var all, emerg []Point
	for _, f := range fc.Features {
		if f.Geometry.Type != "Point" || len(f.Geometry.Coordinates) < 2 {
			continue
		}
		p := Point{Lon: f.Geometry.Coordinates[0], Lat: f.Geometry.Coordinates[1]}
		all = append(all, p)
		if f.Properties.Emergency {
			emerg = append(emerg, p)
		}
	}
	if len(emerg) > 0 {
		return emerg, nil
	}
	return all, nil
}
