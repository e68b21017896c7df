package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// rollupFields are the numeric reading fields rolled up per device kind,
// in the order of the rollup's a, b, c columns (db/migrations/0330).
var rollupFields = map[string][]string{
	"traffic":   {"speed_kmh", "volume", "occupancy"},
	"camera":    {"confidence", "count"},
	"emergency": {"priority"},
	"unit":      {"speed_kmh"},
}

// kindTables maps a device kind to its observation table.
var kindTables = map[string]string{
	"traffic": "traffic_readings", "camera": "camera_events", "emergency": "emergency_signals", "unit": "unit_positions",
}

// Buckets are aligned to Hanoi time (UTC+7, no daylight saving): hours
// are UTC hours, days are Hanoi days.
const bucketOrigin = "2000-01-01T00:00:00+07:00"

var hanoiZone = time.FixedZone("ICT", 7*3600)

// bucketSizes are the series' buckets; 5m is computed from readings,
// 1h and 1d read the rollups.
var bucketSizes = map[string]time.Duration{"5m": 5 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour}

// bucketFloor is the start of t's bucket.
func bucketFloor(t time.Time, size time.Duration) time.Time {
	if size == 24*time.Hour {
		lt := t.In(hanoiZone)
		return time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, hanoiZone).UTC()
	}
	return t.UTC().Truncate(size)
}

// bucketCeil is the first bucket start at or after t.
func bucketCeil(t time.Time, size time.Duration) time.Time {
	f := bucketFloor(t, size)
	if f.Before(t) {
		return f.Add(size) // Hanoi days are all 24 h
	}
	return f
}

// aggCols is "count(x), sum(x), min(x), max(x)" for each rollup slot of a
// kind, NULLs for the slots it does not use.
func aggCols(kind string) string {
	fs := rollupFields[kind]
	var b strings.Builder
	for i := range 3 {
		if i < len(fs) {
			f := fs[i]
			fmt.Fprintf(&b, ", count(%[1]s), sum(%[1]s), min(%[1]s), max(%[1]s)", f)
		} else {
			b.WriteString(", 0, NULL::float8, NULL::real, NULL::real")
		}
	}
	return b.String()
}

const rollupCols = `n, a_n, a_sum, a_min, a_max, b_n, b_sum, b_min, b_max, c_n, c_sum, c_min, c_max`

const rollupUpsert = ` ON CONFLICT (device_id, bucket, bucket_start, ward_code) DO UPDATE SET n = EXCLUDED.n,
	a_n = EXCLUDED.a_n, a_sum = EXCLUDED.a_sum, a_min = EXCLUDED.a_min, a_max = EXCLUDED.a_max,
	b_n = EXCLUDED.b_n, b_sum = EXCLUDED.b_sum, b_min = EXCLUDED.b_min, b_max = EXCLUDED.b_max,
	c_n = EXCLUDED.c_n, c_sum = EXCLUDED.c_sum, c_min = EXCLUDED.c_min, c_max = EXCLUDED.c_max`

var (
	metricRollupRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_rollup_runs_total",
		Help: "Telemetry rollup passes, by result (ok, error)."}, []string{"result"})
	metricRollupUntil = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_rollup_rolled_until_seconds",
		Help: "Unix time up to which hourly and daily telemetry rollups are complete."})
	metricRollupSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ioc_rollup_duration_seconds",
		Help: "Time of one rollup pass.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 10)})
)

// RollUp recomputes the hourly rollups of every reading with ts in
// [from, to) (whole hours) and the daily rollups of the days they touch,
// one Hanoi day per transaction, and moves rolled_until up to to. It is
// idempotent: a bucket recomputed from the same readings comes out the
// same. The seeder (sim/seed) calls it over the whole history.
func RollUp(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) error {
	for _, d := range rollupDays(from, to) {
		lo, hi := d[0], d[1]
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var b pgx.Batch
			for _, kind := range []string{"traffic", "camera", "emergency", "unit"} {
				b.Queue(`INSERT INTO telemetry_rollups (device_id, bucket, bucket_start, ward_code, `+rollupCols+`)
					SELECT device_id, '1h', date_bin('1 hour', ts, $3::timestamptz), coalesce(ward_code, ''), count(*)`+aggCols(kind)+`
					FROM `+kindTables[kind]+` WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3, 4`+rollupUpsert,
					lo, hi, bucketOrigin)
			}
			day := bucketFloor(lo, 24*time.Hour)
			b.Queue(`INSERT INTO telemetry_rollups (device_id, bucket, bucket_start, ward_code, `+rollupCols+`)
				SELECT device_id, '1d', $1::timestamptz, ward_code, sum(n), sum(a_n), sum(a_sum), min(a_min), max(a_max),
				  sum(b_n), sum(b_sum), min(b_min), max(b_max), sum(c_n), sum(c_sum), min(c_min), max(c_max)
				FROM telemetry_rollups WHERE bucket = '1h' AND bucket_start >= $1 AND bucket_start < $2
				GROUP BY device_id, ward_code`+rollupUpsert, day, day.Add(24*time.Hour))
			b.Queue(`INSERT INTO telemetry_rollup_state (id, rolled_until, updated_at) VALUES (1, $1, now())
				ON CONFLICT (id) DO UPDATE SET rolled_until = greatest(telemetry_rollup_state.rolled_until, EXCLUDED.rolled_until), updated_at = now()`, hi)
			return tx.SendBatch(ctx, &b).Close()
		})
		if err != nil {
			return fmt.Errorf("roll up telemetry %s..%s: %w", lo.Format(time.RFC3339), hi.Format(time.RFC3339), err)
		}
	}
	return nil
}

// rollupDays cuts [from, to), in whole hours, at Hanoi midnights: the
// unit of work of a rollup pass.
func rollupDays(from, to time.Time) [][2]time.Time {
	from, to = bucketFloor(from, time.Hour), bucketFloor(to, time.Hour)
	var days [][2]time.Time
	for lo := from; lo.Before(to); {
		hi := bucketFloor(lo, 24*time.Hour).Add(24 * time.Hour)
		if hi.After(to) {
			hi = to
		}
		days = append(days, [2]time.Time{lo, hi})
		lo = hi
	}
	return days
}

// RollUpConcurrently is RollUp over [from, to) on up to jobs connections
// at once, one Hanoi day each: a day's hourly rows and its daily row are
// its own, so days do not meet. For a backfill (the seeder's year); while
// it runs, rolled_until can be past a day still in flight, so a failed
// run must be run again before the series are trusted.
func RollUpConcurrently(ctx context.Context, pool *pgxpool.Pool, from, to time.Time, jobs int) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(max(1, jobs))
	for _, d := range rollupDays(from, to) {
		eg.Go(func() error { return RollUp(ctx, pool, d[0], d[1]) })
	}
	return eg.Wait()
}

// RollupConfig schedules the rollups.
type RollupConfig struct {
	Every time.Duration // how often closed hours are rolled up (default 1 min)
	// Recent is how far back each pass recomputes, for readings that
	// arrive late (default 2 h). Later ones reach the rollups when their
	// hour is rolled again (RollUp over it).
	Recent time.Duration
	// Backfill: how far back the first pass on a database starts
	// (default 90 days, the default retention).
	Backfill time.Duration
}

// Rollups keeps telemetry_rollups up to date. Several instances may run
// it: passes are idempotent and each day is one transaction.
type Rollups struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	cfg  RollupConfig
	now  func() time.Time
}

// NewRollups makes the rollup schedule; reg, if set, gets its metrics.
func NewRollups(pool *pgxpool.Pool, cfg RollupConfig, reg prometheus.Registerer, log *slog.Logger) *Rollups {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Recent <= 0 {
		cfg.Recent = 2 * time.Hour
	}
	if cfg.Backfill <= 0 {
		cfg.Backfill = 90 * 24 * time.Hour
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{metricRollupRuns, metricRollupUntil, metricRollupSeconds} {
			if err := reg.Register(c); err != nil {
				if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
					log.Warn("rollups: metrics", "err", err)
				}
			}
		}
	}
	return &Rollups{pool: pool, log: log, cfg: cfg, now: time.Now}
}

// Pass rolls up from where the last pass stopped (less Recent) to the last
// closed hour, catching up whatever a downtime left.
func (r *Rollups) Pass(ctx context.Context) error {
	t0 := time.Now()
	closed := bucketFloor(r.now(), time.Hour)
	var until *time.Time
	if err := r.pool.QueryRow(ctx, `SELECT (SELECT rolled_until FROM telemetry_rollup_state)`).Scan(&until); err != nil {
		metricRollupRuns.WithLabelValues("error").Inc()
		return fmt.Errorf("rollup state: %w", err)
	}
	from := closed.Add(-r.cfg.Backfill)
	if until != nil {
		from = until.Add(-r.cfg.Recent)
	}
	if err := RollUp(ctx, r.pool, from, closed); err != nil {
		metricRollupRuns.WithLabelValues("error").Inc()
		return err
	}
	metricRollupRuns.WithLabelValues("ok").Inc()
	metricRollupUntil.Set(float64(closed.Unix()))
	metricRollupSeconds.Observe(time.Since(t0).Seconds())
	return nil
}

// Run makes a pass every Every until ctx ends. A failed pass is logged and
// retried at the next tick; the next pass starts where the last good one
// stopped.
func (r *Rollups) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("rollups", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
