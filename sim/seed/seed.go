package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"ioc/db"
	"ioc/geo"
)

// Config says how much history to make.
type Config struct {
	Telemetry int64     // rows over the four observation tables
	Incidents int64     // incidents (their timeline and evidence come on top)
	Days      int       // span, ending at End
	End       time.Time // default: now, to the minute
	Seed      uint64    // same seed, same history
	WardsPath string    // wards GeoJSON, imported into areas when that is empty
	// Devices; 0 picks: sensors so that each reports every 5 minutes,
	// 60 cameras, 20 fixed emergency sources (plus the 4 call centres), 40 units.
	Sensors, Cameras, Sources, Units int
	Jobs                             int  // jobs at once (default 3; each is 1 to 3 COPY connections)
	KeepIndexes                      bool // load with every index in place (slower; for comparison)
	// Rollups, if set, is called after the load over [start, end) to fill
	// derived tables (the telemetry rollups), beside the index rebuild: it
	// may read only the telemetry tables.
	Rollups  func(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) error
	Progress io.Writer // progress bar; nil: none
	Log      *slog.Logger
}

// Shares of the telemetry rows per table.
const (
	shareTraffic   = 0.80
	shareUnits     = 0.12
	shareCamera    = 0.06
	shareEmergency = 0.02
)

// Summary is what a seed did.
type Summary struct {
	Start, End time.Time
	Devices    int
	Rows       map[string]int64 // per table
	Load       time.Duration    // COPY of every row
	Indexes    time.Duration    // rebuilding what was dropped, and ANALYZE
	Rollups    time.Duration    // beside Indexes, not after it
	Total      time.Duration
}

// ErrNotEmpty: the database already holds incidents or telemetry.
var ErrNotEmpty = errors.New("seed: the database already has incidents or telemetry; seed a fresh one")

func (c *Config) fill() error {
	if c.Days <= 0 {
		c.Days = 365
	}
	if c.Telemetry < 0 || c.Incidents < 0 {
		return fmt.Errorf("seed: negative row counts")
	}
	if c.End.IsZero() {
		c.End = time.Now()
	}
	c.End = c.End.UTC().Truncate(time.Minute)
	if c.Sensors <= 0 {
		c.Sensors = max(1, int(float64(c.Telemetry)*shareTraffic/float64(c.Days*288)+0.5))
	}
	if c.Cameras <= 0 {
		c.Cameras = 60
	}
	if c.Sources <= 0 {
		c.Sources = 20
	}
	if c.Units <= 0 {
		c.Units = 40
	}
	if c.Jobs <= 0 {
		c.Jobs = 3
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run fills the database behind pool (migrating it first).
func Run(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Summary, error) {
	t0 := time.Now()
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	if err := restore(ctx, pool, cfg.Jobs); err != nil { // an earlier run that died midway
		return nil, err
	}
	var busy bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM incidents) OR EXISTS (SELECT 1 FROM traffic_readings)
		OR EXISTS (SELECT 1 FROM unit_positions)`).Scan(&busy); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if busy {
		return nil, ErrNotEmpty
	}
	wards, _, err := geo.EnsureAreas(ctx, pool, cfg.WardsPath)
	if err != nil {
		return nil, fmt.Errorf("seed: wards: %w", err)
	}
	c, err := newCity(wards)
	if err != nil {
		return nil, err
	}
	end := cfg.End
	start := end.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	if err := db.EnsurePartitions(ctx, pool, start, end); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	f := buildFleet(c, &cfg, rng)

	// A pool of our own: every COPY stream holds a connection for its
	// whole run, which the caller's pool is not sized for.
	pcfg := pool.Config()
	pcfg.MaxConns = int32(cfg.Jobs*3 + 2)
	pcfg.MinConns = 0
	load, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer load.Close()

	if err := dropForLoad(ctx, pool, cfg.KeepIndexes); err != nil {
		return nil, err
	}
	sum := &Summary{Start: start, End: end, Devices: len(f.all()), Rows: map[string]int64{}}
	s := &seeder{cfg: &cfg, city: c, fleet: f, pool: load, start: start, end: end, counts: map[string]*atomic.Int64{}}
	for _, t := range []string{"traffic_readings", "unit_positions", "camera_events", "emergency_signals", "incidents", "incident_timeline", "incident_evidence", "devices"} {
		s.counts[t] = new(atomic.Int64)
	}
	tl := time.Now()
	stopBar := s.progress(cfg.Progress)
	loadErr := s.load(ctx)
	stopBar()
	sum.Load = time.Since(tl)
	// The rollups read only the telemetry partitions (whole days, no
	// secondary index) and write only telemetry_rollups, so they run beside
	// the index rebuild and the VACUUM rather than after them.
	rollups := make(chan error, 1)
	if loadErr == nil && cfg.Rollups != nil {
		go func() {
			tr := time.Now()
			err := cfg.Rollups(ctx, load, start, end) // its own connections
			sum.Rollups = time.Since(tr)
			rollups <- err
		}()
	} else {
		rollups <- nil
	}
	// Rebuild even after a failed load: the schema must not stay without
	// its indexes.
	ti := time.Now()
	if !cfg.KeepIndexes {
		s.say("seed: rebuilding indexes and foreign keys\n")
	}
	rerr := restore(context.WithoutCancel(ctx), pool, cfg.Jobs) // always: the paused triggers
	if loadErr != nil || rerr != nil {
		return nil, errors.Join(loadErr, rerr, <-rollups)
	}
	if err := s.devices(ctx); err != nil {
		return nil, errors.Join(err, <-rollups)
	}
	// The partitions are left to autovacuum: ANALYZE of a partitioned
	// parent also analyzes each of its partitions, minutes for a year.
	// VACUUM as well as ANALYZE: it sets the visibility map, without which
	// the statistics and the evidence counts cannot be index-only scans
	// (30-day stats by ward: a 290 ms bitmap heap scan before, 17 ms
	// after; docs/history.md).
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) devices, incidents, incident_timeline, incident_evidence`); err != nil {
		return nil, errors.Join(fmt.Errorf("seed: vacuum: %w", err), <-rollups)
	}
	sum.Indexes = time.Since(ti)
	if cfg.Rollups != nil {
		s.say("seed: waiting for the rollups\n")
	}
	if err := <-rollups; err != nil {
		return nil, fmt.Errorf("seed: rollups: %w", err)
	}
	for t, n := range s.counts {
		sum.Rows[t] = n.Load()
	}
	sum.Total = time.Since(t0)
	return sum, nil
}

type seeder struct {
	cfg        *Config
	city       *city
	fleet      *fleet
	pool       *pgxpool.Pool
	start, end time.Time
	counts     map[string]*atomic.Int64

	mu    sync.Mutex
	stats devStats // merged from the jobs
}

func (s *seeder) say(msg string) {
	if s.cfg.Progress != nil {
		io.WriteString(s.cfg.Progress, msg)
	}
}

// job generates rows for some tables over some windows (days of the span).
type job struct {
	name   string
	tables []string
	cols   [][]string
	gen    func(ctx context.Context, rng *rand.Rand, emit []func([]any), st devStats) error
}

const batchRows = 2048

func (s *seeder) load(ctx context.Context) error {
	cfg := s.cfg
	days := cfg.Days
	win := 24 * time.Hour
	windowStart := func(i int) time.Time { return s.start.Add(time.Duration(i) * win) }
	chunks := func(n int) [][2]int {
		n = max(1, min(n, days))
		var out [][2]int
		for i := range n {
			out = append(out, [2]int{i * days / n, (i + 1) * days / n})
		}
		return out
	}
	tele := func(share float64) int64 { return int64(float64(cfg.Telemetry)*share + 0.5) }
	nTraffic, nUnits, nCamera := tele(shareTraffic), tele(shareUnits), tele(shareCamera)
	nEmergency := cfg.Telemetry - nTraffic - nUnits - nCamera

	var jobs []job
	// Incidents first: three streams each, the longest jobs.
	for ci, ch := range chunks(cfg.Jobs) {
		jobs = append(jobs, job{name: fmt.Sprintf("incidents-%d", ci), tables: []string{"incidents", "incident_timeline", "incident_evidence"},
			cols: [][]string{incidentCols, timelineCols, evidenceCols},
			gen: func(ctx context.Context, rng *rand.Rand, emit []func([]any), _ devStats) error {
				for d := ch[0]; d < ch[1]; d++ {
					for _, p := range planIncidents(rng, share(cfg.Incidents, days, d), windowStart(d), win) {
						incidentRows(rng, s.city, s.fleet, p.kind, p.at, s.end, emit[0], emit[1], emit[2])
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
				return nil
			}})
	}
	for ci, ch := range chunks(2 * cfg.Jobs) {
		jobs = append(jobs, job{name: fmt.Sprintf("traffic-%d", ci), tables: []string{"traffic_readings"}, cols: [][]string{trafficCols},
			gen: func(ctx context.Context, rng *rand.Rand, emit []func([]any), st devStats) error {
				for d := ch[0]; d < ch[1]; d++ {
					err := slotted(s.fleet.sensors, share(nTraffic, days, d), windowStart(d), win, func(dv *device, ts time.Time, iv time.Duration) error {
						emit[0](trafficRow(rng, dv, ts, iv))
						st.saw(dv, ts, iv)
						return nil
					})
					if err != nil || ctx.Err() != nil {
						return errors.Join(err, ctx.Err())
					}
				}
				return nil
			}})
	}
	jobs = append(jobs, job{name: "units", tables: []string{"unit_positions"}, cols: [][]string{unitCols},
		gen: func(ctx context.Context, rng *rand.Rand, emit []func([]any), st devStats) error {
			pos := map[*device]*place{}
			for d := range days {
				err := slotted(s.fleet.units, share(nUnits, days, d), windowStart(d), win, func(dv *device, ts time.Time, iv time.Duration) error {
					p := pos[dv]
					if p == nil {
						p = new(place)
						*p = dv.at
						pos[dv] = p
					}
					emit[0](unitRow(rng, s.city, dv, p, ts, iv))
					st.saw(dv, ts, iv).at = p
					return nil
				})
				if err != nil || ctx.Err() != nil {
					return errors.Join(err, ctx.Err())
				}
			}
			return nil
		}})
	jobs = append(jobs, job{name: "camera+emergency", tables: []string{"camera_events", "emergency_signals"}, cols: [][]string{cameraCols, emergencyCols},
		gen: func(ctx context.Context, rng *rand.Rand, emit []func([]any), st devStats) error {
			seq := 0
			for d := range days {
				if len(s.fleet.cameras) > 0 {
					for _, t := range drawTimes(rng, share(nCamera, days, d), windowStart(d), win, rhythmActivity) {
						dv := s.fleet.cameras[rng.IntN(len(s.fleet.cameras))]
						emit[0](cameraRow(rng, dv, t))
						st.saw(dv, t, 0)
					}
				}
				for _, t := range drawTimes(rng, share(nEmergency, days, d), windowStart(d), win, rhythmActivity) {
					// Call centres carry most signals; the fixed devices a few.
					dv := s.fleet.sources[rng.IntN(len(callCentres))]
					if rng.IntN(10) == 0 {
						dv = s.fleet.sources[rng.IntN(len(s.fleet.sources))]
					}
					seq++
					emit[1](emergencyRow(rng, s.city, dv, t, seq))
					st.saw(dv, t, 0)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		}})

	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(cfg.Jobs)
	for ji, j := range jobs {
		eg.Go(func() error {
			if err := s.run(ctx, j, rand.New(rand.NewPCG(cfg.Seed, uint64(ji+1)))); err != nil {
				return fmt.Errorf("seed %s: %w", j.name, err)
			}
			return nil
		})
	}
	return eg.Wait()
}

// run is one job: its generator in this goroutine, one COPY per table in
// others, joined by bounded channels of row batches.
func (s *seeder) run(ctx context.Context, j job, rng *rand.Rand) error {
	eg, ctx := errgroup.WithContext(ctx)
	chans := make([]chan [][]any, len(j.tables))
	emit := make([]func([]any), len(j.tables))
	bufs := make([][][]any, len(j.tables))
	var sendErr error
	for i, table := range j.tables {
		ch := make(chan [][]any, 8)
		chans[i] = ch
		n := s.counts[table]
		eg.Go(func() error {
			src := &chanSource{ch: ch, ctx: ctx, count: n}
			_, err := s.pool.CopyFrom(ctx, pgx.Identifier{table}, j.cols[i], src)
			if err != nil {
				// Let the generator stop; drain nothing more.
				return fmt.Errorf("copy %s: %w", table, err)
			}
			return nil
		})
		emit[i] = func(row []any) {
			bufs[i] = append(bufs[i], row)
			if len(bufs[i]) == batchRows && sendErr == nil {
				select {
				case ch <- bufs[i]:
				case <-ctx.Done():
					sendErr = ctx.Err()
				}
				bufs[i] = make([][]any, 0, batchRows)
			}
		}
	}
	eg.Go(func() error {
		st := devStats{}
		err := j.gen(ctx, rng, emit, st)
		for i, ch := range chans {
			if err == nil && sendErr == nil && len(bufs[i]) > 0 {
				select {
				case ch <- bufs[i]:
				case <-ctx.Done():
					sendErr = ctx.Err()
				}
			}
			close(ch)
		}
		if err == nil {
			err = sendErr
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stats == nil {
			s.stats = devStats{}
		}
		for d, x := range st {
			m := s.stats[d]
			if m == nil {
				m = &devStat{}
				s.stats[d] = m
			}
			m.messages += x.messages
			if x.lastTS.After(m.lastTS) {
				m.lastTS, m.interval = x.lastTS, x.interval
				if x.at != nil {
					m.at = x.at
				}
			}
		}
		return nil
	})
	return eg.Wait()
}

// chanSource feeds CopyFrom from a channel of batches. A generator that
// stops early (the context ended) makes the COPY fail rather than commit a
// part.
type chanSource struct {
	ch    <-chan [][]any
	ctx   context.Context
	cur   [][]any
	i     int
	count *atomic.Int64
	err   error
}

func (c *chanSource) Next() bool {
	c.i++
	for c.i >= len(c.cur) {
		b, ok := <-c.ch
		if !ok {
			if err := c.ctx.Err(); err != nil {
				c.err = err
			}
			return false
		}
		c.cur, c.i = b, 0
		c.count.Add(int64(len(b)))
	}
	return true
}

func (c *chanSource) Values() ([]any, error) { return c.cur[c.i], nil }
func (c *chanSource) Err() error             { return c.err }

// devices stores the fleet with what the load saw of each device.
func (s *seeder) devices(ctx context.Context) error {
	var rows [][]any
	for _, d := range s.fleet.all() {
		st := s.stats[d]
		if st == nil {
			st = &devStat{}
		}
		at := d.at
		if st.at != nil {
			at = *st.at
		}
		var fixed, lastTS, interval any
		if d.fixed {
			fixed = d.at.ewkb
		}
		if !st.lastTS.IsZero() {
			lastTS = st.lastTS
		}
		if st.interval > 0 {
			interval = st.interval
		}
		lastSeen := s.end
		if !st.lastTS.IsZero() {
			lastSeen = st.lastTS.Add(time.Second)
		}
		rows = append(rows, []any{d.id, d.kind, fixed, at.ewkb, nullWard(at.ward), s.start, lastSeen, lastTS, interval, true, st.messages, s.start})
	}
	n, err := s.pool.CopyFrom(ctx, pgx.Identifier{"devices"},
		[]string{"id", "kind", "fixed_geom", "geom", "ward_code", "first_seen", "last_seen", "last_ts", "interval_s", "online", "messages", "registered_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("seed: devices: %w", err)
	}
	s.counts["devices"].Add(n)
	return nil
}

// progress draws a bar on w until the returned stop is called.
func (s *seeder) progress(w io.Writer) (stop func()) {
	if w == nil {
		return func() {}
	}
	total := s.cfg.Telemetry + s.cfg.Incidents
	primary := func() int64 {
		var n int64
		for _, t := range []string{"traffic_readings", "unit_positions", "camera_events", "emergency_signals", "incidents"} {
			n += s.counts[t].Load()
		}
		return n
	}
	start := time.Now()
	draw := func(final bool) {
		n := primary()
		frac := 1.0
		if total > 0 {
			frac = min(1, float64(n)/float64(total))
		}
		const width = 30
		bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
		el := time.Since(start)
		rate := float64(n) / max(el.Seconds(), 1e-3)
		eta := "-"
		if rate > 0 && !final {
			eta = time.Duration(float64(total-n) / rate * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(w, "\rseed: [%s] %3.0f%% %s/%s rows (+timeline %s, evidence %s) %s rows/s, %s, ETA %s ",
			bar, frac*100, human(n), human(total), human(s.counts["incident_timeline"].Load()), human(s.counts["incident_evidence"].Load()),
			human(int64(rate)), el.Round(time.Second), eta)
		if final {
			fmt.Fprintln(w)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func human(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
