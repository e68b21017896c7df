package streams

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"ioc/api"
)

// view is a client's effective filter: its subscribe narrowed to its
// user's ward scope. Immutable once made; a new subscribe makes a new one.
type view struct {
	layers [4]bool // incidents, devices, units, wards
	bbox   *[4]float64
	// wards: nil means every ward (and places outside every ward); else
	// only these.
	wards  map[string]bool
	minSev int
	batch  bool // device and unit updates as one frame per round
}

func layerIndex(l string) int {
	return slices.Index([]string{LayerIncidents, LayerDevices, LayerUnits, LayerWards}, l)
}

// newView narrows s to the caller's scope. ok is false when s asks only
// for wards outside it.
func newView(s Subscribe, c api.Caller) (*view, bool) {
	v := &view{minSev: max(severityRank(s.MinSeverity), 0), batch: s.Batch}
	for _, l := range s.Layers {
		v.layers[layerIndex(l)] = true
	}
	if s.BBox != nil {
		v.bbox = &[4]float64{s.BBox[0], s.BBox[1], s.BBox[2], s.BBox[3]}
	}
	switch {
	case len(s.Wards) > 0:
		v.wards = map[string]bool{}
		for _, w := range s.Wards {
			if c.SeesWard(w) {
				v.wards[w] = true
			}
		}
		if len(v.wards) == 0 {
			return nil, false
		}
	case c.Scoped():
		v.wards = map[string]bool{}
		for _, w := range c.Wards {
			v.wards[w] = true
		}
	}
	return v, true
}

func (v *view) has(layer string) bool { return v.layers[layerIndex(layer)] }

// wardList is the view's wards for a query (nil: every ward).
func (v *view) wardList() []string {
	if v.wards == nil {
		return nil
	}
	out := make([]string, 0, len(v.wards))
	for w := range v.wards {
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// incidentFilterKey names what the view asks of incidents: views with
// the same key see the same incidents.
func (v *view) incidentFilterKey() string {
	k := strconv.Itoa(v.minSev) + "|" + strings.Join(v.wardList(), ",") + "|"
	if b := v.bbox; b != nil {
		for _, x := range b {
			k += strconv.FormatFloat(x, 'g', -1, 64) + ","
		}
	}
	return k
}

// updateKey names what the view asks of device and unit updates, and in
// which frames: views with the same key share one group (group.go).
func (v *view) updateKey() string {
	k := strings.Join(v.wardList(), ",") + "|"
	if v.batch {
		k += "batch|"
	}
	for _, l := range []string{LayerDevices, LayerUnits} {
		if v.has(l) {
			k += l + ","
		}
	}
	k += "|"
	if b := v.bbox; b != nil {
		for _, x := range b {
			k += strconv.FormatFloat(x, 'g', -1, 64) + ","
		}
	}
	return k
}

func (v *view) bboxSlice() []float64 {
	if v.bbox == nil {
		return nil
	}
	return v.bbox[:]
}

// place reports whether a thing at lon, lat in ward is in the view.
func (v *view) place(ward string, lon, lat float64) bool {
	if v.wards != nil && !v.wards[ward] {
		return false
	}
	if b := v.bbox; b != nil && (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) {
		return false
	}
	return true
}

// incidentKey is what a view needs of an incident event, decoded once per
// event for every client.
type incidentKey struct {
	ward     string
	lon, lat float64
	sev      int
}

func keyOf(raw json.RawMessage) incidentKey {
	var x struct {
		Severity string `json:"severity"`
		Location struct {
			Coordinates [2]float64 `json:"coordinates"`
		} `json:"location"`
		Ward *struct {
			Code string `json:"code"`
		} `json:"ward"`
	}
	_ = json.Unmarshal(raw, &x) // our own encoding; a zero key matches only unscoped views
	k := incidentKey{lon: x.Location.Coordinates[0], lat: x.Location.Coordinates[1], sev: severityRank(x.Severity)}
	if x.Ward != nil {
		k.ward = x.Ward.Code
	}
	return k
}

func (v *view) incident(k incidentKey) bool {
	return v.layers[0] && k.sev >= v.minSev && v.place(k.ward, k.lon, k.lat)
}
