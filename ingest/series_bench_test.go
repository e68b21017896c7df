package ingest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"ioc/db"
	"ioc/ingest"
)

// BenchmarkTelemetrySeriesMonth measures a one-month, 1-hour series of one
// traffic sensor on a seeded database (IOC_BENCH_DATABASE_URL, filled by
// `iocsim seed`; skipped without it): "rollups" is Reader.Telemetry as
// the API calls it, "readings" the same month aggregated from the
// readings, its peer in the same run (what each request would cost
// without rollups). docs/ingest.md has the figures.
func BenchmarkTelemetrySeriesMonth(b *testing.B) {
	url := os.Getenv("IOC_BENCH_DATABASE_URL")
	if url == "" {
		b.Skip("IOC_BENCH_DATABASE_URL not set (a database filled by iocsim seed)")
	}
	ctx := context.Background()
	pool, err := db.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var id string
	var last time.Time
	if err := pool.QueryRow(ctx, `SELECT id, last_ts FROM devices WHERE kind = 'traffic' AND last_ts IS NOT NULL ORDER BY id LIMIT 1`).Scan(&id, &last); err != nil {
		b.Fatal(err)
	}
	to := last.Truncate(time.Hour)
	from := to.AddDate(0, 0, -30)
	rd := ingest.NewReader(pool, nil, testLogger())
	b.Run("rollups", func(b *testing.B) {
		for b.Loop() {
			p, err := rd.Telemetry(ctx, ingest.TelemetryQuery{DeviceID: id, Kind: "traffic", From: from, To: to, Bucket: "1h", Limit: 5000})
			if err != nil || len(p.Items) < 700 {
				b.Fatalf("%v, %d buckets", err, len(p.Items))
			}
		}
	})
	b.Run("readings", func(b *testing.B) {
		for b.Loop() {
			rows, err := pool.Query(ctx, `SELECT date_bin('1 hour', ts, '2000-01-01T00:00:00+07:00'), count(*), min(speed_kmh), max(speed_kmh), avg(speed_kmh),
				min(volume), max(volume), avg(volume), min(occupancy), max(occupancy), avg(occupancy)
				FROM traffic_readings WHERE device_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1`, id, from, to)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n < 700 {
				b.Fatalf("%v, %d buckets", rows.Err(), n)
			}
		}
	})
}
