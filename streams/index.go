package streams

import "math"

// updateIndex finds the groups a device or unit update may concern
// without visiting every client. Clients with the same view (and the same
// frames: batch or not) share a group (group.go), filed once for all of
// them: a view with wards under each of its wards, a view with only a
// bounding box under the grid cells the box covers, any other view
// (city-wide, or a box too large to file) in one set. Each group is filed
// in one of the three, so an update, which has one ward and one cell,
// reaches a group at most once; the group's view still decides (update).
// Guarded by Gateway.mu.
type updateIndex struct {
	any    map[*group]struct{}
	ward   map[string]map[*group]struct{}
	cell   map[cellKey]map[*group]struct{}
	filing map[*group]filing
	// groups by view key; member tells a client's group.
	groups map[string]*group
	member map[*client]*group
}

type cellKey struct{ x, y int32 }

// filing is where one group is filed.
type filing struct {
	any   bool
	wards []string
	cells []cellKey
}

// cellDeg is the grid cell's side (about 1.1 km at Hanoi); a box of more
// than maxCells cells (a third of the city) is filed as city-wide.
const (
	cellDeg  = 0.01
	maxCells = 2500
)

func cellOf(lon, lat float64) cellKey {
	return cellKey{int32(math.Floor(lon / cellDeg)), int32(math.Floor(lat / cellDeg))}
}

func newUpdateIndex() *updateIndex {
	return &updateIndex{any: map[*group]struct{}{}, ward: map[string]map[*group]struct{}{},
		cell: map[cellKey]map[*group]struct{}{}, filing: map[*group]filing{},
		groups: map[string]*group{}, member: map[*client]*group{}}
}

// file puts c in the group of v, leaving the one it was in; a view
// without device or unit layers is in none.
func (x *updateIndex) file(c *client, v *view) {
	x.remove(c)
	if v == nil || !(v.has(LayerDevices) || v.has(LayerUnits)) {
		return
	}
	k := v.updateKey()
	grp := x.groups[k]
	if grp == nil {
		grp = newGroup(v)
		x.groups[k] = grp
		x.fileGroup(grp, v)
	}
	grp.members[c] = struct{}{}
	x.member[c] = grp
}

func (x *updateIndex) fileGroup(c *group, v *view) {
	var f filing
	switch {
	case v.wards != nil:
		for w := range v.wards {
			f.wards = append(f.wards, w)
			add(x.ward, w, c)
		}
	case v.bbox != nil:
		lo, hi := cellOf(v.bbox[0], v.bbox[1]), cellOf(v.bbox[2], v.bbox[3])
		if n := (int64(hi.x) - int64(lo.x) + 1) * (int64(hi.y) - int64(lo.y) + 1); n > maxCells {
			f.any = true
			break
		}
		for cx := lo.x; cx <= hi.x; cx++ {
			for cy := lo.y; cy <= hi.y; cy++ {
				k := cellKey{cx, cy}
				f.cells = append(f.cells, k)
				add(x.cell, k, c)
			}
		}
	default:
		f.any = true
	}
	if f.any {
		x.any[c] = struct{}{}
	}
	x.filing[c] = f
}

// remove takes c out of its group, which goes when it has no member
// left.
func (x *updateIndex) remove(c *client) {
	grp := x.member[c]
	if grp == nil {
		return
	}
	delete(x.member, c)
	delete(grp.members, c)
	if len(grp.members) == 0 {
		delete(x.groups, grp.key)
		x.removeGroup(grp)
	}
}

func (x *updateIndex) removeGroup(c *group) {
	f, ok := x.filing[c]
	if !ok {
		return
	}
	delete(x.filing, c)
	delete(x.any, c)
	for _, w := range f.wards {
		drop(x.ward, w, c)
	}
	for _, k := range f.cells {
		drop(x.cell, k, c)
	}
}

// each calls fn for every group that may see a thing at lon, lat in
// ward.
func (x *updateIndex) each(ward string, lon, lat float64, fn func(*group)) {
	for c := range x.any {
		fn(c)
	}
	for c := range x.ward[ward] {
		fn(c)
	}
	for c := range x.cell[cellOf(lon, lat)] {
		fn(c)
	}
}

func add[K comparable](m map[K]map[*group]struct{}, k K, c *group) {
	s := m[k]
	if s == nil {
		s = map[*group]struct{}{}
		m[k] = s
	}
	s[c] = struct{}{}
}

func drop[K comparable](m map[K]map[*group]struct{}, k K, c *group) {
	if s := m[k]; s != nil {
		delete(s, c)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}
