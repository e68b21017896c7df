package geo

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/twpayne/go-geom/encoding/ewkb"

	"ioc/db/dbtest"
)

func TestServiceAreaContains(t *testing.T) {
	a, err := LoadServiceArea(cityFile, 5000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		lon, lat float64
		want     bool
	}{
		{"Hoan Kiem", 105.8524, 21.0287, true},
		{"Noi Bai airport", 105.8067, 21.2187, true},
		{"Hai Phong", 106.6881, 20.8449, false},
		{"null island", 0, 0, false},
		{"NaN", math.NaN(), 21, false},
		{"Ho Chi Minh City", 106.70, 10.78, false},
	} {
		if got := a.Contains(c.lon, c.lat); got != c.want {
			t.Errorf("%s: Contains = %v, want %v", c.name, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { a.Contains(105.2, 21.0) }); n != 0 {
		t.Errorf("Contains allocates %v times", n)
	}
	if _, err := LoadServiceArea(cityFile, -1); err == nil {
		t.Error("negative margin accepted")
	}
	if _, err := LoadServiceArea("nope.geojson", 0); err == nil {
		t.Error("missing file accepted")
	}
}

// TestServiceAreaAgreesWithPostGIS compares Contains with PostGIS: covered by
// the outline, or within margin metres on the sphere. Points within 1% of
// the margin are skipped (Contains uses a local projection).
func TestServiceAreaAgreesWithPostGIS(t *testing.T) {
	t.Parallel()
	const margin = 3000.0
	pool, _ := dbtest.New(t)
	a, err := LoadServiceArea(cityFile, margin)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cityFile)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := decodePolygonalGeoJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := ewkb.Marshal(gs[0], ewkb.NDR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE t_city AS SELECT ST_SetSRID(ST_GeomFromEWKB($1), 4326) AS geom`, b); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var xs, ys []float64
	for range 2000 {
		xs = append(xs, 105.20+rng.Float64()*0.90)
		ys = append(ys, 20.48+rng.Float64()*1.00)
	}
	rows, err := pool.Query(ctx, `
		SELECT ST_Covers(c.geom, p.g), ST_Distance(c.geom::geography, p.g::geography, false)
		FROM t_city c, unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(x, y, i),
		     LATERAL (SELECT ST_SetSRID(ST_MakePoint(u.x, u.y), 4326) AS g) p
		ORDER BY u.i`, xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i, checked := 0, 0
	for rows.Next() {
		var covered bool
		var dist float64
		if err := rows.Scan(&covered, &dist); err != nil {
			t.Fatal(err)
		}
		want := covered || dist <= margin
		if covered || math.Abs(dist-margin) > margin/100 {
			checked++
			if got := a.Contains(xs[i], ys[i]); got != want {
				t.Errorf("(%v, %v): Contains %v, PostGIS covered=%v distance=%.1f m", xs[i], ys[i], got, covered, dist)
			}
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d points checked", checked, i)
}
