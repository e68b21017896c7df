package geo

import "sort"

// WardIndex answers "which ward covers this point" in memory. It is
// immutable after NewWardIndex and safe for concurrent use; Lookup does not
// allocate.
//
// A point on a border shared by several wards gets the ward with the lowest
// code among those covering it, so every instance and every replay gives the
// same answer. "Covering" means exactly what PostGIS ST_Covers(ward, point)
// answers (see pip.go).
//
// Layout: a uniform grid over the wards' extent. A cell that no ward
// boundary comes near is "pure": all its points have the same answer, stored
// in the cell, so most lookups are one multiply-and-load. A cell crossed by
// boundaries keeps the short list of wards that may cover points in it, in
// code order, each marked as covering the whole cell or needing the exact
// test against that ward's band-indexed rings.
type WardIndex struct {
	wards []indexedWard // sorted by code
	grid  areaGrid
}

type indexedWard struct {
	code  string
	shape *shape
}

// NewWardIndex indexes wards. Wards whose geometry is missing are ignored;
// duplicate codes keep the first.
func NewWardIndex(wards []Ward) *WardIndex {
	ix := &WardIndex{}
	seen := map[string]bool{}
	for _, w := range wards {
		if w.Geom == nil || seen[w.Code] {
			continue
		}
		s, err := newShape(w.Geom)
		if err != nil || len(s.polys) == 0 {
			continue
		}
		seen[w.Code] = true
		ix.wards = append(ix.wards, indexedWard{code: w.Code, shape: s})
	}
	sort.Slice(ix.wards, func(i, j int) bool { return ix.wards[i].code < ix.wards[j].code })
	shapes := make([]*shape, len(ix.wards))
	for i := range ix.wards {
		shapes[i] = ix.wards[i].shape
	}
	ix.grid = newAreaGrid(shapes, 0)
	return ix
}

// Lookup returns the code of the ward covering (lon, lat). ok is false
// outside every ward (and for NaN or infinite input).
func (ix *WardIndex) Lookup(lon, lat float64) (code string, ok bool) {
	i := ix.grid.first(lon, lat)
	if i < 0 {
		return "", false
	}
	return ix.wards[i].code, true
}

// Len is the number of indexed wards.
func (ix *WardIndex) Len() int { return len(ix.wards) }
