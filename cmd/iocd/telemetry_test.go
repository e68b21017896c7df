package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/ingest"
)

// seriesPoint is one bucket as the API gives it.
type seriesPoint struct {
	BucketStart time.Time `json:"bucket_start"`
	Count       int64     `json:"count"`
	Speed       struct {
		Count         int64
		Min, Max, Avg float64
	} `json:"speed_kmh"`
}

// Telemetry series: buckets from rollups (plus the readings after the
// last rollup) agree with aggregates computed from the readings, through
// paging and the ward scope; the rollup is idempotent; bad parameters and
// spans past the caps are 400s.
func TestTelemetrySeries(t *testing.T) {
	e := newWardEnv(t)
	ctx := context.Background()
	pool := e.app.pool
	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	start := end.Add(-72 * time.Hour)
	// One reading a minute for three days; one in ten in a neighbouring
	// ward (a scoped user must not see those).
	mustExec(t, pool, `INSERT INTO devices (id, kind, geom, ward_code, first_seen, last_seen) VALUES
		('tfc-T1', 'traffic', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), '00004', $1, $2)`, start, end)
	mustExec(t, pool, `INSERT INTO traffic_readings (device_id, ts, received_at, geom, ward_code, speed_kmh, volume, occupancy, interval_s)
		SELECT 'tfc-T1', $1::timestamptz + i * interval '1 minute', now(), ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326),
		  CASE WHEN i % 10 = 3 THEN '00008' ELSE '00004' END, 30 + 20 * sin(i / 50.0), i % 17, (i % 100) / 100.0, 60
		FROM generate_series(0, 72 * 60 - 1) i`, start)
	// Rolled up to five hours before the end: the rest comes from readings.
	if err := ingest.RollUp(ctx, pool, start, end.Add(-5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	admin := e.session(t, "series-admin", "admin")
	series := func(token, bucket string, from, to time.Time, limit int) []seriesPoint {
		t.Helper()
		var all []seriesPoint
		q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "bucket": {bucket}, "limit": {fmt.Sprint(limit)}}
		for range 100 {
			w := e.send("GET", "/api/v1/devices/tfc-T1/telemetry?"+q.Encode(), token, "")
			var page struct {
				Items      []seriesPoint `json:"items"`
				NextCursor string        `json:"next_cursor"`
			}
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil {
				t.Fatalf("%s: %d %s", q.Encode(), w.Code, w.Body)
			}
			all = append(all, page.Items...)
			if page.NextCursor == "" {
				return all
			}
			q.Set("cursor", page.NextCursor)
		}
		t.Fatal("paging does not end")
		return nil
	}
	truth := func(interval string, wards []string) []seriesPoint {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT date_bin($1::interval, ts, '2000-01-01T00:00:00+07:00'), count(*), min(speed_kmh), max(speed_kmh), avg(speed_kmh)
			FROM traffic_readings WHERE device_id = 'tfc-T1' AND ($2::text[] IS NULL OR ward_code = ANY($2)) GROUP BY 1 ORDER BY 1`, interval, wards)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []seriesPoint
		for rows.Next() {
			var p seriesPoint
			var mn, mx float32
			rows.Scan(&p.BucketStart, &p.Count, &mn, &mx, &p.Speed.Avg)
			p.Speed.Min, p.Speed.Max, p.Speed.Count = float64(mn), float64(mx), p.Count
			out = append(out, p)
		}
		return out
	}
	same := func(what string, got, want []seriesPoint) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d buckets, want %d", what, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if !g.BucketStart.Equal(w.BucketStart) || g.Count != w.Count || g.Speed.Count != w.Speed.Count ||
				math.Abs(g.Speed.Min-w.Speed.Min) > 1e-3 || math.Abs(g.Speed.Max-w.Speed.Max) > 1e-3 || math.Abs(g.Speed.Avg-w.Speed.Avg) > 2e-3 {
				t.Fatalf("%s: bucket %d = %+v, want %+v", what, i, g, w)
			}
		}
	}
	// Whole buckets starting in [from, to): the span covers them all.
	far := end.Add(24 * time.Hour)
	same("1h", series(admin, "1h", start, end, 10), truth("1 hour", nil))
	dayFrom := start.Add(-24 * time.Hour)
	same("1d", series(admin, "1d", dayFrom, far, 500), truth("1 day", nil))
	got5 := series(admin, "5m", start, end, 5000)
	same("5m", got5, truth("5 minutes", nil))
	// Idempotent: rolling up again (and over everything) changes nothing.
	var before int64
	pool.QueryRow(ctx, `SELECT count(*) FROM telemetry_rollups`).Scan(&before)
	if err := ingest.RollUp(ctx, pool, start, end); err != nil {
		t.Fatal(err)
	}
	if err := ingest.RollUp(ctx, pool, start, end); err != nil {
		t.Fatal(err)
	}
	var after int64
	pool.QueryRow(ctx, `SELECT count(*) FROM telemetry_rollups`).Scan(&after)
	if after < before || after == 0 {
		t.Errorf("rollup rows %d then %d", before, after)
	}
	// The seeder's concurrent backfill leaves the same rows as one pass.
	var digest, digest2 string
	rollups := `SELECT md5(string_agg(r::text, '|' ORDER BY device_id, bucket, bucket_start, ward_code)) FROM telemetry_rollups r`
	pool.QueryRow(ctx, rollups).Scan(&digest)
	mustExec(t, pool, `DELETE FROM telemetry_rollups`)
	if err := ingest.RollUpConcurrently(ctx, pool, start, end, 3); err != nil {
		t.Fatal(err)
	}
	pool.QueryRow(ctx, rollups).Scan(&digest2)
	if digest == "" || digest2 != digest {
		t.Errorf("concurrent rollup digest %q, one pass %q", digest2, digest)
	}
	same("1h again", series(admin, "1h", start, end, 500), truth("1 hour", nil))
	same("1d again", series(admin, "1d", dayFrom, far, 500), truth("1 day", nil))
	// Ward scope reaches into the rollups.
	scoped := e.session(t, "series-ward", "analyst", "00004")
	same("1h scoped", series(scoped, "1h", start, end, 500), truth("1 hour", []string{"00004"}))
	same("1d scoped", series(scoped, "1d", dayFrom, far, 500), truth("1 day", []string{"00004"}))

	for _, bad := range []string{
		"bucket=2h", "bucket=1h&from=" + start.Add(-100*24*time.Hour).Format(time.RFC3339) + "&to=" + end.Format(time.RFC3339),
		"bucket=5m&from=" + start.Add(-8*24*time.Hour).Format(time.RFC3339) + "&to=" + end.Format(time.RFC3339),
		"from=" + start.Add(-40*24*time.Hour).Format(time.RFC3339) + "&to=" + end.Format(time.RFC3339),
		"from=" + end.Format(time.RFC3339) + "&to=" + start.Format(time.RFC3339), "bucket=1h&limit=0", "bucket=1h&cursor=zzz", "bucket=1h&from=yesterday",
	} {
		if w := e.send("GET", "/api/v1/devices/tfc-T1/telemetry?"+bad, admin, ""); w.Code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, w.Code, w.Body)
		}
	}
}

// A rollup pass catches up from where the last one stopped to the last
// closed hour.
func TestRollupPassCatchesUp(t *testing.T) {
	e := newWardEnv(t)
	ctx := context.Background()
	pool := e.app.pool
	old := time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	mustExec(t, pool, `INSERT INTO telemetry_rollup_state (rolled_until) VALUES ($1)`, old)
	mustExec(t, pool, `INSERT INTO traffic_readings (device_id, ts, received_at, geom, speed_kmh, volume, occupancy, interval_s)
		VALUES ('tfc-C1', $1, now(), ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 20, 5, 0.3, 60)`, old.Add(3*time.Hour+time.Minute))
	r := ingest.NewRollups(pool, ingest.RollupConfig{}, nil, quietLog())
	if err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	var until time.Time
	var n int
	pool.QueryRow(ctx, `SELECT rolled_until FROM telemetry_rollup_state`).Scan(&until)
	pool.QueryRow(ctx, `SELECT count(*) FROM telemetry_rollups WHERE device_id = 'tfc-C1' AND n = 1`).Scan(&n)
	if want := time.Now().UTC().Truncate(time.Hour); !until.Equal(want) || n != 2 {
		t.Errorf("after a pass: rolled until %v (want %v), %d rollup rows of the reading (want its hour and its day)", until, want, n)
	}
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
