package main

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
)

// BenchmarkOGCItemsPage measures one OGC items page through iocd's whole
// HTTP stack (authentication, ward scope, parameters, the incident query,
// GeoJSON encoding), against the JSON API's GET /api/v1/incidents with the
// same selection as the peer in the same run. It reports p50 and p95 per
// request. The database holds IOC_OGC_BENCH_INCIDENTS incidents (default
// 200,000) over 30 days across the city; each request asks for a 24-hour
// window in a ~3 km box, up to 100 or 1000 features:
//
//	go test -run '^$' -bench OGCItemsPage -benchtime 100x -count 3 ./cmd/iocd/
//
// With IOC_OGC_BENCH_URL it runs on that database instead, filled by
// `iocsim seed --end 2026-12-01T12:00:00Z` (1M incidents over a year),
// asking for the last day but one of it:
//
//	IOC_OGC_BENCH_URL=postgres://ioc:ioc@127.0.0.1:5432/hist_seed1 go test -run '^$' -bench OGCItemsPage -benchtime 100x -count 3 ./cmd/iocd/
func BenchmarkOGCItemsPage(b *testing.B) {
	ctx := context.Background()
	pool, dbURL, end, fill := ogcBenchDB(b)
	cfg := config.Default()
	cfg.DatabaseURL, cfg.MetricsAddr, cfg.AreasFile = dbURL, "", wardsFile
	pw := filepath.Join(b.TempDir(), "pw")
	os.WriteFile(pw, []byte("first-start-secret-pw\n"), 0o600)
	cfg.BootstrapAdminPasswordFile = pw
	a, err := newApp(ctx, cfg, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.close)
	fill() // after the app imported the wards
	store := auth.NewStore(pool, auth.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}, 2)
	name := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) // a given database may hold earlier runs' users
	u, err := store.AddUser(ctx, auth.NewUser{Name: name, Role: "analyst", Password: "ogc-measure-secret-pw"})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := store.NewSession(ctx, u, time.Hour, "127.0.0.1", "bench")
	if err != nil {
		b.Fatal(err)
	}
	h := a.srv.Handler()
	from, to := end.Add(-48*time.Hour), end.Add(-24*time.Hour)
	bbox := "105.82,21.00,105.85,21.03"
	dt := url.QueryEscape(from.Format(time.RFC3339) + "/" + to.Format(time.RFC3339))
	for _, c := range []struct{ name, path string }{
		{"ogc/limit=100", "/ogc/collections/incidents/items?limit=100&bbox=" + bbox + "&datetime=" + dt},
		{"json-peer/limit=100", "/api/v1/incidents?limit=100&bbox=" + bbox + "&from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))},
		{"ogc/limit=1000", "/ogc/collections/incidents/items?limit=1000&bbox=" + bbox + "&datetime=" + dt},
		{"ogc/filter", "/ogc/collections/incidents/items?limit=100&bbox=" + bbox + "&datetime=" + dt +
			"&filter=" + url.QueryEscape("status <> 'resolved' AND severity IN ('severe','extreme')")},
		{"ogc/crs=3405", "/ogc/collections/incidents/items?limit=100&bbox=" + bbox + "&datetime=" + dt +
			"&crs=" + url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/3405")},
		{"ogc/whole-city-30d", "/ogc/collections/incidents/items?limit=100"},
	} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			features := 0
			// Warm-up requests (untimed): caches and the plan, as in service.
			for i := -10; i < b.N; i++ {
				r := httptest.NewRequest("GET", c.path, nil)
				r.RemoteAddr = "127.0.0.1:50000"
				r.Header.Set("Authorization", "Bearer "+sess.Token)
				w := httptest.NewRecorder()
				t0 := time.Now()
				h.ServeHTTP(w, r)
				if i >= 0 {
					lat = append(lat, time.Since(t0))
				}
				if w.Code != 200 {
					b.Fatalf("%s: %d %.200s", c.path, w.Code, w.Body)
				}
				features = w.Body.Len()
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95_ms")
			b.ReportMetric(float64(features), "body_bytes")
		})
	}
}

// ogcBenchDB is the benchmark's database and the end of its history: the
// one IOC_OGC_BENCH_URL names (a seeded year), or a new one that fill fills
// with IOC_OGC_BENCH_INCIDENTS incidents (default 200,000) over 30 days
// once the wards are in.
func ogcBenchDB(b *testing.B) (pool *pgxpool.Pool, dbURL string, end time.Time, fill func()) {
	ctx := context.Background()
	if u := os.Getenv("IOC_OGC_BENCH_URL"); u != "" {
		pool, err := pgxpool.New(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM incidents`).Scan(&n); err != nil || n == 0 {
			b.Fatalf("IOC_OGC_BENCH_URL: %d incidents, %v", n, err)
		}
		b.Logf("%d incidents in the given database", n)
		return pool, u, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), func() {}
	}
	n := 200000
	if s := os.Getenv("IOC_OGC_BENCH_INCIDENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	pool, dbURL = dbtest.New(b)
	end = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	return pool, dbURL, end, func() { fillOGCBench(b, pool, end, n) }
}

func fillOGCBench(b *testing.B, pool *pgxpool.Pool, end time.Time, n int) {
	ctx := context.Background()
	start := time.Now()
	if _, err := pool.Exec(ctx, `
		INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, last_evidence_at)
		SELECT 'X' || lpad(g::text, 9, '0'),
			(ARRAY['traffic_congestion','accident','fire','medical','crime','flooding'])[1 + g % 6],
			(ARRAY['minor','moderate','severe','extreme'])[1 + g % 4],
			(ARRAY['new','acknowledged','dispatched','resolved','resolved','resolved'])[1 + (g / 7) % 6],
			'Sự cố ' || g, p, (SELECT code FROM areas a WHERE a.geom && p AND ST_Covers(a.geom, p) ORDER BY code LIMIT 1),
			'rule:bench', false, t, t, t
		FROM (SELECT g, ST_SetSRID(ST_MakePoint(105.75 + random() * 0.2, 20.95 + random() * 0.15), 4326) p,
			$1::timestamptz - random() * interval '30 days' t FROM generate_series(1, $2::int) g) s`, end, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE incidents`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d incidents in %v", n, time.Since(start).Round(time.Millisecond))
}
