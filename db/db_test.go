package db_test

import (
	"errors"

	"context"
	"github.com/jackc/pgx/v5/pgxpool"
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

// The API pool's statement timeout cancels a slow query on the server
// (SQLSTATE 57014), and a pool's connections are its own: a full API pool
// leaves the other pool's connections free.
func TestPoolStatementTimeoutAndIsolation(t *testing.T) {
	_, url := dbtest.New(t)
	ctx := context.Background()
	apiPool, err := db.OpenWith(ctx, url, db.PoolConfig{MaxConns: 2, MinConns: 1, StatementTimeout: 200 * time.Millisecond, AppName: "iocd-api"})
	if err != nil {
		t.Fatal(err)
	}
	defer apiPool.Close()
	ingestPool, err := db.OpenWith(ctx, url, db.PoolConfig{MaxConns: 2, MinConns: 1, AppName: "iocd-ingest"})
	if err != nil {
		t.Fatal(err)
	}
	defer ingestPool.Close()

	_, err = apiPool.Exec(ctx, `SELECT pg_sleep(5)`)
	var sc interface{ SQLState() string }
	if !errors.As(err, &sc) || sc.SQLState() != "57014" {
		t.Fatalf("slow API query: %v, want a statement timeout (57014)", err)
	}
	// Hold every API connection; the ingest pool still answers at once.
	var held []*pgxpool.Conn
	for i := 0; i < 2; i++ {
		c, err := apiPool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var app string
	if err := ingestPool.QueryRow(qctx, `SELECT current_setting('application_name')`).Scan(&app); err != nil || app != "iocd-ingest" {
		t.Fatalf("ingest pool while the API pool is exhausted: %q %v", app, err)
	}
	var timeout string
	if err := held[0].QueryRow(ctx, `SHOW statement_timeout`).Scan(&timeout); err != nil || timeout != "200ms" {
		t.Fatalf("API statement_timeout = %q %v", timeout, err)
	}
	for _, c := range held {
		c.Release()
	}
}
