package geo

import (
	"cmp"
	"math"
	"slices"
)

// fenceEntry is one geofence compiled for lookups.
type fenceEntry struct {
	fence *Geofence
	box   bbox
	shape *shape // polygon fences
	// circle fences: centre in radians, and the haversine threshold
	// sin²(radius / 2R): the point is inside iff hav(d) <= that.
	lonR, latR, cosLat, havMax float64
	// Quick decision in a local flat projection (degrees scaled to metres
	// at the centre's latitude): inside below in2, outside above out2
	// (squared metres); only the ±1% band in between runs the haversine.
	kx, ky, in2, out2 float64
}

func compileFence(f *Geofence) (*fenceEntry, error) {
	e := &fenceEntry{fence: f}
	if f.Shape == "circle" {
		e.lonR, e.latR = f.Center[0]*degToRad, f.Center[1]*degToRad
		e.cosLat = math.Cos(e.latR)
		s := math.Sin(f.RadiusM / (2 * earthRadiusM))
		e.havMax = s * s
		e.ky = earthRadiusM * degToRad
		e.kx = e.ky * e.cosLat
		// The flat distance errs by about tan(lat)·Δlat (relative); the band
		// is twice that plus 0.5%. Near the poles, always use the haversine.
		dLatR := f.RadiusM / earthRadiusM
		if far := math.Abs(e.latR) + dLatR; far < 70*degToRad {
			m := 0.005 + 2*math.Tan(far)*dLatR
			e.in2 = (f.RadiusM * (1 - m)) * (f.RadiusM * (1 - m))
			e.out2 = (f.RadiusM * (1 + m)) * (f.RadiusM * (1 + m))
		} else {
			e.in2, e.out2 = -1, math.Inf(1)
		}
		// Box: the radius in degrees of latitude, and of longitude at the
		// circle's most poleward latitude, widened a little for rounding.
		dLat := f.RadiusM / (earthRadiusM * degToRad) * 1.0001
		far := math.Min(89.9, math.Abs(f.Center[1])+dLat)
		dLon := dLat / math.Cos(far*degToRad)
		e.box = bbox{f.Center[0] - dLon, f.Center[1] - dLat, f.Center[0] + dLon, f.Center[1] + dLat}
		return e, nil
	}
	s, err := newShape(f.Polygon)
	if err != nil {
		return nil, err
	}
	e.shape, e.box = s, s.box
	return e, nil
}

// contains reports whether the fence covers the point (boundary included;
// circles by great-circle distance on the PostGIS sphere).
func (e *fenceEntry) contains(lon, lat float64) bool {
	if e.shape != nil {
		return e.shape.covers(lon, lat)
	}
	if !e.box.contains(lon, lat) {
		return false
	}
	dx, dy := (lon-e.fence.Center[0])*e.kx, (lat-e.fence.Center[1])*e.ky
	d2 := dx*dx + dy*dy
	if d2 < e.in2 {
		return true
	}
	if d2 > e.out2 {
		return false
	}
	latR := lat * degToRad
	sdLat := math.Sin((latR - e.latR) / 2)
	sdLon := math.Sin((lon*degToRad - e.lonR) / 2)
	hav := sdLat*sdLat + e.cosLat*math.Cos(latR)*sdLon*sdLon
	return hav <= e.havMax
}

// fenceSnapshot is an immutable geofence index: the entries and an
// STR-packed R-tree over their boxes.
type fenceSnapshot struct {
	version int64
	entries []*fenceEntry
	byID    map[int64]*fenceEntry
	tree    strTree
}

func newFenceSnapshot(version int64, entries []*fenceEntry) *fenceSnapshot {
	s := &fenceSnapshot{version: version, entries: entries, byID: make(map[int64]*fenceEntry, len(entries))}
	boxes := make([]bbox, len(entries))
	for i, e := range entries {
		boxes[i] = e.box
		s.byID[e.fence.ID] = e
	}
	s.tree = newSTRTree(boxes)
	return s
}

// appendContaining appends the fences containing the point to dst, in
// id order within what the tree yields (callers sort if they need to).
func (s *fenceSnapshot) appendContaining(dst []*Geofence, lon, lat float64) []*Geofence {
	t := &s.tree
	if t.root < 0 {
		return dst
	}
	// The same walk as strTree.search, written out so the per-item test
	// inlines (a closure call per candidate costs a fifth of the lookup).
	var stack [64]int32
	sp := 0
	if t.nodes[t.root].box.contains(lon, lat) {
		stack[0] = t.root
		sp = 1
	}
	for sp > 0 {
		sp--
		n := &t.nodes[stack[sp]]
		if n.leaf {
			for _, it := range t.items[n.first : n.first+n.n] {
				if e := s.entries[it]; e.box.contains(lon, lat) && e.contains(lon, lat) {
					dst = append(dst, e.fence)
				}
			}
			continue
		}
		for c := n.first; c < n.first+n.n; c++ {
			if t.nodes[c].box.contains(lon, lat) {
				if sp == len(stack) {
					t.searchFrom(c, lon, lat, func(it int32) {
						if e := s.entries[it]; e.contains(lon, lat) {
							dst = append(dst, e.fence)
						}
					})
					continue
				}
				stack[sp] = c
				sp++
			}
		}
	}
	return dst
}

// strTree is a static R-tree packed with the Sort-Tile-Recursive method.
// Nodes are stored level by level; a node's children are contiguous.
type strTree struct {
	nodes []strNode
	items []int32 // item indices in leaf order
	root  int32   // -1 when empty
}

type strNode struct {
	box   bbox
	first int32 // first child node, or first position in items for a leaf
	n     int32
	leaf  bool
}

const strFanout = 16

func newSTRTree(boxes []bbox) strTree {
	t := strTree{root: -1}
	if len(boxes) == 0 {
		return t
	}
	t.items = make([]int32, len(boxes))
	for i := range t.items {
		t.items[i] = int32(i)
	}
	center := func(b bbox) (float64, float64) { return (b.minX + b.maxX) / 2, (b.minY + b.maxY) / 2 }
	strSort(t.items, func(i int32) (float64, float64) { return center(boxes[i]) })
	// Leaves over items.
	var level []strNode
	for start := 0; start < len(t.items); start += strFanout {
		end := min(start+strFanout, len(t.items))
		n := strNode{box: emptyBBox(), first: int32(start), n: int32(end - start), leaf: true}
		for _, it := range t.items[start:end] {
			n.box.union(boxes[it])
		}
		level = append(level, n)
	}
	// Upper levels: sort the level in STR order, store it, group it.
	for len(level) > 1 {
		idx := make([]int32, len(level))
		for i := range idx {
			idx[i] = int32(i)
		}
		strSort(idx, func(i int32) (float64, float64) { return center(level[i].box) })
		base := int32(len(t.nodes))
		for _, i := range idx {
			t.nodes = append(t.nodes, level[i])
		}
		var up []strNode
		for start := 0; start < len(idx); start += strFanout {
			end := min(start+strFanout, len(idx))
			n := strNode{box: emptyBBox(), first: base + int32(start), n: int32(end - start)}
			for _, c := range t.nodes[base+int32(start) : base+int32(end)] {
				n.box.union(c.box)
			}
			up = append(up, n)
		}
		level = up
	}
	t.root = int32(len(t.nodes))
	t.nodes = append(t.nodes, level[0])
	return t
}

// strSort orders ids into vertical slices by x, each slice sorted by y.
func strSort(ids []int32, at func(int32) (float64, float64)) {
	slices.SortFunc(ids, func(a, b int32) int {
		ax, _ := at(a)
		bx, _ := at(b)
		return cmp.Compare(ax, bx)
	})
	leaves := (len(ids) + strFanout - 1) / strFanout
	slabs := int(math.Ceil(math.Sqrt(float64(leaves))))
	per := slabs * strFanout
	for start := 0; start < len(ids); start += per {
		end := min(start+per, len(ids))
		slices.SortFunc(ids[start:end], func(a, b int32) int {
			_, ay := at(a)
			_, by := at(b)
			return cmp.Compare(ay, by)
		})
	}
}

// search calls fn for each item whose box contains the point.
func (t *strTree) search(x, y float64, fn func(int32)) {
	if t.root < 0 {
		return
	}
	var stack [64]int32
	sp := 0
	stack[sp] = t.root
	sp++
	for sp > 0 {
		sp--
		n := &t.nodes[stack[sp]]
		if !n.box.contains(x, y) {
			continue
		}
		if n.leaf {
			for _, it := range t.items[n.first : n.first+n.n] {
				fn(it)
			}
			continue
		}
		for c := n.first; c < n.first+n.n; c++ {
			if t.nodes[c].box.contains(x, y) {
				if sp == len(stack) {
					// Deeper than any tree this package builds (16^63 items);
					// walk the rest recursively rather than fail.
					t.searchFrom(c, x, y, fn)
					continue
				}
				stack[sp] = c
				sp++
			}
		}
	}
}

func (t *strTree) searchFrom(i int32, x, y float64, fn func(int32)) {
	n := &t.nodes[i]
	if !n.box.contains(x, y) {
		return
	}
	if n.leaf {
		for _, it := range t.items[n.first : n.first+n.n] {
			fn(it)
		}
		return
	}
	for c := n.first; c < n.first+n.n; c++ {
		t.searchFrom(c, x, y, fn)
	}
}
