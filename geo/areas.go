package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Attribution goes with everything served from the OpenStreetMap-derived
// reference data (wards, outline, hospitals).
const Attribution = "© OpenStreetMap contributors"

// importBatch is how many areas one INSERT carries.
const importBatch = 200

// ImportAreas replaces the areas table with wards in one transaction, so
// readers see the old set or the new one, never a mix. progress, if not nil,
// is called after each batch with the number written so far.
func ImportAreas(ctx context.Context, pool *pgxpool.Pool, wards []Ward, progress func(done, total int)) error {
	if len(wards) == 0 {
		return errors.New("import areas: no areas in the file")
	}
	seen := make(map[string]bool, len(wards))
	for _, w := range wards {
		if seen[w.Code] {
			return fmt.Errorf("import areas: code %s appears twice", w.Code)
		}
		seen[w.Code] = true
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM areas`); err != nil {
			return fmt.Errorf("import areas: clear: %w", err)
		}
		for start := 0; start < len(wards); start += importBatch {
			end := min(start+importBatch, len(wards))
			n := end - start
			codes, names, namesEn, kinds := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			pops := make([]*int32, n)
			geoms := make([][]byte, n)
			for i, w := range wards[start:end] {
				codes[i], names[i], namesEn[i], kinds[i] = w.Code, w.Name, w.NameEn, w.Kind
				if w.Population > 0 {
					p := int32(w.Population)
					pops[i] = &p
				}
				// A shallow copy: the caller's geometry is not touched.
				g := geom.NewMultiPolygonFlat(geom.XY, w.Geom.FlatCoords(), w.Geom.Endss())
				if w.Geom.Layout() != geom.XY {
					g = to2D(w.Geom)
				}
				b, err := ewkb.Marshal(g.SetSRID(4326), ewkb.NDR)
				if err != nil {
					return fmt.Errorf("import areas: encode %s: %w", w.Code, err)
				}
				geoms[i] = b
			}
			_, err := tx.Exec(ctx, `
				INSERT INTO areas (code, name, name_en, kind, population, geom)
				SELECT c, n, ne, k, p, ST_GeomFromEWKB(g)
				FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::bytea[]) AS u(c, n, ne, k, p, g)`,
				codes, names, namesEn, kinds, pops, geoms)
			if err != nil {
				return fmt.Errorf("import areas: insert: %w", err)
			}
			if progress != nil {
				progress(end, len(wards))
			}
		}
		return nil
	})
}

// to2D drops Z/M so the column's 2D type accepts the geometry.
func to2D(mp *geom.MultiPolygon) *geom.MultiPolygon {
	stride := mp.Stride()
	flat := mp.FlatCoords()
	out := make([]float64, 0, len(flat)/stride*2)
	for i := 0; i+1 < len(flat); i += stride {
		out = append(out, flat[i], flat[i+1])
	}
	endss := mp.Endss()
	newEndss := make([][]int, len(endss))
	for i, ends := range endss {
		newEndss[i] = make([]int, len(ends))
		for j, e := range ends {
			newEndss[i][j] = e / stride * 2
		}
	}
	return geom.NewMultiPolygonFlat(geom.XY, out, newEndss)
}

// LoadAreas reads the areas table, in code order.
func LoadAreas(ctx context.Context, pool *pgxpool.Pool) ([]Ward, error) {
	rows, err := pool.Query(ctx, `SELECT code, name, name_en, kind, coalesce(population, 0), ST_AsEWKB(geom)
		FROM areas ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("load areas: %w", err)
	}
	defer rows.Close()
	var out []Ward
	for rows.Next() {
		var w Ward
		var b []byte
		if err := rows.Scan(&w.Code, &w.Name, &w.NameEn, &w.Kind, &w.Population, &b); err != nil {
			return nil, fmt.Errorf("load areas: %w", err)
		}
		g, err := ewkb.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("load areas: decode %s: %w", w.Code, err)
		}
		mp, ok := g.(*geom.MultiPolygon)
		if !ok {
			return nil, fmt.Errorf("load areas: %s is %T", w.Code, g)
		}
		w.Geom = mp
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load areas: %w", err)
	}
	return out, nil
}

// EnsureAreas loads the areas for the service: when the table is empty and
// file is set, it imports the file first. It returns the stored areas.
func EnsureAreas(ctx context.Context, pool *pgxpool.Pool, file string) (wards []Ward, imported bool, err error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM areas`).Scan(&n); err != nil {
		return nil, false, fmt.Errorf("count areas: %w", err)
	}
	if n == 0 && file != "" {
		ws, err := LoadWards(file)
		if err != nil {
			return nil, false, err
		}
		if err := ImportAreas(ctx, pool, ws, nil); err != nil {
			return nil, false, err
		}
		imported = true
	}
	wards, err = LoadAreas(ctx, pool)
	return wards, imported, err
}

// areaSet is the areas as served: the index plus pre-encoded features.
type areaSet struct {
	index    *WardIndex
	wards    map[string]Ward
	features map[string]json.RawMessage // by code
	codes    []string                   // sorted
}

func newAreaSet(wards []Ward) (*areaSet, error) {
	s := &areaSet{
		index:    NewWardIndex(wards),
		wards:    make(map[string]Ward, len(wards)),
		features: make(map[string]json.RawMessage, len(wards)),
	}
	for _, w := range wards {
		f := geojson.Feature{
			ID:       w.Code,
			Geometry: w.Geom,
			Properties: map[string]any{
				"code": w.Code, "name": w.Name, "name_en": w.NameEn,
				"kind": w.Kind, "population": w.Population,
			},
		}
		b, err := json.Marshal(&f)
		if err != nil {
			return nil, fmt.Errorf("encode area %s: %w", w.Code, err)
		}
		s.wards[w.Code] = w
		s.features[w.Code] = b
	}
	for _, w := range s.index.wards {
		s.codes = append(s.codes, w.code)
	}
	return s, nil
}
