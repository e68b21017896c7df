package geo

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// UnitPosition is one position-and-status report of a responder unit, as
// ingest decoded it from city/units/{unit_id}.
type UnitPosition struct {
	ID         string
	Kind       string // police, fire, ambulance, rescue, traffic_police
	Status     string // available, dispatched, en_route, on_scene, out_of_service
	Lon, Lat   float64
	TS         time.Time
	SpeedKmh   *float64
	HeadingDeg *float64
}

// Unit is the latest known state of a unit.
type Unit struct {
	UnitPosition
	Ward string // ward code covering the position, "" outside every ward
}

// NearestUnit is a ranked answer of NearestUnits.
type NearestUnit struct {
	Unit
	DistanceM  float64 // great-circle distance
	ETASeconds float64 // rough: DistanceM × DetourFactor at the kind's urban speed
}

// DetourFactor turns straight-line distance into a rough road distance.
// 1.4 is the usual figure for dense street grids; Hanoi's, with its river
// crossings, is if anything worse, which is why this is called rough.
const DetourFactor = 1.4

// UrbanSpeedKmh is the average speed assumed per kind of unit under
// lights and sirens in Hanoi traffic (motorbike-borne traffic police are
// the quickest through it).
var UrbanSpeedKmh = map[string]float64{
	"ambulance":      30,
	"fire":           25,
	"police":         30,
	"rescue":         25,
	"traffic_police": 35,
}

const defaultUrbanSpeedKmh = 30

// UnitStaleAfter: a unit silent for longer is not offered as nearest (its
// position is no longer worth driving to).
const UnitStaleAfter = 15 * time.Minute

// Units keeps the latest state of every responder unit in memory (for
// nearest-unit answers in microseconds) and in units_latest (for SQL,
// other instances and restarts). Observe is the hook ingest calls after it
// commits a batch; it only touches memory. Run writes what changed to
// PostgreSQL in batches and picks up what other instances observed (with a
// shared MQTT subscription each instance only sees some of the messages).
// Safe for concurrent use; the mutex is never held across I/O.
type Units struct {
	pool  *pgxpool.Pool // nil: memory only
	wards *WardIndex    // may be nil
	log   *slog.Logger
	now   func() time.Time

	// max and expiry bound the registry: unit ids come from the broker,
	// so whoever may publish under city/units/ could otherwise make it
	// grow without end. See SetLimits.
	max    int
	expiry time.Duration

	mu     sync.RWMutex
	latest map[string]Unit
	dirty  map[string]struct{}
	wake   chan struct{} // capacity 1: "many dirty, flush now"
}

// Defaults of SetLimits (iocd's come from config: units_max, unit_expiry).
const (
	DefaultUnitsMax   = 10_000
	DefaultUnitExpiry = 24 * time.Hour
)

var (
	metricUnitsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_geo_units_dropped_total",
		Help: "Units left out of the registry: expired (not heard from for unit_expiry) or full (a new unit beyond units_max).",
	}, []string{"reason"})
	metricUnits = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ioc_geo_units",
		Help: "Units in this instance's registry.",
	})
)

// UnitCollectors are the unit registry's metrics, for the caller to register.
func UnitCollectors() []prometheus.Collector {
	return []prometheus.Collector{metricUnitsDropped, metricUnits}
}

// SetLimits bounds the registry: at most max units (a new unit beyond
// that is not taken until others expire), and a unit not heard from for
// expiry is forgotten. Call before Run.
func (u *Units) SetLimits(max int, expiry time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if max > 0 {
		u.max = max
	}
	if expiry > 0 {
		u.expiry = expiry
	}
}

// NewUnits makes the unit registry. pool and wards may be nil.
func NewUnits(pool *pgxpool.Pool, wards *WardIndex, log *slog.Logger) *Units {
	return &Units{
		pool: pool, wards: wards, log: log, now: time.Now, max: DefaultUnitsMax, expiry: DefaultUnitExpiry,
		latest: map[string]Unit{}, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1),
	}
}

// Observe records a report. Reports older than the unit's latest are
// ignored, so redelivered or late messages never move a unit back.
func (u *Units) Observe(p UnitPosition) {
	if p.ID == "" || math.IsNaN(p.Lon) || math.IsNaN(p.Lat) {
		return
	}
	unit := Unit{UnitPosition: p}
	if u.wards != nil {
		unit.Ward, _ = u.wards.Lookup(p.Lon, p.Lat)
	}
	if p.TS.Before(u.now().Add(-u.expiry)) {
		return // would expire at once
	}
	u.mu.Lock()
	cur, ok := u.latest[p.ID]
	if ok && p.TS.Before(cur.TS) {
		u.mu.Unlock()
		return
	}
	if !ok && len(u.latest) >= u.max {
		u.mu.Unlock()
		metricUnitsDropped.WithLabelValues("full").Inc()
		return
	}
	u.latest[p.ID] = unit
	u.dirty[p.ID] = struct{}{}
	many := len(u.dirty) >= 1000
	u.mu.Unlock()
	if many {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
}

// Get returns the latest state of one unit.
func (u *Units) Get(id string) (Unit, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	x, ok := u.latest[id]
	return x, ok
}

// List returns every unit's latest state, by id.
func (u *Units) List() []Unit {
	page, _ := u.Page("", 0, nil)
	return page
}

// Page returns, by id, up to limit units (0: all) with ids after after
// that keep passes (nil: all), and whether more follow.
func (u *Units) Page(after string, limit int, keep func(Unit) bool) ([]Unit, bool) {
	u.mu.RLock()
	out := make([]Unit, 0, min(len(u.latest), max(limit+1, 16)))
	for _, x := range u.latest {
		if x.ID > after && (keep == nil || keep(x)) {
			out = append(out, x)
		}
	}
	u.mu.RUnlock()
	slices.SortFunc(out, func(a, b Unit) int { return cmp.Compare(a.ID, b.ID) })
	if limit > 0 && len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// expire forgets units not heard from for the expiry, and returns how
// many are left.
func (u *Units) expire() int {
	cutoff := u.now().Add(-u.expiry)
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for id, x := range u.latest {
		if x.TS.Before(cutoff) {
			delete(u.latest, id)
			delete(u.dirty, id)
			n++
		}
	}
	if n > 0 {
		metricUnitsDropped.WithLabelValues("expired").Add(float64(n))
	}
	metricUnits.Set(float64(len(u.latest)))
	return len(u.latest)
}

// NearestUnits ranks the available units (of kind, if not empty) by
// great-circle distance from (lon, lat), nearest first, at most limit.
// Units silent for more than UnitStaleAfter are left out, and so are units
// in a ward that visible (if not nil) refuses and the units in except: those
// already on the incident asked about, which field units report as
// available until their crew changes the status, so the status alone would
// offer them again.
func (u *Units) NearestUnits(lon, lat float64, kind string, limit int, visible func(ward string) bool, except []string) []NearestUnit {
	if limit <= 0 {
		return nil
	}
	cutoff := u.now().Add(-UnitStaleAfter)
	var out []NearestUnit
	u.mu.RLock()
	for _, x := range u.latest {
		if x.Status != "available" || (kind != "" && x.Kind != kind) || x.TS.Before(cutoff) ||
			(visible != nil && !visible(x.Ward)) || slices.Contains(except, x.ID) {
			continue
		}
		out = append(out, NearestUnit{Unit: x, DistanceM: HaversineM(lon, lat, x.Lon, x.Lat)})
	}
	u.mu.RUnlock()
	slices.SortFunc(out, func(a, b NearestUnit) int {
		if c := cmp.Compare(a.DistanceM, b.DistanceM); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		speed, ok := UrbanSpeedKmh[out[i].Kind]
		if !ok {
			speed = defaultUrbanSpeedKmh
		}
		out[i].ETASeconds = math.Round(out[i].DistanceM * DetourFactor / (speed / 3.6))
	}
	return out
}

// HaversineM is the great-circle distance in metres on the PostGIS sphere.
func HaversineM(lon1, lat1, lon2, lat2 float64) float64 {
	p1, p2 := lat1*degToRad, lat2*degToRad
	dp := (lat2 - lat1) * degToRad / 2
	dl := (lon2 - lon1) * degToRad / 2
	a := math.Sin(dp)*math.Sin(dp) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl)*math.Sin(dl)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Load fills memory from units_latest (at start).
func (u *Units) Load(ctx context.Context) error {
	if u.pool == nil {
		return nil
	}
	_, err := u.pull(ctx, time.Time{})
	return err
}

// Run flushes changed units to units_latest every flushEvery (sooner when
// many changed) and pulls other instances' changes, until ctx ends; a last
// flush runs on the way out.
func (u *Units) Run(ctx context.Context) error {
	const expireEvery = time.Minute
	expire := time.NewTicker(expireEvery)
	defer expire.Stop()
	if u.pool == nil {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-expire.C:
				u.expire()
			}
		}
	}
	const flushEvery, pullEvery = 500 * time.Millisecond, 2 * time.Second
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	pull := time.NewTicker(pullEvery)
	defer pull.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return u.Flush(fctx)
		case <-expire.C:
			u.expire()
			continue
		case <-flush.C:
		case <-u.wake:
		case <-pull.C:
			s, err := u.pull(ctx, since)
			if err != nil {
				u.log.Warn("units: pull from units_latest failed", "err", err)
				metricUnitErrors.WithLabelValues("pull").Inc()
			} else {
				since = s
			}
			continue
		}
		if err := u.Flush(ctx); err != nil && ctx.Err() == nil {
			u.log.Warn("units: flush to units_latest failed; will retry", "err", err)
			metricUnitErrors.WithLabelValues("flush").Inc()
		}
	}
}

// Flush writes the units changed since the last flush to units_latest. A
// row never moves back in time, whichever instance writes it.
func (u *Units) Flush(ctx context.Context) error {
	if u.pool == nil {
		return nil
	}
	u.mu.Lock()
	if len(u.dirty) == 0 {
		u.mu.Unlock()
		return nil
	}
	batch := make([]Unit, 0, len(u.dirty))
	for id := range u.dirty {
		batch = append(batch, u.latest[id])
	}
	u.dirty = map[string]struct{}{}
	u.mu.Unlock()

	n := len(batch)
	ids, kinds, statuses, wards := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	tss := make([]time.Time, n)
	lons, lats := make([]float64, n), make([]float64, n)
	speeds, headings := make([]*float64, n), make([]*float64, n)
	for i, x := range batch {
		ids[i], kinds[i], statuses[i], tss[i], lons[i], lats[i] = x.ID, x.Kind, x.Status, x.TS, x.Lon, x.Lat
		speeds[i], headings[i] = x.SpeedKmh, x.HeadingDeg
		if x.Ward != "" {
			w := x.Ward
			wards[i] = &w
		}
	}
	_, err := u.pool.Exec(ctx, `
		INSERT INTO units_latest AS l (unit_id, kind, status, ts, geom, ward_code, speed_kmh, heading_deg, updated_at)
		SELECT id, k, s, t, ST_SetSRID(ST_MakePoint(x, y), 4326), w, sp, hd, now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[], $6::float8[],
		            $7::text[], $8::float8[], $9::float8[]) AS u(id, k, s, t, x, y, w, sp, hd)
		ON CONFLICT (unit_id) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status, ts = EXCLUDED.ts,
			geom = EXCLUDED.geom, ward_code = EXCLUDED.ward_code, speed_kmh = EXCLUDED.speed_kmh,
			heading_deg = EXCLUDED.heading_deg, updated_at = now()
		WHERE l.ts <= EXCLUDED.ts`,
		ids, kinds, statuses, tss, lons, lats, wards, speeds, headings)
	if err != nil {
		// Put them back so the next flush retries (unless newer reports came).
		u.mu.Lock()
		for _, x := range batch {
			u.dirty[x.ID] = struct{}{}
		}
		u.mu.Unlock()
		return fmt.Errorf("flush units: %w", err)
	}
	metricUnitFlushed.Add(float64(n))
	return nil
}

// pull merges rows updated since (minus a margin for transactions that
// committed late) and returns the new watermark.
func (u *Units) pull(ctx context.Context, since time.Time) (time.Time, error) {
	rows, err := u.pool.Query(ctx, `
		SELECT unit_id, kind, status, ts, ST_X(geom), ST_Y(geom), coalesce(ward_code, ''), speed_kmh, heading_deg, updated_at
		FROM units_latest WHERE updated_at > $1`, since.Add(-5*time.Second))
	if err != nil {
		return since, fmt.Errorf("pull units: %w", err)
	}
	defer rows.Close()
	mark := since
	var got []Unit
	for rows.Next() {
		var x Unit
		var upd time.Time
		if err := rows.Scan(&x.ID, &x.Kind, &x.Status, &x.TS, &x.Lon, &x.Lat, &x.Ward, &x.SpeedKmh, &x.HeadingDeg, &upd); err != nil {
			return since, fmt.Errorf("pull units: %w", err)
		}
		if upd.After(mark) {
			mark = upd
		}
		got = append(got, x)
	}
	if err := rows.Err(); err != nil {
		return since, fmt.Errorf("pull units: %w", err)
	}
	cutoff := u.now().Add(-u.expiry)
	u.mu.Lock()
	for _, x := range got {
		if x.TS.Before(cutoff) {
			continue
		}
		cur, ok := u.latest[x.ID]
		if !ok && len(u.latest) >= u.max {
			metricUnitsDropped.WithLabelValues("full").Inc()
			continue
		}
		if !ok || cur.TS.Before(x.TS) {
			u.latest[x.ID] = x
		}
	}
	u.mu.Unlock()
	return mark, nil
}
