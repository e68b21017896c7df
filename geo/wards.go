package geo

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Ward is one of Hanoi's administrative units (phường or xã) in force since
// 2025-07-01, as published in ../shared/data/hanoi/wards.geojson.
type Ward struct {
	Code       string // official 5-digit unit code, e.g. "00004"
	Name       string // Vietnamese name, e.g. "Phường Ba Đình"
	NameEn     string
	Kind       string // "ward" or "commune"
	Population int
	Geom       *geom.MultiPolygon
}

// LoadWards reads a GeoJSON FeatureCollection of wards. Polygons are promoted
// to MultiPolygons so callers handle one shape.
func LoadWards(path string) ([]Ward, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read wards: %w", err)
	}
	var fc geojson.FeatureCollection
	if err := json.Unmarshal(raw, &fc); err != nil {
		return nil, fmt.Errorf("decode wards %s: %w", path, err)
	}
	wards := make([]Ward, 0, len(fc.Features))
	for i, f := range fc.Features {
		w := Ward{
			Code:   str(f.Properties["code"]),
			Name:   str(f.Properties["name"]),
			NameEn: str(f.Properties["name_en"]),
			Kind:   str(f.Properties["kind"]),
		}
		if p, ok := f.Properties["population"].(float64); ok {
			w.Population = int(p)
		}
		if w.Code == "" {
			return nil, fmt.Errorf("wards %s: feature %d has no code", path, i)
		}
		switch g := f.Geometry.(type) {
		case *geom.MultiPolygon:
			w.Geom = g
		case *geom.Polygon:
			mp := geom.NewMultiPolygon(geom.XY).SetSRID(4326)
			if err := mp.Push(g); err != nil {
				return nil, fmt.Errorf("wards %s: feature %s: %w", path, w.Code, err)
			}
			w.Geom = mp
		default:
			return nil, fmt.Errorf("wards %s: feature %s: geometry %T is not a polygon", path, w.Code, f.Geometry)
		}
		wards = append(wards, w)
	}
	return wards, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
