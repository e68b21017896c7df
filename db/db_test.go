package db_test

import (
	"context"
	"testing"
	"time"

	"ioc/db"
	"ioc/db/dbtest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	pool, _ := dbtest.New(t)
	ran, err := db.Migrate(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 0 {
		t.Fatalf("second migrate applied %v", ran)
	}
	var postgis string
	if err := pool.QueryRow(context.Background(), `SELECT postgis_version()`).Scan(&postgis); err != nil {
		t.Fatalf("postgis missing: %v", err)
	}
}

func TestPartitions(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	old := time.Date(2020, 1, 10, 12, 0, 0, 0, time.UTC)
	if err := db.EnsurePartitions(ctx, pool, old, old.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	// Running it again changes nothing.
	if err := db.EnsurePartitions(ctx, pool, old, old.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO traffic_readings (device_id, ts, received_at, geom, speed_kmh, volume, occupancy, interval_s)
		VALUES ('s1', $1, now(), ST_SetSRID(ST_MakePoint(105.8, 21.0), 4326), 30, 5, 0.2, 60)`, old); err != nil {
		t.Fatalf("insert into partition: %v", err)
	}
	dropped, err := db.DropPartitionsBefore(ctx, pool, old.AddDate(0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	// Days 10 and 11 end before the 12th; the 12th stays.
	if len(dropped) != 2*len(db.PartitionedTables) {
		t.Fatalf("dropped %d partitions (%v), want %d", len(dropped), dropped, 2*len(db.PartitionedTables))
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM traffic_readings WHERE ts < $1`, old.AddDate(0, 0, 1)).Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows left in a dropped day", n)
	}
}
