package ogc

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/wkb"
)

// crs is a coordinate reference system the API serves (Part 2).
type crs struct {
	uri string
	// srid is its PostGIS spatial_ref_sys id; 0 for CRS84 (stored data,
	// lon/lat, which PostGIS calls 4326 with x = lon).
	srid int
	// latLon: the CRS's axis order is latitude first (EPSG:4326), so
	// coordinates are written (and bbox read) as lat, lon.
	latLon bool
	// geographic: degrees, with the range checks that come with them.
	geographic bool
}

var (
	crs84    = crs{uri: "http://www.opengis.net/def/crs/OGC/1.3/CRS84", geographic: true}
	epsg4326 = crs{uri: "http://www.opengis.net/def/crs/EPSG/0/4326", srid: 4326, latLon: true, geographic: true}
	// VN-2000 / UTM zone 48N: easting, northing in metres.
	epsg3405 = crs{uri: "http://www.opengis.net/def/crs/EPSG/0/3405", srid: 3405}
)

// supportedCRS are listed, in this order, in every collection's crs.
var supportedCRS = []crs{crs84, epsg4326, epsg3405}

// parseCRS reads a crs or bbox-crs value: the OGC URI, or the same as a
// safe CURIE ([EPSG:4326]) or EPSG:4326 / OGC:CRS84.
func parseCRS(s string) (crs, bool) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	t = strings.TrimPrefix(t, "https://")
	t = strings.TrimPrefix(t, "http://")
	switch strings.ToUpper(t) {
	case "WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84", "OGC:CRS84", "CRS84":
		return crs84, true
	case "WWW.OPENGIS.NET/DEF/CRS/EPSG/0/4326", "EPSG:4326":
		return epsg4326, true
	case "WWW.OPENGIS.NET/DEF/CRS/EPSG/0/3405", "EPSG:3405":
		return epsg3405, true
	}
	return crs{}, false
}

// bboxIn is a bbox as given, in its CRS's axis order, made into
// minX, minY, maxX, maxY with x = lon / easting.
func bboxIn(c crs, v []float64) ([]float64, error) {
	if len(v) == 6 { // minx, miny, minz, maxx, maxy, maxz: heights ignored
		v = []float64{v[0], v[1], v[3], v[4]}
	}
	if len(v) != 4 {
		return nil, fmt.Errorf("want 4 numbers (or 6 with heights)")
	}
	for _, f := range v {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("numbers must be finite")
		}
	}
	b := []float64{v[0], v[1], v[2], v[3]}
	if c.latLon {
		b = []float64{v[1], v[0], v[3], v[2]}
	}
	if b[0] > b[2] || b[1] > b[3] {
		if c.latLon {
			return nil, fmt.Errorf("want minLat,minLon,maxLat,maxLon (EPSG:4326 is latitude first) with min <= max")
		}
		return nil, fmt.Errorf("want the lower corner first, then the upper (min <= max)")
	}
	if c.geographic && (b[0] < -180 || b[2] > 180 || b[1] < -90 || b[3] > 90) {
		if c.latLon {
			return nil, fmt.Errorf("EPSG:4326 is latitude first: want -90<=lat<=90, -180<=lon<=180")
		}
		return nil, fmt.Errorf("want -180<=lon<=180 and -90<=lat<=90")
	}
	return b, nil
}

// bboxCondition is a projected bbox (EPSG:3405) as a condition on a
// lon/lat geometry column: the rectangle, densified so its edges follow
// the projection, transformed by PostGIS.
func bboxCondition(column string, srid int, b []float64) condition {
	return condition{func(arg func(any) string) (string, error) {
		env := fmt.Sprintf("ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s::float8, %s::float8, %s::float8, %s::float8, %d), 500), 4326)",
			arg(b[0]), arg(b[1]), arg(b[2]), arg(b[3]), srid)
		return "ST_Intersects(" + column + ", " + env + ")", nil
	}}
}

// reprojector writes geometries in a response CRS.
type reprojector struct {
	pool *pgxpool.Pool
}

// to turns lon/lat geometries (nil entries stay nil) into c's
// coordinates, in place where it can: CRS84 as stored, EPSG:4326 with the
// axes swapped, a projected CRS through PostGIS ST_Transform in one
// statement for the whole page.
func (rp reprojector) to(ctx context.Context, c crs, gs []geom.T) error {
	switch {
	case c.srid == 0:
		return nil
	case c.latLon:
		for i, g := range gs {
			if g != nil {
				gs[i] = swapAxes(g)
			}
		}
		return nil
	}
	in := make([][]byte, len(gs))
	for i, g := range gs {
		if g == nil {
			continue
		}
		b, err := wkb.Marshal(g, wkb.NDR)
		if err != nil {
			return fmt.Errorf("reproject: encode: %w", err)
		}
		in[i] = b
	}
	rows, err := rp.pool.Query(ctx, `SELECT ST_AsBinary(ST_Transform(ST_GeomFromWKB(g, 4326), $2::int))
		FROM unnest($1::bytea[]) WITH ORDINALITY AS u(g, n) ORDER BY n`, in, c.srid)
	if err != nil {
		return fmt.Errorf("reproject to %d: %w", c.srid, err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return fmt.Errorf("reproject to %d: %w", c.srid, err)
		}
		if i < len(gs) && b != nil {
			g, err := wkb.Unmarshal(b)
			if err != nil {
				return fmt.Errorf("reproject to %d: decode: %w", c.srid, err)
			}
			gs[i] = g
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reproject to %d: %w", c.srid, err)
	}
	if i != len(gs) {
		return fmt.Errorf("reproject to %d: %d geometries back for %d", c.srid, i, len(gs))
	}
	return nil
}

// swapAxes returns a copy of g with x and y exchanged.
func swapAxes(g geom.T) geom.T {
	flat := g.FlatCoords()
	stride := g.Stride()
	out := make([]float64, len(flat))
	copy(out, flat)
	for i := 0; i+1 < len(out); i += stride {
		out[i], out[i+1] = out[i+1], out[i]
	}
	switch t := g.(type) {
	case *geom.Point:
		return geom.NewPointFlat(t.Layout(), out)
	case *geom.Polygon:
		return geom.NewPolygonFlat(t.Layout(), out, t.Ends())
	case *geom.MultiPolygon:
		return geom.NewMultiPolygonFlat(t.Layout(), out, t.Endss())
	case *geom.LineString:
		return geom.NewLineStringFlat(t.Layout(), out)
	}
	return g
}
