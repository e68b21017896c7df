package geo

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"

	"ioc/db/dbtest"
)

// randomFences makes n geofences over Hanoi: two thirds star-shaped
// polygons of 6–40 vertices and 100 m–1.5 km across, one third circles of
// 50 m–2 km radius; coordinates rounded to 6 decimals like the real data.
func randomFences(n int, seed uint64) []*Geofence {
	rng := rand.New(rand.NewPCG(seed, 11))
	round := func(v float64) float64 { return math.Round(v*1e6) / 1e6 }
	out := make([]*Geofence, 0, n)
	for i := 0; i < n; i++ {
		cx, cy := 105.30+rng.Float64()*0.70, 20.58+rng.Float64()*0.80
		f := &Geofence{ID: int64(i + 1), Name: "f", Version: 1}
		if i%3 == 2 {
			f.Shape, f.Center, f.RadiusM = "circle", [2]float64{round(cx), round(cy)}, 50+rng.Float64()*1950
		} else {
			k := 6 + rng.IntN(35)
			r := (100 + rng.Float64()*1400) / 111_000
			angles := make([]float64, k)
			for j := range angles {
				angles[j] = rng.Float64() * 2 * math.Pi
			}
			slices.Sort(angles)
			var flat []float64
			for _, a := range angles {
				rr := r * (0.3 + 0.7*rng.Float64())
				flat = append(flat, round(cx+rr*math.Cos(a)/math.Cos(cy*degToRad)), round(cy+rr*math.Sin(a)))
			}
			flat = append(flat, flat[0], flat[1])
			f.Shape = "polygon"
			f.Polygon = geom.NewMultiPolygonFlat(geom.XY, flat, [][]int{{len(flat)}}).SetSRID(4326)
		}
		out = append(out, f)
	}
	return out
}

func fenceSnapshotOf(t testing.TB, fences []*Geofence) *fenceSnapshot {
	t.Helper()
	entries := make([]*fenceEntry, 0, len(fences))
	for _, f := range fences {
		e, err := compileFence(f)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	return newFenceSnapshot(1, entries)
}

func ids(fs []*Geofence) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	slices.Sort(out)
	return out
}

func TestFenceIndexMatchesBruteForce(t *testing.T) {
	fences := randomFences(10_000, 1)
	snap := fenceSnapshotOf(t, fences)
	xs, ys := testPoints(testWards(t), 5_000, 9)
	xs, ys = xs[:5_000], ys[:5_000]
	hits := 0
	var got []*Geofence
	for i := range xs {
		got = snap.appendContaining(got[:0], xs[i], ys[i])
		var want []*Geofence
		for _, e := range snap.entries {
			if e.contains(xs[i], ys[i]) {
				want = append(want, e.fence)
			}
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("point (%v, %v): index %v, brute force %v", xs[i], ys[i], ids(got), ids(want))
		}
		hits += len(got)
	}
	t.Logf("%d points, %d fence hits", len(xs), hits)
	if n := testing.AllocsPerRun(100, func() { got = snap.appendContaining(got[:0], 105.85, 21.03) }); n != 0 {
		t.Errorf("appendContaining allocates %v times", n)
	}
}

// TestFenceIndexAgreesWithPostGIS: polygon fences must give exactly
// ST_Covers; circles ST_DWithin on the sphere, except within a millimetre
// of the circle where the two haversine formulations may round apart.
func TestFenceIndexAgreesWithPostGIS(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	fences := randomFences(3000, 2)
	if _, err := pool.Exec(ctx, `CREATE TABLE t_fences (id bigint, geom geometry(Geometry,4326), radius_m float8)`); err != nil {
		t.Fatal(err)
	}
	fids := make([]int64, len(fences))
	geoms := make([][]byte, len(fences))
	radii := make([]*float64, len(fences))
	for i, f := range fences {
		var g geom.T = f.Polygon
		if f.Shape == "circle" {
			g = geom.NewPointFlat(geom.XY, f.Center[:]).SetSRID(4326)
			radii[i] = &f.RadiusM
		}
		b, err := ewkb.Marshal(g, ewkb.NDR)
		if err != nil {
			t.Fatal(err)
		}
		fids[i], geoms[i] = f.ID, b
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t_fences SELECT i, ST_GeomFromEWKB(g), r
		FROM unnest($1::int8[], $2::bytea[], $3::float8[]) AS u(i, g, r)`, fids, geoms, radii); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE INDEX ON t_fences USING gist (geom); ANALYZE t_fences`); err != nil {
		t.Fatal(err)
	}
	snap := fenceSnapshotOf(t, fences)
	// Random points, plus every polygon vertex (on the boundary).
	rng := rand.New(rand.NewPCG(4, 4))
	var xs, ys []float64
	for range 20_000 {
		xs = append(xs, 105.30+rng.Float64()*0.70)
		ys = append(ys, 20.58+rng.Float64()*0.80)
	}
	for _, f := range fences[:300] {
		if f.Polygon != nil {
			flat := f.Polygon.FlatCoords()
			for i := 0; i+1 < len(flat); i += 2 {
				xs, ys = append(xs, flat[i]), append(ys, flat[i+1])
			}
		}
	}
	rows, err := pool.Query(ctx, `
		WITH p AS MATERIALIZED (SELECT i, ST_SetSRID(ST_MakePoint(x, y), 4326) AS g
		                        FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(x, y, i))
		SELECT p.i, f.id FROM p JOIN t_fences f ON f.radius_m IS NULL AND ST_Covers(f.geom, p.g)
		UNION ALL
		SELECT p.i, f.id FROM p JOIN t_fences f ON f.radius_m IS NOT NULL AND ST_DWithin(f.geom, p.g, 0.025)
		        AND ST_DWithin(f.geom::geography, p.g::geography, f.radius_m, false)`, xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]int64, len(xs))
	for rows.Next() {
		var i, id int64
		if err := rows.Scan(&i, &id); err != nil {
			t.Fatal(err)
		}
		want[i-1] = append(want[i-1], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	var got []*Geofence
	for i := range xs {
		got = snap.appendContaining(got[:0], xs[i], ys[i])
		g, w := ids(got), want[i]
		slices.Sort(w)
		if !slices.Equal(g, w) {
			// Tolerate only circle-edge differences.
			diff := symmetricDiff(g, w)
			ok := true
			for _, id := range diff {
				f := fences[id-1]
				if f.Shape != "circle" || math.Abs(HaversineM(xs[i], ys[i], f.Center[0], f.Center[1])-f.RadiusM) > 1e-3 {
					ok = false
				}
			}
			if !ok {
				bad++
				if bad < 10 {
					t.Errorf("point %d (%.17g, %.17g): index %v, PostGIS %v", i, xs[i], ys[i], g, w)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d points disagree", bad, len(xs))
	}
}

func symmetricDiff(a, b []int64) []int64 {
	var out []int64
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}
