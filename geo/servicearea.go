package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// ServiceArea is the region the operations centre accepts observations
// from: the city outline widened by a margin. Immutable, safe for
// concurrent use, Contains does not allocate.
type ServiceArea struct {
	margin float64 // metres
	grid   areaGrid
	// outer is the outline's box widened by at least margin, a quick reject.
	outer bbox
	// Edge buckets for the distance test, cells of bucketDeg degrees.
	bucketDeg float64
	bx, by    int
	bucketOff []uint32
	buckets   []edge
}

// Earth radius used for distances: the IUGG mean radius, as PostGIS's
// sphere (geography with use_spheroid = false).
const earthRadiusM = 6371008.8

const degToRad = math.Pi / 180

// LoadServiceArea reads the city outline (a GeoJSON FeatureCollection,
// Feature or bare Polygon/MultiPolygon) and widens it by margin metres.
func LoadServiceArea(cityGeoJSONPath string, margin float64) (*ServiceArea, error) {
	raw, err := os.ReadFile(cityGeoJSONPath)
	if err != nil {
		return nil, fmt.Errorf("read service area: %w", err)
	}
	shapes, err := decodePolygonalGeoJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("service area %s: %w", cityGeoJSONPath, err)
	}
	return NewServiceArea(shapes, margin)
}

// NewServiceArea builds a service area from outline polygons.
func NewServiceArea(outline []geom.T, margin float64) (*ServiceArea, error) {
	if margin < 0 || math.IsNaN(margin) || math.IsInf(margin, 0) {
		return nil, fmt.Errorf("geo: service area margin %v must be a finite number of metres >= 0", margin)
	}
	var shapes []*shape
	for _, g := range outline {
		s, err := newShape(g)
		if err != nil {
			return nil, err
		}
		if len(s.polys) > 0 {
			shapes = append(shapes, s)
		}
	}
	if len(shapes) == 0 {
		return nil, errors.New("geo: service area outline has no polygon")
	}
	a := &ServiceArea{margin: margin, grid: newAreaGrid(shapes, 0)}
	box := emptyBBox()
	for _, s := range shapes {
		box.union(s.box)
	}
	// Degrees of latitude and (at the outline's most poleward latitude, where
	// a degree of longitude is shortest) of longitude covering the margin.
	dLat := margin / (earthRadiusM * degToRad)
	maxAbsLat := math.Min(89, math.Max(math.Abs(box.minY), math.Abs(box.maxY))+dLat)
	dLon := dLat / math.Cos(maxAbsLat*degToRad)
	a.outer = bbox{box.minX - dLon, box.minY - dLat, box.maxX + dLon, box.maxY + dLat}
	if margin == 0 {
		return a, nil
	}
	// Bucket the outline's edges, cells about the margin's size (within
	// bounds) so a query scans few cells.
	a.bucketDeg = math.Max(dLat, (a.outer.maxX-a.outer.minX)/512)
	a.bx = max(1, int(math.Ceil((a.outer.maxX-a.outer.minX)/a.bucketDeg)))
	a.by = max(1, int(math.Ceil((a.outer.maxY-a.outer.minY)/a.bucketDeg)))
	per := make([][]edge, a.bx*a.by)
	for _, s := range shapes {
		for _, p := range s.polys {
			for _, r := range p.rings {
				for b := 0; b < r.nb; b++ {
					for _, e := range r.edges[r.bandOff[b]:r.bandOff[b+1]] {
						if r.band(math.Min(e.y1, e.y2)) != b {
							continue
						}
						x0, x1 := a.bucketX(math.Min(e.x1, e.x2)), a.bucketX(math.Max(e.x1, e.x2))
						y0, y1 := a.bucketY(math.Min(e.y1, e.y2)), a.bucketY(math.Max(e.y1, e.y2))
						for y := y0; y <= y1; y++ {
							for x := x0; x <= x1; x++ {
								per[y*a.bx+x] = append(per[y*a.bx+x], e)
							}
						}
					}
				}
			}
		}
	}
	a.bucketOff = make([]uint32, len(per)+1)
	for i, l := range per {
		a.buckets = append(a.buckets, l...)
		a.bucketOff[i+1] = uint32(len(a.buckets))
	}
	return a, nil
}

func (a *ServiceArea) bucketX(x float64) int {
	return clampInt(int(math.Floor((x-a.outer.minX)/a.bucketDeg)), 0, a.bx-1)
}

func (a *ServiceArea) bucketY(y float64) int {
	return clampInt(int(math.Floor((y-a.outer.minY)/a.bucketDeg)), 0, a.by-1)
}

// Margin is the configured margin in metres.
func (a *ServiceArea) Margin() float64 { return a.margin }

// Contains reports whether (lon, lat) is inside the outline, on it, or
// within the margin of it. Distances use a local equirectangular projection
// at the point's latitude (error well under 1% at city scale).
func (a *ServiceArea) Contains(lon, lat float64) bool {
	if !a.outer.contains(lon, lat) {
		return false
	}
	if a.grid.first(lon, lat) >= 0 {
		return true
	}
	if a.margin == 0 {
		return false
	}
	kx := math.Cos(lat*degToRad) * earthRadiusM * degToRad // metres per degree of longitude
	ky := earthRadiusM * degToRad
	m2 := a.margin * a.margin
	dLat := a.margin / ky
	dLon := a.margin / kx
	x0, x1 := a.bucketX(lon-dLon), a.bucketX(lon+dLon)
	y0, y1 := a.bucketY(lat-dLat), a.bucketY(lat+dLat)
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			c := y*a.bx + x
			for _, e := range a.buckets[a.bucketOff[c]:a.bucketOff[c+1]] {
				if segDist2(e, lon, lat, kx, ky) <= m2 {
					return true
				}
			}
		}
	}
	return false
}

// segDist2 is the squared distance in metres from the point to the segment,
// in a local projection scaled by kx, ky metres per degree.
func segDist2(e edge, px, py, kx, ky float64) float64 {
	ax, ay := (e.x1-px)*kx, (e.y1-py)*ky
	bx, by := (e.x2-px)*kx, (e.y2-py)*ky
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, -(ax*dx+ay*dy)/l2))
	}
	cx, cy := ax+t*dx, ay+t*dy
	return cx*cx + cy*cy
}

// decodePolygonalGeoJSON returns the Polygon and MultiPolygon geometries of
// a FeatureCollection, a Feature or a bare geometry.
func decodePolygonalGeoJSON(raw []byte) ([]geom.T, error) {
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("decode GeoJSON: %w", err)
	}
	var gs []geom.T
	switch probe.Type {
	case "FeatureCollection":
		var fc geojson.FeatureCollection
		if err := json.Unmarshal(raw, &fc); err != nil {
			return nil, fmt.Errorf("decode GeoJSON: %w", err)
		}
		for _, f := range fc.Features {
			gs = append(gs, f.Geometry)
		}
	case "Feature":
		var f geojson.Feature
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("decode GeoJSON: %w", err)
		}
		gs = append(gs, f.Geometry)
	default:
		var g geom.T
		if err := geojson.Unmarshal(raw, &g); err != nil {
			return nil, fmt.Errorf("decode GeoJSON: %w", err)
		}
		gs = append(gs, g)
	}
	out := gs[:0]
	for _, g := range gs {
		switch g.(type) {
		case *geom.Polygon, *geom.MultiPolygon:
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no Polygon or MultiPolygon")
	}
	return out, nil
}
