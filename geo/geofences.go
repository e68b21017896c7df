package geo

import (
	"ioc/api"

	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"
)

// Errors of geofence writes, for errors.Is; api.Fail answers them.
var (
	ErrNotFound        = fmt.Errorf("geofence %w", api.ErrNotFound)
	ErrVersionConflict = fmt.Errorf("geofence %w", api.ErrVersionConflict)
)

// Metrics of the package. Registered with RegisterMetrics (iocd passes its
// registry; tests need not).
var (
	metricFenceReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_geo_geofence_reloads_total",
		Help: "Full reloads of the geofence index from PostgreSQL, by what triggered them.",
	}, []string{"trigger"})
	metricFenceSyncErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_geo_geofence_sync_errors_total",
		Help: "Failures keeping the geofence index in step (listen, poll, redis), each followed by a retry.",
	}, []string{"where"})
	metricFences = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ioc_geo_geofences",
		Help: "Geofences in this instance's index.",
	})
	metricUnitFlushed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_geo_units_flushed_total",
		Help: "Unit states written to units_latest.",
	})
	metricUnitErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_geo_units_errors_total",
		Help: "Failed units_latest flushes and pulls, each retried.",
	}, []string{"op"})
)

// RegisterMetrics registers the package's metrics with reg (once; a second
// registration of the same collectors is ignored).
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{metricFenceReloads, metricFenceSyncErrors, metricFences, metricUnitFlushed, metricUnitErrors} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return fmt.Errorf("geo metrics: %w", err)
			}
		}
	}
	return nil
}

// Channels other instances hear about geofence changes on.
const (
	fenceNotifyChannel = "ioc_geofences" // PostgreSQL NOTIFY (from the trigger)
	fenceRedisChannel  = "ioc:geofences" // Redis pub/sub
)

// Geofences keeps the geofences in PostgreSQL and an index of them in
// memory. Lookups read an immutable snapshot through an atomic pointer and
// never block; writes go to PostgreSQL first and reach this instance's
// index as soon as they commit, other instances' within milliseconds
// (NOTIFY, Redis) or at the latest one poll interval.
type Geofences struct {
	pool     *pgxpool.Pool
	redis    *redis.Client // nil: no Redis
	log      *slog.Logger
	lim      GeofenceLimits
	instance string // tags our Redis messages so we skip our own
	poll     time.Duration

	mu   sync.Mutex // serialises snapshot swaps; never held across I/O
	snap atomic.Pointer[fenceSnapshot]
}

// NewGeofences makes the store; call Load before serving and Run to stay in
// step with other instances. rdb may be nil.
func NewGeofences(pool *pgxpool.Pool, rdb *redis.Client, lim GeofenceLimits, log *slog.Logger) *Geofences {
	b := make([]byte, 8)
	crand.Read(b)
	g := &Geofences{pool: pool, redis: rdb, log: log, lim: lim, instance: hex.EncodeToString(b), poll: 5 * time.Second}
	g.snap.Store(newFenceSnapshot(-1, nil))
	return g
}

// Limits returns the validation limits in force.
func (g *Geofences) Limits() GeofenceLimits { return g.lim }

// Containing appends to dst every geofence covering the point, active or
// not, in no particular order. It does not allocate when dst has room.
func (g *Geofences) Containing(dst []*Geofence, lon, lat float64) []*Geofence {
	return g.snap.Load().appendContaining(dst, lon, lat)
}

// ActiveContaining is Containing restricted to fences active at t.
func (g *Geofences) ActiveContaining(dst []*Geofence, lon, lat float64, t time.Time) []*Geofence {
	n := len(dst)
	dst = g.Containing(dst, lon, lat)
	out := dst[:n]
	for _, f := range dst[n:] {
		if f.ActiveAt(t) {
			out = append(out, f)
		}
	}
	return out
}

// Get returns one geofence from the index.
func (g *Geofences) Get(id int64) (*Geofence, bool) {
	e, ok := g.snap.Load().byID[id]
	if !ok {
		return nil, false
	}
	return e.fence, true
}

// List returns every geofence, by id. The returned values are shared:
// callers must not modify them.
func (g *Geofences) List() []*Geofence {
	s := g.snap.Load()
	out := make([]*Geofence, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.fence)
	}
	slices.SortFunc(out, func(a, b *Geofence) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Len is the number of geofences in the index.
func (g *Geofences) Len() int { return len(g.snap.Load().entries) }

// Create stores a new geofence (as validated by DecodeGeofence) and returns
// it with its id and version.
func (g *Geofences) Create(ctx context.Context, f *Geofence, actor string) (*Geofence, error) {
	return g.write(ctx, 0, 0, f, actor)
}

// Update replaces geofence id. ifVersion > 0 makes it conditional.
func (g *Geofences) Update(ctx context.Context, id, ifVersion int64, f *Geofence, actor string) (*Geofence, error) {
	return g.write(ctx, id, ifVersion, f, actor)
}

func (g *Geofences) write(ctx context.Context, id, ifVersion int64, in *Geofence, actor string) (*Geofence, error) {
	f := *in
	f.Tags = slices.Clone(in.Tags)
	f.ActiveHours = slices.Clone(in.ActiveHours)
	var gm geom.T
	var radius *float64
	if f.Shape == "circle" {
		gm = geom.NewPointFlat(geom.XY, []float64{f.Center[0], f.Center[1]}).SetSRID(4326)
		radius = &f.RadiusM
	} else {
		gm = f.Polygon
	}
	wkb, err := ewkb.Marshal(gm, ewkb.NDR)
	if err != nil {
		return nil, fmt.Errorf("encode geofence: %w", err)
	}
	hours, err := json.Marshal(f.ActiveHours)
	if err != nil {
		return nil, fmt.Errorf("encode active hours: %w", err)
	}
	var dbVersion int64
	err = pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error {
		if f.Shape == "polygon" {
			// PostGIS has the last word on validity; the Go checks catch the
			// usual problems first with more precise messages.
			var reason string
			if err := tx.QueryRow(ctx, `SELECT ST_IsValidReason(ST_GeomFromEWKB($1))`, wkb).Scan(&reason); err != nil {
				return fmt.Errorf("validate geofence: %w", err)
			}
			if reason != "Valid Geometry" {
				return &ValidationError{Field: "geometry", Problem: "invalid polygon: " + reason}
			}
		}
		var row pgx.Row
		if id == 0 {
			row = tx.QueryRow(ctx, `
				INSERT INTO geofences (name, tags, shape, geom, radius_m, active_hours, created_by, updated_by)
				VALUES ($1, $2, $3, ST_SetSRID(ST_GeomFromEWKB($4), 4326), $5, $6, $7, $7)
				RETURNING id, version, created_at, updated_at, created_by, updated_by`,
				f.Name, f.Tags, f.Shape, wkb, radius, hours, actor)
		} else {
			row = tx.QueryRow(ctx, `
				UPDATE geofences SET name = $2, tags = $3, shape = $4,
					geom = ST_SetSRID(ST_GeomFromEWKB($5), 4326), radius_m = $6, active_hours = $7,
					updated_by = $8, updated_at = now(), version = version + 1
				WHERE id = $1 AND ($9 = 0 OR version = $9)
				RETURNING id, version, created_at, updated_at, created_by, updated_by`,
				id, f.Name, f.Tags, f.Shape, wkb, radius, hours, actor, ifVersion)
		}
		err := row.Scan(&f.ID, &f.Version, &f.CreatedAt, &f.UpdatedAt, &f.CreatedBy, &f.UpdatedBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return g.missOrConflict(ctx, tx, id)
		}
		if err != nil {
			return fmt.Errorf("store geofence: %w", err)
		}
		return tx.QueryRow(ctx, `SELECT version FROM geofence_state`).Scan(&dbVersion)
	})
	if err != nil {
		return nil, err
	}
	e, err := compileFence(&f)
	if err != nil {
		return nil, err
	}
	g.applyLocal(dbVersion, f.ID, e)
	return &f, nil
}

func (g *Geofences) missOrConflict(ctx context.Context, tx pgx.Tx, id int64) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM geofences WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("store geofence: %w", err)
	}
	if exists {
		return ErrVersionConflict
	}
	return ErrNotFound
}

// Delete removes geofence id. ifVersion > 0 makes it conditional.
func (g *Geofences) Delete(ctx context.Context, id, ifVersion int64) error {
	var dbVersion int64
	err := pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM geofences WHERE id = $1 AND ($2 = 0 OR version = $2)`, id, ifVersion)
		if err != nil {
			return fmt.Errorf("delete geofence: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return g.missOrConflict(ctx, tx, id)
		}
		return tx.QueryRow(ctx, `SELECT version FROM geofence_state`).Scan(&dbVersion)
	})
	if err != nil {
		return err
	}
	g.applyLocal(dbVersion, id, nil)
	return nil
}

// applyLocal puts a committed change into the index at once and tells the
// other instances. The snapshot keeps the database version it reflects:
// if other changes happened in between, the version stays behind and the
// next check reloads everything.
func (g *Geofences) applyLocal(dbVersion, id int64, e *fenceEntry) {
	g.mu.Lock()
	cur := g.snap.Load()
	if cur.version >= dbVersion {
		// A reload already brought this change (and maybe later ones).
		g.mu.Unlock()
		g.publish(dbVersion)
		return
	}
	entries := make([]*fenceEntry, 0, len(cur.entries)+1)
	for _, x := range cur.entries {
		if x.fence.ID != id {
			entries = append(entries, x)
		}
	}
	if e != nil {
		entries = append(entries, e)
	}
	v := cur.version
	if dbVersion == cur.version+1 {
		v = dbVersion
	}
	g.snap.Store(newFenceSnapshot(v, entries))
	metricFences.Set(float64(len(entries)))
	g.mu.Unlock()
	g.publish(dbVersion)
}

func (g *Geofences) publish(dbVersion int64) {
	if g.redis != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := g.redis.Publish(ctx, fenceRedisChannel, g.instance+" "+strconv.FormatInt(dbVersion, 10)).Err(); err != nil {
			metricFenceSyncErrors.WithLabelValues("redis_publish").Inc()
			g.log.Warn("geofences: redis publish failed; other instances rely on NOTIFY and polling", "err", err)
		}
	}
}

// Load reads every geofence from PostgreSQL and replaces the index.
func (g *Geofences) Load(ctx context.Context) error {
	return g.reload(ctx, "start")
}

// check reloads when the database's version differs from the index's.
func (g *Geofences) check(ctx context.Context, trigger string) error {
	var v int64
	if err := g.pool.QueryRow(ctx, `SELECT version FROM geofence_state`).Scan(&v); err != nil {
		return fmt.Errorf("geofence version: %w", err)
	}
	if v == g.snap.Load().version {
		return nil
	}
	return g.reload(ctx, trigger)
}

func (g *Geofences) reload(ctx context.Context, trigger string) error {
	metricFenceReloads.WithLabelValues(trigger).Inc()
	var version int64
	var fences []*Geofence
	err := pgx.BeginTxFunc(ctx, g.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT version FROM geofence_state`).Scan(&version); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, name, tags, shape, ST_AsEWKB(geom), radius_m, active_hours,
			version, created_at, updated_at, created_by, updated_by FROM geofences`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f Geofence
			var wkb, hours []byte
			var radius *float64
			if err := rows.Scan(&f.ID, &f.Name, &f.Tags, &f.Shape, &wkb, &radius, &hours,
				&f.Version, &f.CreatedAt, &f.UpdatedAt, &f.CreatedBy, &f.UpdatedBy); err != nil {
				return err
			}
			if err := fenceFromRow(&f, wkb, radius, hours); err != nil {
				g.log.Warn("geofences: skipping a stored geofence the index cannot use", "id", f.ID, "err", err)
				continue
			}
			fences = append(fences, &f)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("load geofences: %w", err)
	}
	// Reuse compiled entries that did not change.
	old := g.snap.Load()
	entries := make([]*fenceEntry, 0, len(fences))
	for _, f := range fences {
		if e, ok := old.byID[f.ID]; ok && e.fence.Version == f.Version {
			entries = append(entries, e)
			continue
		}
		e, err := compileFence(f)
		if err != nil {
			g.log.Warn("geofences: skipping a stored geofence the index cannot use", "id", f.ID, "err", err)
			continue
		}
		entries = append(entries, e)
	}
	next := newFenceSnapshot(version, entries)
	g.mu.Lock()
	if version >= g.snap.Load().version {
		g.snap.Store(next)
		metricFences.Set(float64(len(entries)))
	}
	g.mu.Unlock()
	return nil
}

func fenceFromRow(f *Geofence, wkb []byte, radius *float64, hours []byte) error {
	gm, err := ewkb.Unmarshal(wkb)
	if err != nil {
		return err
	}
	switch t := gm.(type) {
	case *geom.Point:
		if f.Shape != "circle" || radius == nil {
			return errors.New("point geometry without a radius")
		}
		f.Center = [2]float64{t.X(), t.Y()}
		f.RadiusM = *radius
	case *geom.MultiPolygon:
		f.Polygon = t
	case *geom.Polygon:
		mp := geom.NewMultiPolygon(geom.XY).SetSRID(4326)
		if err := mp.Push(t); err != nil {
			return err
		}
		f.Polygon, f.Shape = mp, "polygon"
	default:
		return fmt.Errorf("geometry %T", gm)
	}
	if err := json.Unmarshal(hours, &f.ActiveHours); err != nil {
		return fmt.Errorf("active_hours: %w", err)
	}
	if f.Tags == nil {
		f.Tags = []string{}
	}
	return validateHours(f.ActiveHours, DefaultGeofenceLimits())
}

// Run keeps the index in step with the database until ctx ends: it
// LISTENs for the trigger's notifications on a dedicated connection, polls
// the version every few seconds in case one was missed (or the connection
// dropped), and, with Redis, reacts to other instances' messages.
func (g *Geofences) Run(ctx context.Context) error {
	if g.redis != nil {
		go g.runRedis(ctx)
	}
	backoff := 250 * time.Millisecond
	for {
		err := g.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		metricFenceSyncErrors.WithLabelValues("listen").Inc()
		g.log.Warn("geofences: listen connection lost; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff/2 + time.Duration(rand.Int64N(int64(backoff)))):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (g *Geofences) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, g.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+fenceNotifyChannel); err != nil {
		return err
	}
	// Anything changed before LISTEN took effect.
	if err := g.check(ctx, "listen"); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, g.poll)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		trigger := "notify"
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(wctx.Err(), context.DeadlineExceeded) || conn.IsClosed() {
				return err
			}
			trigger = "poll"
		}
		if err := g.check(ctx, trigger); err != nil {
			metricFenceSyncErrors.WithLabelValues(trigger).Inc()
			g.log.Warn("geofences: reload failed", "trigger", trigger, "err", err)
		}
	}
}

func (g *Geofences) runRedis(ctx context.Context) {
	sub := g.redis.Subscribe(ctx, fenceRedisChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if strings.HasPrefix(m.Payload, g.instance+" ") {
				continue
			}
			if err := g.check(ctx, "redis"); err != nil {
				metricFenceSyncErrors.WithLabelValues("redis").Inc()
				g.log.Warn("geofences: reload after redis message failed", "err", err)
			}
		}
	}
}
