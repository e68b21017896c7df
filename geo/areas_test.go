package geo

import (
	"context"
	"testing"

	"ioc/db/dbtest"
)

func TestImportAndLoadAreas(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	wards := testWards(t)
	got, imported, err := EnsureAreas(ctx, pool, wardsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !imported || len(got) != len(wards) {
		t.Fatalf("EnsureAreas: imported=%v, %d areas", imported, len(got))
	}
	// Second start: the table is not empty, nothing is imported.
	if _, imported, err = EnsureAreas(ctx, pool, wardsFile); err != nil || imported {
		t.Fatalf("second EnsureAreas: imported=%v err=%v", imported, err)
	}
	// Coordinates survive the EWKB round trip bit for bit.
	byCode := map[string]Ward{}
	for _, w := range wards {
		byCode[w.Code] = w
	}
	for _, w := range got {
		orig := byCode[w.Code]
		a, b := orig.Geom.FlatCoords(), w.Geom.FlatCoords()
		if w.Name != orig.Name || w.Population != orig.Population || len(a) != len(b) {
			t.Fatalf("area %s changed: %+v", w.Code, w)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("area %s coordinate %d: %v != %v", w.Code, i, a[i], b[i])
			}
		}
	}
	var valid int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM areas WHERE ST_IsValid(geom) AND ST_SRID(geom) = 4326`).Scan(&valid); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d areas valid in PostGIS", valid, len(got))
	// Duplicate codes are refused, and the table keeps its content.
	if err := ImportAreas(ctx, pool, []Ward{wards[0], wards[0]}, nil); err == nil {
		t.Fatal("duplicate codes accepted")
	}
	if err := ImportAreas(ctx, pool, nil, nil); err == nil {
		t.Fatal("empty import accepted")
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM areas`).Scan(&n)
	if n != len(wards) {
		t.Fatalf("after refused imports: %d areas", n)
	}
}
