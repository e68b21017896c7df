package seed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db/dbtest"
	"ioc/ingest"
)

const wardsFile = "../../../shared/data/hanoi/wards.geojson"

// TestSeedSmall seeds a small history and checks the counts, the city's
// rhythm, the lifecycle and that the dropped indexes came back.
func TestSeedSmall(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	end := time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC)
	cfg := Config{Telemetry: 20_000, Incidents: 3_000, Days: 7, End: end, Seed: 7, WardsPath: wardsFile, Jobs: 2}
	// The rollups as iocsim runs them, beside the index rebuild.
	cfg.Rollups = func(ctx context.Context, p *pgxpool.Pool, from, to time.Time) error {
		return ingest.RollUpConcurrently(ctx, p, from, to, 2)
	}
	sum, err := Run(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	count := func(sql string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	var tele int64
	for _, tb := range []string{"traffic_readings", "unit_positions", "camera_events", "emergency_signals"} {
		n := count(`SELECT count(*) FROM ` + tb)
		if n != sum.Rows[tb] || n == 0 {
			t.Errorf("%s: %d rows stored, %d reported", tb, n, sum.Rows[tb])
		}
		tele += n
	}
	if tele != cfg.Telemetry {
		t.Errorf("telemetry rows %d, want %d", tele, cfg.Telemetry)
	}
	if n := count(`SELECT count(*) FROM incidents`); n != cfg.Incidents {
		t.Errorf("incidents %d, want %d", n, cfg.Incidents)
	}
	// Every row in the span, every incident and reading in a ward.
	if n := count(`SELECT count(*) FROM traffic_readings WHERE ts < $1 OR ts >= $2 OR ward_code IS NULL`, end.AddDate(0, 0, -7), end); n != 0 {
		t.Errorf("%d traffic readings outside the span or the wards", n)
	}
	if n := count(`SELECT count(*) FROM incidents WHERE ward_code IS NULL OR opened_at < $1 OR opened_at >= $2`, end.AddDate(0, 0, -7), end); n != 0 {
		t.Errorf("%d incidents outside the span or the wards", n)
	}
	// Each incident opened in its timeline; its times in order.
	if n := count(`SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM incident_timeline l WHERE l.incident_id = i.id AND l.action = 'opened')`); n != 0 {
		t.Errorf("%d incidents without an opened entry", n)
	}
	if n := count(`SELECT count(*) FROM incidents WHERE acknowledged_at < opened_at OR dispatched_at < acknowledged_at OR resolved_at < opened_at
		OR (status = 'resolved') <> (resolved_at IS NOT NULL) OR updated_at > $1`, end); n != 0 {
		t.Errorf("%d incidents with times out of order", n)
	}
	// Response times: most within NFPA's 60 s, some not.
	var within float64
	pool.QueryRow(ctx, `SELECT avg((acknowledged_at - opened_at <= interval '60 seconds')::int) FROM incidents WHERE acknowledged_at IS NOT NULL`).Scan(&within)
	if within < 0.6 || within > 0.97 {
		t.Errorf("share acknowledged within 60 s = %.2f, want most but not all", within)
	}
	// Rhythm: the evening rush is slower than the small hours, and busier in incidents.
	var rush, night float64
	pool.QueryRow(ctx, `SELECT avg(speed_kmh) FILTER (WHERE extract(hour FROM ts AT TIME ZONE 'Asia/Ho_Chi_Minh') BETWEEN 17 AND 18),
		avg(speed_kmh) FILTER (WHERE extract(hour FROM ts AT TIME ZONE 'Asia/Ho_Chi_Minh') BETWEEN 2 AND 3) FROM traffic_readings`).Scan(&rush, &night)
	if !(rush < night-5) {
		t.Errorf("mean speed at 17-19h %.1f, at 2-4h %.1f: want the rush slower", rush, night)
	}
	inRush := count(`SELECT count(*) FROM incidents WHERE extract(hour FROM opened_at AT TIME ZONE 'Asia/Ho_Chi_Minh') BETWEEN 17 AND 18`)
	inNight := count(`SELECT count(*) FROM incidents WHERE extract(hour FROM opened_at AT TIME ZONE 'Asia/Ho_Chi_Minh') BETWEEN 3 AND 4`)
	if inRush < 2*inNight {
		t.Errorf("incidents 17-19h %d, 3-5h %d: want the rush busier", inRush, inNight)
	}
	// The indexes and foreign keys dropped for the load are back.
	for _, ix := range []string{"incidents_title_trgm_idx", "incidents_opened_idx", "incident_timeline_incident_idx", "camera_events_geom_idx"} {
		if n := count(`SELECT count(*) FROM pg_class WHERE relname = $1`, ix); n != 1 {
			t.Errorf("index %s missing after the seed", ix)
		}
	}
	if n := count(`SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text IN ('incident_timeline', 'incident_evidence')`); n != 2 {
		t.Errorf("%d foreign keys on timeline and evidence, want 2", n)
	}
	// Each incident's evidence count is what its evidence rows say, and the
	// trigger that keeps it (paused for the load) is on again.
	if n := count(`SELECT count(*) FROM incidents i WHERE evidence_count <> (SELECT count(*) FROM incident_evidence e WHERE e.incident_id = i.id)`); n != 0 {
		t.Errorf("%d incidents with a wrong evidence_count", n)
	}
	if n := count(`SELECT count(*) FROM incidents WHERE evidence_count > 1`); n == 0 {
		t.Error("no incident with more than one piece of evidence: the check above proves little")
	}
	if n := count(`SELECT count(*) FROM pg_trigger WHERE tgname = 'incident_evidence_count' AND tgenabled = 'O'`); n != 1 {
		t.Error("incident_evidence_count trigger not enabled after the seed")
	}
	if n := count(`SELECT count(*) FROM devices WHERE messages > 0 AND last_ts IS NOT NULL`); n < int64(sum.Devices)*9/10 {
		t.Errorf("%d of %d devices carry their message counts", n, sum.Devices)
	}
	// Every reading is in an hourly and a daily rollup.
	if n, want := count(`SELECT coalesce(sum(n), 0) FROM telemetry_rollups WHERE bucket = '1h'`), tele; n != want {
		t.Errorf("hourly rollups count %d readings, want %d", n, want)
	}
	if n, want := count(`SELECT coalesce(sum(n), 0) FROM telemetry_rollups WHERE bucket = '1d'`), tele; n != want {
		t.Errorf("daily rollups count %d readings, want %d", n, want)
	}
	// A second seed into the same database refuses.
	if _, err := Run(ctx, pool, cfg); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second seed: %v, want ErrNotEmpty", err)
	}
}
