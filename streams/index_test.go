package streams

import (
	"slices"
	"testing"
)

func TestUpdateIndexFindsEachInterestedClientOnce(t *testing.T) {
	x := newUpdateIndex()
	cityWide, ward, box, hugeBox, incidentsOnly := &client{}, &client{}, &client{}, &client{}, &client{}
	x.file(cityWide, &view{layers: [4]bool{true, true, true, false}})
	x.file(ward, &view{layers: [4]bool{false, true, false, false}, wards: map[string]bool{"00004": true, "00008": true}})
	x.file(box, &view{layers: [4]bool{false, false, true, false}, bbox: &[4]float64{105.83, 21.01, 105.87, 21.05}})
	x.file(hugeBox, &view{layers: [4]bool{false, true, false, false}, bbox: &[4]float64{105.0, 20.0, 107.0, 22.0}})
	x.file(incidentsOnly, &view{layers: [4]bool{true, false, false, false}})
	names := map[*client]string{cityWide: "city", ward: "ward", box: "box", hugeBox: "huge", incidentsOnly: "incidents"}
	got := func(w string, lon, lat float64) []string {
		var out []string
		x.each(w, lon, lat, func(g *group) {
			for c := range g.members {
				out = append(out, names[c])
			}
		})
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		ward     string
		lon, lat float64
		want     []string
	}{
		{"00004", 105.85, 21.03, []string{"box", "city", "huge", "ward"}},
		{"00008", 105.70, 21.20, []string{"city", "huge", "ward"}},
		{"00099", 105.849, 21.049, []string{"box", "city", "huge"}},
		{"", 106.5, 20.5, []string{"city", "huge"}},
	} {
		if g := got(tc.ward, tc.lon, tc.lat); !slices.Equal(g, tc.want) {
			t.Errorf("update in %q at %v,%v reaches %v, want %v", tc.ward, tc.lon, tc.lat, g, tc.want)
		}
	}
	// A new view replaces the old filing; removal empties the index.
	x.file(ward, &view{layers: [4]bool{false, true, false, false}, wards: map[string]bool{"00099": true}})
	if g := got("00004", 105.85, 21.03); slices.Contains(g, "ward") {
		t.Errorf("a client that left ward 00004 still gets its updates: %v", g)
	}
	for c := range names {
		x.remove(c)
	}
	if len(x.any)+len(x.ward)+len(x.cell)+len(x.filing)+len(x.groups)+len(x.member) != 0 {
		t.Errorf("index not empty after every client left: %d any, %d wards, %d cells, %d filings, %d groups, %d members",
			len(x.any), len(x.ward), len(x.cell), len(x.filing), len(x.groups), len(x.member))
	}
}

// Clients with the same view share one group, filed once, batch clients
// apart from the others; the group goes when its last member leaves or
// changes view.
func TestUpdateIndexGroupsClientsByView(t *testing.T) {
	x := newUpdateIndex()
	wardView := func(w string) *view {
		return &view{layers: [4]bool{true, true, true, false}, wards: map[string]bool{w: true}, batch: true}
	}
	a, b, c, single := &client{}, &client{}, &client{}, &client{}
	x.file(a, wardView("00004"))
	x.file(b, wardView("00004"))
	x.file(c, wardView("00008"))
	count := func(w string) (groups, clients int) {
		x.each(w, 105.85, 21.03, func(g *group) {
			if g.view.batch {
				groups++
				clients += len(g.members)
			}
		})
		return
	}
	contract := wardView("00004")
	contract.batch = false
	x.file(single, contract)
	if grp := x.member[single]; grp == nil || grp == x.member[a] || len(grp.members) != 1 {
		t.Errorf("a client without batch frames shares the batch clients' group (or has none)")
	}
	x.remove(single)
	if g, n := count("00004"); g != 1 || n != 2 {
		t.Errorf("ward 00004: %d groups with %d members, want 1 with 2", g, n)
	}
	x.file(b, wardView("00008")) // b pans to the other ward
	if g, n := count("00004"); g != 1 || n != 1 {
		t.Errorf("after b left 00004: %d groups with %d members, want 1 with 1", g, n)
	}
	if g, n := count("00008"); g != 1 || n != 2 {
		t.Errorf("ward 00008: %d groups with %d members, want 1 with 2", g, n)
	}
	for _, cl := range []*client{a, b, c} {
		x.remove(cl)
	}
	if len(x.groups)+len(x.member)+len(x.filing)+len(x.ward) != 0 {
		t.Errorf("index not empty: %d groups, %d members, %d filings, %d wards", len(x.groups), len(x.member), len(x.filing), len(x.ward))
	}
}
