package geo

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"

	"ioc/db/dbtest"
)

const (
	wardsFile = "../../shared/data/hanoi/wards.geojson"
	cityFile  = "../../shared/data/hanoi/city.geojson"
	hospFile  = "../../shared/data/hanoi/hospitals.geojson"
)

var (
	wardsOnce sync.Once
	wardsData []Ward
	wardsErr  error
)

func testWards(t testing.TB) []Ward {
	t.Helper()
	wardsOnce.Do(func() { wardsData, wardsErr = LoadWards(wardsFile) })
	if wardsErr != nil {
		t.Fatal(wardsErr)
	}
	return wardsData
}

// testPoints returns n random points over the wards' extent (slightly
// widened, so some fall outside the city) plus every ward vertex and every
// edge midpoint.
func testPoints(wards []Ward, n int, seed uint64) (xs, ys []float64) {
	box := emptyBBox()
	for _, w := range wards {
		flat := w.Geom.FlatCoords()
		for i := 0; i+1 < len(flat); i += w.Geom.Stride() {
			box.extend(flat[i], flat[i+1])
		}
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	w, h := box.maxX-box.minX, box.maxY-box.minY
	for range n {
		xs = append(xs, box.minX-0.02*w+rng.Float64()*1.04*w)
		ys = append(ys, box.minY-0.02*h+rng.Float64()*1.04*h)
	}
	for _, wd := range wards {
		g := wd.Geom
		for p := 0; p < g.NumPolygons(); p++ {
			poly := g.Polygon(p)
			flat, stride := poly.FlatCoords(), poly.Stride()
			start := 0
			for _, end := range poly.Ends() {
				for i := start; i < end; i += stride {
					xs = append(xs, flat[i])
					ys = append(ys, flat[i+1])
					if i+stride < end {
						xs = append(xs, (flat[i]+flat[i+stride])/2)
						ys = append(ys, (flat[i+1]+flat[i+stride+1])/2)
					}
				}
				start = end
			}
		}
	}
	return xs, ys
}

// bruteFirst is the reference answer without any index: every ward in
// code order, every ring edge by edge.
func bruteFirst(ix *WardIndex, x, y float64) (string, bool) {
	for _, w := range ix.wards {
		for i := range w.shape.polys {
			if w.shape.polys[i].locate(x, y) != outside {
				return w.code, true
			}
		}
	}
	return "", false
}

func TestWardIndexMatchesBruteForce(t *testing.T) {
	wards := testWards(t)
	ix := NewWardIndex(wards)
	if ix.Len() != 126 {
		t.Fatalf("indexed %d wards", ix.Len())
	}
	xs, ys := testPoints(wards, 50_000, 1)
	for i := range xs {
		got, gok := ix.Lookup(xs[i], ys[i])
		want, wok := bruteFirst(ix, xs[i], ys[i])
		if got != want || gok != wok {
			t.Fatalf("point %d (%v,%v): grid %q,%v brute %q,%v", i, xs[i], ys[i], got, gok, want, wok)
		}
	}
}

func TestWardIndexEdgeCases(t *testing.T) {
	ix := NewWardIndex(testWards(t))
	for _, c := range []struct {
		name     string
		lon, lat float64
		want     string
		ok       bool
	}{
		{"Ba Dinh, Lang Lang Ho Chi Minh", 105.8345, 21.0368, "00004", true},
		{"Hoan Kiem lake", 105.8524, 21.0287, "00070", true},
		{"NaN", math.NaN(), 21.03, "", false},
		{"Inf", math.Inf(1), 21.03, "", false},
		{"null island", 0, 0, "", false},
		{"Ho Chi Minh City", 106.70, 10.78, "", false},
	} {
		got, ok := ix.Lookup(c.lon, c.lat)
		if ok != c.ok || (c.want != "" && got != c.want) {
			t.Errorf("%s: Lookup = %q,%v want %q,%v", c.name, got, ok, c.want, c.ok)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { ix.Lookup(105.85, 21.02) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

// loadWardsTable imports the wards into the test database's areas table
// (the same code path as `iocd areas import`).
func loadWardsTable(t testing.TB, pool *pgxpool.Pool, wards []Ward) {
	t.Helper()
	ctx := context.Background()
	if err := ImportAreas(ctx, pool, wards, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE areas`); err != nil {
		t.Fatal(err)
	}
}

// postgisFirst asks PostGIS, in one set-based query, for the lowest ward
// code covering each point ("" where none does).
func postgisFirst(t testing.TB, pool *pgxpool.Pool, xs, ys []float64) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT p.i, min(w.code)
		FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(x, y, i)
		JOIN areas w ON ST_Covers(w.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
		GROUP BY p.i`, xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make([]string, len(xs))
	for rows.Next() {
		var i int64
		var code string
		if err := rows.Scan(&i, &code); err != nil {
			t.Fatal(err)
		}
		out[i-1] = code
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWardIndexAgreesWithPostGIS checks the index against ST_Covers on
// 100,000 random points across the city and on every vertex and edge
// midpoint of the wards: the same ward (lowest covering code), or none.
func TestWardIndexAgreesWithPostGIS(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	wards := testWards(t)
	loadWardsTable(t, pool, wards)
	ix := NewWardIndex(wards)
	xs, ys := testPoints(wards, 100_000, 42)
	want := postgisFirst(t, pool, xs, ys)
	bad, onBorder := 0, 0
	for i := range xs {
		got, _ := ix.Lookup(xs[i], ys[i])
		if got != want[i] {
			bad++
			if bad <= 10 {
				t.Errorf("point %d (%.17g, %.17g): index %q, PostGIS %q", i, xs[i], ys[i], got, want[i])
			}
		}
		if i >= 100_000 && want[i] != "" {
			onBorder++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d points disagree with PostGIS", bad, len(xs))
	}
	t.Logf("%d points (%d vertices and midpoints, %d of them covered) agree with PostGIS", len(xs), len(xs)-100_000, onBorder)
}

// A geometry helper used by several tests.
func square(x0, y0, d float64) *geom.Polygon {
	return geom.NewPolygonFlat(geom.XY, []float64{x0, y0, x0 + d, y0, x0 + d, y0 + d, x0, y0 + d, x0, y0}, []int{10})
}
