package geo

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db/dbtest"
)

// Benchmarks of the point-in-area lookups. Each reports ns per looked-up
// point; lookups/s/core = 1e9 / (ns/op). Points are uniform over the wards'
// extent (about 4% wider), so some fall outside the city: the worst case for
// caches, the realistic case for the mix of interior and border points.
//
//	go test -run '^$' -bench . -count 5 ./geo/ | tee bench.txt
//	go run golang.org/x/perf/cmd/benchstat@latest bench.txt

func benchPoints(b *testing.B, n int) (xs, ys []float64) {
	xs, ys = testPoints(testWards(b), n, 7)
	return xs[:n], ys[:n]
}

// BenchmarkWardLookup: the grid + band index against the 126 wards.
func BenchmarkWardLookup(b *testing.B) {
	ix := NewWardIndex(testWards(b))
	xs, ys := benchPoints(b, 1<<16)
	b.ReportAllocs()
	hits, i := 0, 0
	for b.Loop() {
		j := i & (1<<16 - 1)
		i++
		if _, ok := ix.Lookup(xs[j], ys[j]); ok {
			hits++
		}
	}
	sinkInt = hits
}

// BenchmarkWardLookupNaive: the baseline a simple design would write: every
// ward's bounding box, then its rings edge by edge.
func BenchmarkWardLookupNaive(b *testing.B) {
	wards := testWards(b)
	type naiveWard struct {
		code  string
		box   bbox
		rings [][]float64 // flat XY
	}
	var nw []naiveWard
	for _, w := range NewWardIndex(wards).wards {
		n := naiveWard{code: w.code, box: w.shape.box}
		for _, wd := range wards {
			if wd.Code != w.code {
				continue
			}
			for p := 0; p < wd.Geom.NumPolygons(); p++ {
				poly := wd.Geom.Polygon(p)
				n.rings = append(n.rings, poly.LinearRing(0).FlatCoords())
			}
		}
		nw = append(nw, n)
	}
	xs, ys := benchPoints(b, 1<<16)
	hits, i := 0, 0
	for b.Loop() {
		j := i & (1<<16 - 1)
		i++
		px, py := xs[j], ys[j]
	wards:
		for k := range nw {
			if !nw[k].box.contains(px, py) {
				continue
			}
			for _, f := range nw[k].rings {
				wn := 0
				for q := 0; q+3 < len(f); q += 2 {
					x1, y1, x2, y2 := f[q], f[q+1], f[q+2], f[q+3]
					side := float64((x2-x1)*(py-y1)) - float64((px-x1)*(y2-y1))
					if side == 0 && onSegment(edge{x1, y1, x2, y2}, px, py) {
						hits++
						break wards
					}
					if y1 <= py && py < y2 && side > 0 {
						wn++
					} else if y2 <= py && py < y1 && side < 0 {
						wn--
					}
				}
				if wn != 0 {
					hits++
					break wards
				}
			}
		}
	}
	sinkInt = hits
}

var sinkInt int

// BenchmarkPostGISPerPoint: one query per point against the same wards in
// PostGIS (GiST index, ST_Covers), what "ask the database per message"
// costs including the round trip on localhost.
func BenchmarkPostGISPerPoint(b *testing.B) {
	pool := benchPool(b)
	xs, ys := benchPoints(b, 1<<16)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		j := i & (1<<16 - 1)
		i++
		var code *string
		err := pool.QueryRow(ctx, `SELECT min(code) FROM areas
			WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))`, xs[j], ys[j]).Scan(&code)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostGISSetPer1000: one set-based query per 1000 points; ns/op is
// per point, so it compares directly with the others.
func BenchmarkPostGISSetPer1000(b *testing.B) {
	pool := benchPool(b)
	xs, ys := benchPoints(b, 1<<16)
	off := 0
	for b.Loop() {
		postgisFirst(b, pool, xs[off:off+1000], ys[off:off+1000])
		off = (off + 1000) % (1<<16 - 1000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/point")
}

// benchPool is a fresh test database holding the wards in areas.
func benchPool(b *testing.B) *pgxpool.Pool {
	pool, _ := dbtest.New(b)
	loadWardsTable(b, pool, testWards(b))
	return pool
}

// BenchmarkGeofenceLookup10k: all geofences containing a point, among
// 10,000 random polygons and circles over the city (randomFences).
func BenchmarkGeofenceLookup10k(b *testing.B) {
	snap := fenceSnapshotOf(b, randomFences(10_000, 1))
	xs, ys := benchPoints(b, 1<<16)
	var got []*Geofence
	b.ReportAllocs()
	hits, i := 0, 0
	for b.Loop() {
		j := i & (1<<16 - 1)
		i++
		got = snap.appendContaining(got[:0], xs[j], ys[j])
		hits += len(got)
	}
	sinkInt = hits
}
