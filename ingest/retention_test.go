package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db"
	"ioc/db/dbtest"
)

// Issue 11 part 6: telemetry past retention_days goes a whole day
// partition at a time; incidents, their timelines and the rollups stay;
// the pass and what it dropped show in metrics.
func TestRetentionDropsOldPartitions(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	old := now.AddDate(0, 0, -20)
	if err := db.EnsurePartitions(ctx, pool, old, now); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO traffic_readings (device_id, ts, received_at, geom, speed_kmh, volume, occupancy, interval_s)
		 VALUES ('S-OLD', $1, $1, ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 20, 5, 0.3, 60),
		        ('S-NEW', $2, $2, ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 20, 5, 0.3, 60)`,
		`INSERT INTO incidents (id, kind, severity, status, geom, opened_by, auto_resolve, opened_at, updated_at, last_evidence_at)
		 VALUES ('OLDINCIDENT', 'fire', 'severe', 'resolved', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 'op', false, $1, $1, $1)`,
		`INSERT INTO incident_timeline (incident_id, at, actor, action) VALUES ('OLDINCIDENT', $1, 'op', 'opened')`,
		`INSERT INTO telemetry_rollups (device_id, bucket, bucket_start, n) VALUES ('S-OLD', '1h', date_trunc('hour', $1::timestamptz), 1)`,
	} {
		args := []any{old.Add(time.Hour)}
		if len(args) > 0 && sql[12:28] == "traffic_readings" {
			args = append(args, now.Add(-time.Hour))
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	cfg := baseConfig()
	cfg.RetentionDays = 9
	d := runDirect(t, pool, cfg)
	m := d.ing.Metrics()
	waitFor(t, "a retention pass", func() bool { return testutil.ToFloat64(m.RetentionRuns.WithLabelValues("ok")) >= 1 })
	if got := d.count(t, `SELECT count(*) FROM pg_class WHERE relname LIKE 'traffic_readings_%' AND relname < 'traffic_readings_'||to_char(now() - interval '10 days', 'YYYYMMDD')`); got != 0 {
		t.Errorf("%d traffic partitions past retention kept", got)
	}
	if got := d.count(t, `SELECT count(*) FROM traffic_readings`); got != 1 {
		t.Errorf("%d readings left, want the recent one", got)
	}
	for _, q := range []string{`SELECT count(*) FROM incidents`, `SELECT count(*) FROM incident_timeline`, `SELECT count(*) FROM telemetry_rollups`} {
		if got := d.count(t, q); got != 1 {
			t.Errorf("%s = %d after retention, want 1 (kept)", q, got)
		}
	}
	// 20 days back to 10: 4 tables × about 10 days.
	if got := testutil.ToFloat64(m.PartitionsDropped); got < 36 {
		t.Errorf("ioc_retention_partitions_dropped_total = %v, want ≥ 36", got)
	}
	if got := testutil.ToFloat64(m.RetentionLastRun); got < float64(now.Unix()-60) {
		t.Errorf("ioc_retention_last_run_timestamp_seconds = %v", got)
	}
	if got := testutil.ToFloat64(m.RetentionRuns.WithLabelValues("ok")); got < 1 {
		t.Errorf("ioc_retention_runs_total{result=ok} = %v", got)
	}
	if got := testutil.ToFloat64(m.RetentionCutoff); got < float64(now.AddDate(0, 0, -10).Unix()) {
		t.Errorf("ioc_retention_cutoff_timestamp_seconds = %v", got)
	}
}
