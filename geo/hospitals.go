package geo

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Hospital is one hospital of the shared reference data (OpenStreetMap).
type Hospital struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Emergency bool    `json:"emergency"` // OSM marks an emergency department
	Lon       float64 `json:"-"`
	Lat       float64 `json:"-"`
	Ward      string  `json:"ward,omitempty"`
}

// NearHospital is a hospital with its distance from the query point.
type NearHospital struct {
	Hospital
	DistanceM float64
}

// Hospitals is the immutable list of hospitals; safe for concurrent use.
type Hospitals struct {
	list []Hospital
}

// LoadHospitals reads a GeoJSON FeatureCollection of Points with "name"
// and "emergency" properties. wards, if not nil, tags each with its ward.
func LoadHospitals(path string, wards *WardIndex) (*Hospitals, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hospitals: %w", err)
	}
	var fc geojson.FeatureCollection
	if err := json.Unmarshal(raw, &fc); err != nil {
		return nil, fmt.Errorf("decode hospitals %s: %w", path, err)
	}
	h := &Hospitals{}
	for i, f := range fc.Features {
		p, ok := f.Geometry.(*geom.Point)
		if !ok {
			return nil, fmt.Errorf("hospitals %s: feature %d is %T, want a Point", path, i, f.Geometry)
		}
		x := Hospital{ID: f.ID, Name: str(f.Properties["name"]), Lon: p.X(), Lat: p.Y()}
		x.Emergency, _ = f.Properties["emergency"].(bool)
		if x.ID == "" {
			x.ID = fmt.Sprintf("hospital-%d", i)
		}
		if wards != nil {
			x.Ward, _ = wards.Lookup(x.Lon, x.Lat)
		}
		h.list = append(h.list, x)
	}
	return h, nil
}

// All returns every hospital in file order.
func (h *Hospitals) All() []Hospital { return slices.Clone(h.list) }

// Nearest returns up to limit hospitals nearest (lon, lat), emergency
// departments only if emergencyOnly.
func (h *Hospitals) Nearest(lon, lat float64, emergencyOnly bool, limit int) []NearHospital {
	var out []NearHospital
	for _, x := range h.list {
		if emergencyOnly && !x.Emergency {
			continue
		}
		out = append(out, NearHospital{Hospital: x, DistanceM: HaversineM(lon, lat, x.Lon, x.Lat)})
	}
	slices.SortFunc(out, func(a, b NearHospital) int {
		if c := cmp.Compare(a.DistanceM, b.DistanceM); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
