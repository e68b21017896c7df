package alerts

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db"
	"ioc/db/dbtest"
)

// The history measurements of issue 11 (docs/history.md), on a database
// of a year of Hanoi's incidents: 1,000,000 incidents with one piece of
// evidence each, made by INSERT ... SELECT generate_series (no iocsim seed
// was on main when these were written). The database is kept between runs
// (ioc_history_bench on the test server) and filled once; set
// IOC_HISTORY_BENCH=1 to run them:
//
//	IOC_HISTORY_BENCH=1 go test ./alerts/ -run '^$' -bench BenchmarkHistory -benchtime 30x -count 3
//
// IOC_HISTORY_BENCH_URL instead names a database already filled, such as
// one from `iocsim seed --end 2026-12-01T12:00:00Z` (the benchmarks' now).

const benchIncidents = 1_000_000

var (
	benchOnce  sync.Once
	benchPool  *pgxpool.Pool
	benchErr   error
	benchNow   = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	benchStore *Store
)

func historyBench(b *testing.B) *Store {
	given := os.Getenv("IOC_HISTORY_BENCH_URL")
	if os.Getenv("IOC_HISTORY_BENCH") == "" && given == "" {
		b.Skip("set IOC_HISTORY_BENCH=1 (fills a kept database with 1M incidents once) or IOC_HISTORY_BENCH_URL")
	}
	benchOnce.Do(func() {
		if given != "" {
			benchPool, benchErr = pgxpool.New(context.Background(), given)
			return
		}
		benchPool, benchErr = seedHistoryBench(b)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	if benchStore == nil {
		benchStore = &Store{pool: benchPool, geo: fakeGeo{}, now: func() time.Time { return benchNow }}
	}
	return benchStore
}

func seedHistoryBench(b *testing.B) (*pgxpool.Pool, error) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dbtest.AdminURL())
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	var exists bool
	admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ioc_history_bench')`).Scan(&exists)
	if !exists {
		if _, err := admin.Exec(ctx, `CREATE DATABASE ioc_history_bench`); err != nil {
			return nil, err
		}
	}
	u, _ := url.Parse(dbtest.AdminURL())
	u.Path = "/ioc_history_bench"
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	pool.Reset()
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM incidents`).Scan(&n)
	if n == benchIncidents {
		return pool, nil
	}
	start := time.Now()
	if _, err := pool.Exec(ctx, `TRUNCATE incidents CASCADE`); err != nil {
		return nil, err
	}
	_, err = pool.Exec(ctx, `INSERT INTO incidents (id, kind, severity, status, resolution, title, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, acknowledged_at, dispatched_at, resolved_at, last_evidence_at, version)
		SELECT 'H' || lpad(g::text, 9, '0'),
			(ARRAY['traffic_congestion','traffic_congestion','traffic_congestion','accident','accident','fire','medical','crime','crowd','flooding'])[1 + g % 10],
			(ARRAY['minor','moderate','moderate','severe','extreme'])[1 + (g / 10) % 5],
			CASE WHEN opened > $1::timestamptz - interval '3 hours' THEN (ARRAY['new','acknowledged','dispatched'])[1 + g % 3] ELSE 'resolved' END,
			CASE WHEN opened > $1::timestamptz - interval '3 hours' THEN NULL WHEN g % 20 = 0 THEN 'false_alarm' ELSE 'handled' END,
			'', ST_SetSRID(ST_MakePoint(105.70 + 0.25 * r1, 20.95 + 0.15 * r2), 4326),
			lpad((4 + 3 * (g % 126))::text, 5, '0'), 'rule:bench', false,
			opened, opened + interval '1 hour',
			opened + (5 + 115 * r3) * interval '1 second',
			CASE WHEN g % 10 < 6 THEN opened + (20 + 280 * r3) * interval '1 second' END,
			CASE WHEN opened <= $1::timestamptz - interval '3 hours' THEN opened + (600 + 7200 * r4) * interval '1 second' END,
			opened, 3
		FROM (SELECT g, $1::timestamptz - random() * interval '365 days' AS opened,
				random() AS r1, random() AS r2, random() AS r3, random() AS r4
			FROM generate_series(1, $2::int) g) s`, benchNow, benchIncidents)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO incident_evidence (incident_id, device_id, ts, kind, rule_id, added_at)
		SELECT id, 'cam-' || right(id, 4), opened_at, 'camera', 'bench', opened_at FROM incidents`); err != nil {
		return nil, fmt.Errorf("seed evidence: %w", err)
	}
	for _, t := range []string{"incidents", "incident_evidence"} {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			return nil, err
		}
	}
	b.Logf("seeded %d incidents in %v", benchIncidents, time.Since(start).Round(time.Second))
	return pool, nil
}

// timed runs f b.N times and reports the median and p95 of one run.
func timed(b *testing.B, f func() int) {
	b.Helper()
	ds := make([]time.Duration, 0, b.N)
	rows := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		rows = f()
		ds = append(ds, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[(len(ds)*95)/100].Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(rows), "rows")
}

func BenchmarkHistory(b *testing.B) {
	s := historyBench(b)
	ctx := context.Background()
	day := IncidentFilter{From: benchNow.Add(-24 * time.Hour), To: benchNow}
	month := IncidentFilter{From: benchNow.Add(-30 * 24 * time.Hour), To: benchNow}
	b.Run("bbox-24h", func(b *testing.B) {
		f := day
		f.BBox, f.Limit = []float64{105.75, 20.98, 105.90, 21.08}, 1000 // the inner districts
		timed(b, func() int {
			items, _, err := s.List(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			return len(items)
		})
	})
	// Peer in the same run: the same page without a time range, which the
	// opened_at index serves as well (only the newest rows are read).
	b.Run("bbox-newest-page", func(b *testing.B) {
		f := IncidentFilter{BBox: []float64{105.75, 20.98, 105.90, 21.08}, Limit: 1000}
		timed(b, func() int {
			items, _, err := s.List(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			return len(items)
		})
	})
	b.Run("stats-ward-30d", func(b *testing.B) {
		timed(b, func() int {
			st, err := s.IncidentStats(ctx, month, "ward")
			if err != nil {
				b.Fatal(err)
			}
			return int(st.Total)
		})
	})
	b.Run("stats-day-year", func(b *testing.B) {
		f := IncidentFilter{From: benchNow.Add(-365 * 24 * time.Hour), To: benchNow}
		timed(b, func() int {
			st, err := s.IncidentStats(ctx, f, "day")
			if err != nil {
				b.Fatal(err)
			}
			return int(st.Total)
		})
	})
	b.Run("response-times-ward-30d", func(b *testing.B) {
		timed(b, func() int {
			rep, err := s.ResponseTimes(ctx, month, "ward", DefaultTargets)
			if err != nil {
				b.Fatal(err)
			}
			return int(rep.All.Count)
		})
	})
	// Peer in the same run: the aggregate query ResponseTimes replaced.
	b.Run("response-times-ward-30d-sql-peer", func(b *testing.B) {
		timed(b, func() int {
			rep, err := responseTimesSQL(ctx, s, month, "ward", DefaultTargets)
			if err != nil {
				b.Fatal(err)
			}
			return int(rep.All.Count)
		})
	})
	for _, fm := range []struct {
		name string
		new  func() ExportFormat
	}{{"csv", func() ExportFormat { return CSVExport{} }}, {"geojson", func() ExportFormat { return &GeoJSONExport{} }}} {
		b.Run("export-"+fm.name+"-30d", func(b *testing.B) {
			rows := 0
			start := time.Now()
			for i := 0; i < b.N; i++ {
				e := fm.new()
				e.Begin(io.Discard)
				n, err := s.Export(func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }, month,
					func(items []*Incident) error { return e.Page(io.Discard, items) })
				if err != nil {
					b.Fatal(err)
				}
				e.End(io.Discard)
				rows += n
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

// TestHistoryPlans logs EXPLAIN (ANALYZE, BUFFERS) of the measured
// queries on the benchmark database (docs/history.md shows them):
//
//	IOC_HISTORY_BENCH_URL=... go test ./alerts/ -run TestHistoryPlans -v
func TestHistoryPlans(t *testing.T) {
	given := os.Getenv("IOC_HISTORY_BENCH_URL")
	if given == "" {
		t.Skip("set IOC_HISTORY_BENCH_URL to a filled database")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, given)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	day := IncidentFilter{From: benchNow.Add(-24 * time.Hour), To: benchNow, BBox: []float64{105.75, 20.98, 105.90, 21.08}, Limit: 1000}
	month := IncidentFilter{From: benchNow.Add(-30 * 24 * time.Hour), To: benchNow}
	explain := func(name, sql string, args []any) {
		rows, err := pool.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:\n%s", name, strings.Join(plan, "\n"))
	}
	sql, args, err := listQuery(day)
	if err != nil {
		t.Fatal(err)
	}
	explain("bbox-24h", sql, args)
	var a sqlArgs
	where, _ := filterWhere(month, &a)
	explain("stats-ward-30d", `SELECT coalesce(i.ward_code, ''), count(*) FROM incidents i WHERE `+where+` GROUP BY 1`, a)
	a = nil
	where, _ = filterWhere(month, &a)
	explain("response-times-30d (the scan ResponseTimes reads)", `SELECT coalesce(i.ward_code, ''), i.acknowledged_at - i.opened_at,
		i.dispatched_at - i.opened_at, i.resolved_at - i.opened_at FROM incidents i WHERE `+where, a)
	page := month
	page.Limit = ExportPage
	sql, args, err = listQuery(page)
	if err != nil {
		t.Fatal(err)
	}
	explain("export page (2,000 rows of 30 days)", sql, args)
}
