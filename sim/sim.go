package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"ioc/geo"
)

// Simulator publishes one run of simulated city telemetry.
type Simulator struct {
	cfg   Config
	gen   *generator
	stats *stats
	truth []Truth
	mu    sync.Mutex // guards truth
}

// New builds the simulated city: it loads the wards, places the devices and
// scripts the scenarios. Nothing is connected until Run.
func New(cfg Config) (*Simulator, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	specs, err := parseScenarios(cfg.Scenarios)
	if err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	wards := cfg.Wards
	if wards == nil {
		if wards, err = geo.LoadWards(cfg.WardsPath); err != nil {
			return nil, err
		}
	}
	c, err := cityFor(wards)
	if err != nil {
		return nil, err
	}
	var hospitals []Point
	hp := cfg.HospitalsPath
	if hp == "" && cfg.Wards == nil {
		hp = filepath.Join(filepath.Dir(cfg.WardsPath), "hospitals.geojson")
	}
	if hp != "" {
		if hospitals, err = loadHospitals(hp); err != nil {
			cfg.Logger.Warn("no hospitals: ambulances start anywhere", "err", err)
		}
	}

	start := cfg.Start
	if start.IsZero() {
		start = time.Now()
		if cfg.ClockSpeed > 1 && cfg.Duration > 0 {
			// End the compressed run at the wall clock, not minutes ahead of it.
			start = start.Add(-time.Duration(float64(cfg.Duration) * (cfg.ClockSpeed - 1)))
		}
	}
	start = start.Truncate(time.Millisecond) // what the payloads can carry
	runID := cfg.RunID
	if runID == "" {
		runID = strconv.FormatInt(start.UnixMilli(), 36)
	}

	// The placement and every later draw come from one seeded source, used by
	// one goroutine in a fixed order.
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &generator{cfg: &cfg, rng: rng, city: c, start: start, runID: runID}
	g.dev = buildDevices(&cfg, c, hospitals, rng)
	for _, r := range BadReasons {
		if len(casesByReason[r]) > 0 {
			g.reasons = append(g.reasons, r)
		}
	}
	s := &Simulator{cfg: cfg, gen: g, stats: newStats()}
	var tw io.Writer = io.Discard
	if cfg.Truth != nil {
		tw = cfg.Truth
	}
	g.truth = json.NewEncoder(&truthTee{w: tw, s: s})
	g.setupScenarios(specs)
	g.initSchedule()
	return s, nil
}

// Devices says how many devices of each sort the run has.
func (s *Simulator) Devices() map[string]int {
	d := s.gen.dev
	return map[string]int{"traffic": len(d.sensors), "camera": len(d.cameras),
		"emergency": len(d.sources), "units": len(d.units)}
}

// Start is the simulated time at which the run begins.
func (s *Simulator) Start() time.Time { return s.gen.start }

// Run connects, publishes until the context, the duration or the count ends
// the run, waits for outstanding acknowledgements and disconnects. It
// returns an error only when it could not connect or write the truth.
func (s *Simulator) Run(ctx context.Context) error {
	cfg := &s.cfg
	s.stats = newStats()
	p := &pool{}
	for i := range cfg.Conns {
		pub, err := newPublisher(ctx, cfg, i, s.stats)
		if err != nil {
			for _, q := range p.pubs {
				q.client.Disconnect(0)
			}
			return err
		}
		p.pubs = append(p.pubs, pub)
	}
	stop := p.run(ctx, cfg.DrainTimeout)

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			s.progress(progressDone)
		}()
	}

	s.gen.run(ctx, func(m Message) bool {
		pub := p.route(m.Device)
		select {
		case pub.in <- m:
			return true
		case <-ctx.Done():
			return false
		}
	})
	stop()
	close(progressDone)
	progressWG.Wait()
	return nil
}

func (s *Simulator) progress(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.ProgressEvery)
	defer t.Stop()
	var prev int64
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			var line string
			line, prev = s.stats.progressLine(prev, now.Sub(last))
			last = now
			fmt.Fprintln(s.cfg.Progress, line)
		}
	}
}

// Stats returns the counters so far; safe to call while Run is going.
func (s *Simulator) Stats() Summary {
	sum := s.stats.summary()
	sum.RunID, sum.Seed = s.gen.runID, s.cfg.Seed
	sum.SimStart, sum.SimClock = s.gen.start, s.cfg.ClockSpeed
	sum.Devices = s.Devices()
	s.mu.Lock()
	sum.Truth = append([]Truth(nil), s.truth...)
	s.mu.Unlock()
	return sum
}

// truthTee keeps a copy of each truth line for the summary.
type truthTee struct {
	w io.Writer
	s *Simulator
}

func (t *truthTee) Write(b []byte) (int, error) {
	var tr Truth
	if json.Unmarshal(b, &tr) == nil {
		t.s.mu.Lock()
		t.s.truth = append(t.s.truth, tr)
		t.s.mu.Unlock()
	}
	return t.w.Write(b)
}
