package geo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"

	"ioc/api"
)

// AreaFilter is what a list of wards selects (the OGC API's wards
// collection).
type AreaFilter struct {
	Code string
	// BBox is minLon,minLat,maxLon,maxLat: wards whose shape meets it.
	BBox []float64
	// Codes limits the answer to these wards (nil: every ward); the
	// caller's ward scope.
	Codes []string
	// Where adds conditions written by another part (a CQL2 filter): SQL
	// over areas aliased a, values through arg.
	Where []Condition
	Limit int
	// Cursor is a previous page's next cursor ("" for the first page).
	Cursor string
}

// Condition is one extra condition of a query, as SQL. arg binds a value
// and returns its placeholder; a Condition never writes a value into the
// SQL text itself.
type Condition interface {
	SQL(arg func(any) string) (string, error)
}

// AreaPage is one page of ListAreas.
type AreaPage struct {
	Wards []Ward
	// Matched is how many wards match the filter on every page.
	Matched int
	// Next is the next page's cursor ("" on the last page).
	Next string
}

// ListAreas returns the wards matching f in code order. The table is
// small (126 rows), so the count of all matches comes with every page.
func ListAreas(ctx context.Context, pool *pgxpool.Pool, f AreaFilter) (AreaPage, error) {
	var after string
	if f.Cursor != "" {
		if err := api.DecodeCursor(f.Cursor, &after); err != nil {
			return AreaPage{}, &api.ParamError{Name: "cursor", Problem: "not a cursor from a previous page"}
		}
	}
	args := []any{f.Codes}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{`($1::text[] IS NULL OR a.code = ANY($1))`}
	if f.Code != "" {
		where = append(where, "a.code = "+arg(f.Code))
	}
	if f.BBox != nil {
		env := fmt.Sprintf("ST_MakeEnvelope(%s, %s, %s, %s, 4326)", arg(f.BBox[0]), arg(f.BBox[1]), arg(f.BBox[2]), arg(f.BBox[3]))
		where = append(where, "ST_Intersects(a.geom, "+env+")")
	}
	for _, c := range f.Where {
		sql, err := c.SQL(arg)
		if err != nil {
			return AreaPage{}, err
		}
		where = append(where, "("+sql+")")
	}
	// The count covers every page; the cursor only this one.
	page := "TRUE"
	if after != "" {
		page = "a.code > " + arg(after)
	}
	sql := `SELECT code, name, name_en, kind, population, g, matched FROM (
		SELECT a.code, a.name, a.name_en, a.kind, coalesce(a.population, 0) AS population,
		  ST_AsEWKB(a.geom) AS g, count(*) OVER () AS matched, ` + page + ` AS on_page
		FROM areas a WHERE ` + strings.Join(where, " AND ") + `) x
		WHERE on_page ORDER BY code LIMIT ` + arg(f.Limit+1)
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return AreaPage{}, fmt.Errorf("list areas: %w", err)
	}
	defer rows.Close()
	var out AreaPage
	for rows.Next() {
		var w Ward
		var b []byte
		var matched int64
		if err := rows.Scan(&w.Code, &w.Name, &w.NameEn, &w.Kind, &w.Population, &b, &matched); err != nil {
			return AreaPage{}, fmt.Errorf("list areas: %w", err)
		}
		g, err := ewkb.Unmarshal(b)
		if err != nil {
			return AreaPage{}, fmt.Errorf("list areas: decode %s: %w", w.Code, err)
		}
		mp, ok := g.(*geom.MultiPolygon)
		if !ok {
			return AreaPage{}, fmt.Errorf("list areas: %s is %T", w.Code, g)
		}
		w.Geom = mp
		out.Wards = append(out.Wards, w)
		out.Matched = int(matched)
	}
	if err := rows.Err(); err != nil {
		return AreaPage{}, fmt.Errorf("list areas: %w", err)
	}
	if len(out.Wards) > f.Limit {
		out.Wards = out.Wards[:f.Limit]
		out.Next = api.EncodeCursor(out.Wards[f.Limit-1].Code)
	}
	if len(out.Wards) == 0 && after == "" {
		out.Matched = 0
	}
	return out, nil
}
