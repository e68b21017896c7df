package geo

import (
	"fmt"
	"math"

	"github.com/twpayne/go-geom"
)

// This file holds the exact point-in-polygon predicate every index in the
// package bottoms out in. It mirrors PostGIS 3.3's ST_Covers short-circuit
// for a point against a (multi)polygon (lwgeom_functions_analytic.c:
// point_in_ring_rtree, point_in_multipolygon_rtree): a winding number with
// the plain double determinant, a point counting as on the boundary only when
// that determinant is exactly 0.0 and it lies in the segment's bounding box,
// and zero-length segments skipped. Doing the same arithmetic in the same
// order is what makes the in-memory answer agree with PostGIS bit for bit,
// including points on shared borders, rather than "almost always".
//
// To stay fast each ring keeps its edges bucketed into horizontal bands: a
// query only looks at the edges whose y-range overlaps the band of the
// point. Edges whose y-range does not contain the point's y contribute
// nothing to the PostGIS loop either (no winding change, and "on segment"
// needs y in range), so skipping them does not change the result.

// edge is one ring segment, kept in ring order (x1,y1) -> (x2,y2): the
// winding rule depends on the direction.
type edge struct{ x1, y1, x2, y2 float64 }

// bbox is an axis-aligned box in lon/lat degrees.
type bbox struct{ minX, minY, maxX, maxY float64 }

func emptyBBox() bbox {
	return bbox{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
}

func (b *bbox) extend(x, y float64) {
	b.minX = math.Min(b.minX, x)
	b.minY = math.Min(b.minY, y)
	b.maxX = math.Max(b.maxX, x)
	b.maxY = math.Max(b.maxY, y)
}

func (b *bbox) union(o bbox) {
	b.minX = math.Min(b.minX, o.minX)
	b.minY = math.Min(b.minY, o.minY)
	b.maxX = math.Max(b.maxX, o.maxX)
	b.maxY = math.Max(b.maxY, o.maxY)
}

// contains reports whether (x, y) is in the closed box; false for NaN.
func (b bbox) contains(x, y float64) bool {
	return x >= b.minX && x <= b.maxX && y >= b.minY && y <= b.maxY
}

func (b bbox) intersects(o bbox) bool {
	return b.minX <= o.maxX && o.minX <= b.maxX && b.minY <= o.maxY && o.minY <= b.maxY
}

// ring is one closed ring with its band index.
type ring struct {
	box     bbox
	invH    float64  // bands per degree of latitude
	nb      int      // number of bands
	bandOff []uint32 // edges of band i are edges[bandOff[i]:bandOff[i+1]]
	edges   []edge
}

// Where a point is relative to a ring or polygon, as in PostGIS.
const (
	outside  = -1
	boundary = 0
	inside   = 1
)

// newRing indexes the ring given as flat coordinates with the given stride
// (first and last point equal, as GeoJSON and PostGIS require).
func newRing(flat []float64, stride int) ring {
	var r ring
	r.box = emptyBBox()
	segs := make([]edge, 0, len(flat)/stride)
	for i := 0; i+stride < len(flat); i += stride {
		e := edge{flat[i], flat[i+1], flat[i+stride], flat[i+stride+1]}
		r.box.extend(e.x1, e.y1)
		r.box.extend(e.x2, e.y2)
		// Same zero-length test as PostGIS (which skips these in the loop).
		dx, dy := e.x2-e.x1, e.y2-e.y1
		if float64(dx*dx)+float64(dy*dy) < 1e-12*1e-12 {
			continue
		}
		segs = append(segs, e)
	}
	if len(segs) == 0 {
		r.nb = 1
		r.bandOff = []uint32{0, 0}
		return r
	}
	// About one band per edge keeps a band to a handful of edges for the
	// ward shapes; capped so a huge ring stays bounded in memory.
	r.nb = min(max(len(segs), 1), 8192)
	height := r.box.maxY - r.box.minY
	if height > 0 {
		r.invH = float64(r.nb) / height
	}
	counts := make([]uint32, r.nb+1)
	for _, e := range segs {
		lo, hi := r.band(math.Min(e.y1, e.y2)), r.band(math.Max(e.y1, e.y2))
		for b := lo; b <= hi; b++ {
			counts[b+1]++
		}
	}
	for i := 1; i <= r.nb; i++ {
		counts[i] += counts[i-1]
	}
	r.bandOff = counts
	r.edges = make([]edge, counts[r.nb])
	fill := make([]uint32, r.nb)
	copy(fill, counts[:r.nb])
	for _, e := range segs {
		lo, hi := r.band(math.Min(e.y1, e.y2)), r.band(math.Max(e.y1, e.y2))
		for b := lo; b <= hi; b++ {
			r.edges[fill[b]] = e
			fill[b]++
		}
	}
	return r
}

// band maps a latitude within the ring's box to its band. The expression is
// monotonic in y under IEEE rounding, so an edge spanning y is always filed
// under the band the query computes for y.
func (r *ring) band(y float64) int {
	b := int((y - r.box.minY) * r.invH)
	if b >= r.nb {
		b = r.nb - 1
	}
	if b < 0 {
		b = 0
	}
	return b
}

// locate returns inside, boundary or outside for (px, py), exactly as
// PostGIS's point_in_ring does.
func (r *ring) locate(px, py float64) int {
	if !r.box.contains(px, py) {
		return outside
	}
	b := r.band(py)
	wn := 0
	for _, e := range r.edges[r.bandOff[b]:r.bandOff[b+1]] {
		// The explicit conversions forbid fused multiply-add, which would
		// round differently from PostGIS's C.
		side := float64((e.x2-e.x1)*(py-e.y1)) - float64((px-e.x1)*(e.y2-e.y1))
		if side == 0 && onSegment(e, px, py) {
			return boundary
		}
		if e.y1 <= py && py < e.y2 && side > 0 {
			wn++
		} else if e.y2 <= py && py < e.y1 && side < 0 {
			wn--
		}
	}
	if wn == 0 {
		return outside
	}
	return inside
}

// onSegment is PostGIS's isOnSegment: the point, already known to be on the
// segment's line, lies within the segment's bounding box.
func onSegment(e edge, px, py float64) bool {
	return px >= math.Min(e.x1, e.x2) && px <= math.Max(e.x1, e.x2) &&
		py >= math.Min(e.y1, e.y2) && py <= math.Max(e.y1, e.y2)
}

// polygon is an exterior ring and its holes.
type polygon struct {
	rings []ring // rings[0] is the exterior
}

// locate follows point_in_multipolygon_rtree for one polygon.
func (p *polygon) locate(px, py float64) int {
	switch p.rings[0].locate(px, py) {
	case outside:
		return outside
	case boundary:
		return boundary
	}
	for i := 1; i < len(p.rings); i++ {
		switch p.rings[i].locate(px, py) {
		case inside:
			return outside // in a hole
		case boundary:
			return boundary
		}
	}
	return inside
}

// shape is an indexed Polygon or MultiPolygon.
type shape struct {
	box   bbox
	polys []polygon
}

// covers reports whether the shape covers (px, py): inside or on the
// boundary, as PostGIS ST_Covers(shape, point) answers.
func (s *shape) covers(px, py float64) bool {
	if !s.box.contains(px, py) {
		return false
	}
	for i := range s.polys {
		if s.polys[i].locate(px, py) != outside {
			return true
		}
	}
	return false
}

// vertices counts the shape's indexed segments (for sizing decisions).
func (s *shape) segments() int {
	n := 0
	for _, p := range s.polys {
		for _, r := range p.rings {
			n += int(r.bandOff[r.nb])
		}
	}
	return n
}

// newShape indexes a *geom.Polygon or *geom.MultiPolygon. Empty polygons
// are skipped, as PostGIS does.
func newShape(g geom.T) (*shape, error) {
	s := &shape{box: emptyBBox()}
	add := func(p *geom.Polygon) {
		if p.NumLinearRings() == 0 {
			return
		}
		var poly polygon
		stride := p.Stride()
		flat := p.FlatCoords()
		start := 0
		for _, end := range p.Ends() {
			r := newRing(flat[start:end], stride)
			poly.rings = append(poly.rings, r)
			start = end
		}
		s.box.union(poly.rings[0].box)
		s.polys = append(s.polys, poly)
	}
	switch g := g.(type) {
	case *geom.Polygon:
		add(g)
	case *geom.MultiPolygon:
		for i := 0; i < g.NumPolygons(); i++ {
			add(g.Polygon(i))
		}
	default:
		return nil, fmt.Errorf("geo: cannot index %T, want Polygon or MultiPolygon", g)
	}
	return s, nil
}
