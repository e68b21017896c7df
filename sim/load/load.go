package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"ioc/geo"
	"ioc/sim"
)

// iocd's metric names (issue 2, item 4).
const (
	metricCommitted = "ioc_ingest_committed_total"
	metricReceived  = "ioc_ingest_received_total"
	metricRejected  = "ioc_ingest_rejected_total"
	metricDup       = "ioc_ingest_duplicates_total"
	// Telemetry-connection copies of emergency signals that iocd wrote
	// (their twin on the emergency connection came late): found stored,
	// so counted as duplicates, but not messages of their own.
	metricTwins = "ioc_ingest_emergency_twins_total"
	metricLag   = "ioc_ingest_commit_lag_seconds"
)

// sysDropped is Mosquitto's count of dropped publishes (2.0 publishes it
// every sys_interval, 10 s by default).
const (
	sysDropped = "$SYS/broker/publish/messages/dropped"
	sysUptime  = "$SYS/broker/uptime"
)

// Config is a load run.
type Config struct {
	Broker        string
	BenchPrefix   string // broker-only phase
	CityPrefix    string // full pipeline phase
	IocdMetrics   string // "" skips the pipeline phase
	PhaseDuration time.Duration
	Warmup        time.Duration
	DrainTimeout  time.Duration
	Runs          int
	Conns, Window int
	Rate          float64
	Sensors       int
	Batch         int
	Seed          uint64
	WardsPath     string
	IocdPID       int
	// PostgresDB, if set, counts only that database's PostgreSQL backends
	// (and the server's shared processes) as postgres.
	PostgresDB string
	// IocdProfile, if set, is where a CPU profile of iocd during the first
	// pipeline phase's steady window is written (from /debug/pprof/profile
	// beside iocd's metrics).
	IocdProfile string
	Logger      *slog.Logger
	Progress    io.Writer // phase headlines; nil: none
}

func (c *Config) setDefaults() {
	if c.Broker == "" {
		c.Broker = "tcp://127.0.0.1:1883"
	}
	if c.BenchPrefix == "" {
		c.BenchPrefix = "bench"
	}
	if c.CityPrefix == "" {
		c.CityPrefix = "city"
	}
	if c.PhaseDuration <= 0 {
		c.PhaseDuration = 20 * time.Second
	}
	if c.Warmup < 0 || c.Warmup >= c.PhaseDuration {
		c.Warmup = c.PhaseDuration / 5
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 2 * time.Minute
	}
	if c.Runs <= 0 {
		c.Runs = 3
	}
	if c.Conns <= 0 {
		c.Conns = 4
	}
	if c.Window <= 0 {
		c.Window = 1000
	}
	if c.Sensors <= 0 {
		c.Sensors = 2000
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.WardsPath == "" {
		c.WardsPath = sim.DefaultWardsPath
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Load runs the measurement.
type Load struct {
	cfg   Config
	wards []geo.Ward
	http  *http.Client

	dropped atomic.Int64 // last $SYS drop counter seen; -1 never
	sysOn   atomic.Bool  // the broker publishes $SYS at all
	procs   pids
}

// New checks the configuration and loads the wards once for all phases.
func New(cfg Config) (*Load, error) {
	cfg.setDefaults()
	if cfg.BenchPrefix == cfg.CityPrefix {
		return nil, errors.New("load: the broker-only prefix must differ from the one iocd ingests")
	}
	w, err := geo.LoadWards(cfg.WardsPath)
	if err != nil {
		return nil, err
	}
	l := &Load{cfg: cfg, wards: w, http: &http.Client{Timeout: 5 * time.Second}}
	l.procs = pids{broker: listenerPID(portOf(cfg.Broker)), iocd: cfg.IocdPID, pgDB: cfg.PostgresDB}
	if l.procs.iocd == 0 && cfg.IocdMetrics != "" {
		l.procs.iocd = listenerPID(portOf(cfg.IocdMetrics))
	}
	l.dropped.Store(-1)
	return l, nil
}

// Phase is one measured phase.
type Phase struct {
	Phase  string  `json:"phase"` // "broker" or "pipeline"
	Run    int     `json:"run"`
	Window float64 `json:"window_s"` // steady window measured (after warm-up)

	PublishedPerS float64 `json:"published_per_s"` // acknowledged by the broker to the publishers
	ReceivedPerS  float64 `json:"received_per_s,omitempty"`
	CommittedPerS float64 `json:"committed_per_s,omitempty"`

	Published int64 `json:"published"`           // messages the broker acknowledged, whole phase
	Items     int64 `json:"published_items"`     // observations in them
	Failed    int64 `json:"publish_failed"`      // publishes not acknowledged
	Received  int64 `json:"subscriber_received"` // broker phase: the counting subscriber's total
	Lost      int64 `json:"lost"`                // published items never received / committed or rejected

	IocdReceived int64            `json:"iocd_received,omitempty"`
	Committed    int64            `json:"iocd_committed,omitempty"`
	Rejected     int64            `json:"iocd_rejected,omitempty"`
	Duplicates   int64            `json:"iocd_duplicates,omitempty"`
	ByReason     map[string]int64 `json:"iocd_rejected_by_reason,omitempty"`
	LagP50       float64          `json:"commit_lag_p50_s,omitempty"`
	LagP99       float64          `json:"commit_lag_p99_s,omitempty"`
	LagOver      bool             `json:"commit_lag_over_top_bucket,omitempty"`
	DrainSeconds float64          `json:"drain_s"`
	Drained      bool             `json:"drained"`

	SysDropped int64              `json:"broker_dropped"` // $SYS delta; -1 unknown
	CPU        map[string]float64 `json:"cpu_pct_of_one_core"`
	Note       string             `json:"note,omitempty"`
}

// Report is the whole run.
type Report struct {
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	Cores   int       `json:"cores"`
	Config  struct {
		Broker        string  `json:"broker"`
		PhaseDuration float64 `json:"phase_duration_s"`
		Warmup        float64 `json:"warmup_s"`
		Runs          int     `json:"runs"`
		Conns         int     `json:"conns"`
		Window        int     `json:"window"`
		Rate          float64 `json:"rate"`
		Sensors       int     `json:"sensors"`
		Batch         int     `json:"batch"`
	} `json:"config"`
	Phases    []Phase `json:"phases"`
	BrokerPID int     `json:"broker_pid"` // 0: every process named mosquitto
	IocdPID   int     `json:"iocd_pid"`   // 0: every process named iocd
	// PostgresDB: only its backends counted as postgres ("": all).
	PostgresDB string `json:"postgres_db,omitempty"`

	// Medians over runs.
	CeilingPerS   float64            `json:"ceiling_per_s"`
	CommittedPerS float64            `json:"committed_per_s"`
	Ratio         float64            `json:"committed_over_ceiling"`
	LagP50        float64            `json:"commit_lag_p50_s"`
	LagP99        float64            `json:"commit_lag_p99_s"`
	DrainSeconds  float64            `json:"drain_s"`
	BrokerCPU     map[string]float64 `json:"broker_phase_cpu_pct"`
	PipelineCPU   map[string]float64 `json:"pipeline_phase_cpu_pct"`
	Notes         []string           `json:"notes"`
}

// Run measures cfg.Runs rounds of (broker phase, pipeline phase).
func (l *Load) Run(ctx context.Context) (*Report, error) {
	cfg := &l.cfg
	rep := &Report{Started: time.Now(), BrokerPID: l.procs.broker, IocdPID: l.procs.iocd, PostgresDB: l.procs.pgDB}
	rep.Host, _ = os.Hostname()
	_, _, rep.Cores = readProcStat()
	rc := &rep.Config
	rc.Broker, rc.PhaseDuration, rc.Warmup = cfg.Broker, cfg.PhaseDuration.Seconds(), cfg.Warmup.Seconds()
	rc.Runs, rc.Conns, rc.Window, rc.Rate, rc.Sensors, rc.Batch = cfg.Runs, cfg.Conns, cfg.Window, cfg.Rate, cfg.Sensors, cfg.Batch

	sys, err := l.watchSys(ctx)
	if err != nil {
		return nil, err
	}
	defer sys.Disconnect(100)

	pipeline := cfg.IocdMetrics != ""
	if pipeline {
		if _, err := scrape(ctx, l.http, cfg.IocdMetrics); err != nil {
			pipeline = false
			rep.Notes = append(rep.Notes, fmt.Sprintf("pipeline phase skipped: iocd's metrics not reachable (%v); start iocd first, and point --iocd-metrics at its IOC_METRICS_ADDR listener (the API port's /metrics needs credentials)", err))
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		ph, err := l.brokerPhase(ctx, run)
		if err != nil {
			return rep, err
		}
		rep.Phases = append(rep.Phases, ph)
		if !pipeline {
			continue
		}
		ph, err = l.pipelinePhase(ctx, run)
		if err != nil {
			return rep, err
		}
		rep.Phases = append(rep.Phases, ph)
	}
	rep.summarise()
	if l.dropped.Load() < 0 {
		rep.Notes = append(rep.Notes, "the broker publishes no $SYS (Mosquitto needs sys_interval > 0): drops at the broker are only visible as loss")
	}
	rep.Notes = append(rep.Notes,
		"CPU is in % of one core over the steady window; 'other' is the rest of the machine (other users of a shared machine)",
		"$SYS counters refresh every sys_interval (10 s by default), so a phase's broker_dropped may include the tail of the previous phase")
	return rep, nil
}

// watchSys keeps the last value of Mosquitto's drop counter.
func (l *Load) watchSys(ctx context.Context) (mqtt.Client, error) {
	opts := sim.NewMQTTOptions(l.cfg.Broker, fmt.Sprintf("iocsim-load-sys-%d-%d", os.Getpid(), time.Now().UnixNano()))
	c, err := sim.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	// Mosquitto publishes the drop counter only once it changes; seeing its
	// uptime tells that $SYS is on, and then "never published" means none.
	tok := c.SubscribeMultiple(map[string]byte{sysDropped: 0, sysUptime: 0}, func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() == sysUptime {
			if l.sysOn.CompareAndSwap(false, true) {
				l.dropped.CompareAndSwap(-1, 0)
			}
			return
		}
		if v, err := strconv.ParseInt(string(m.Payload()), 10, 64); err == nil {
			l.dropped.Store(v)
		}
	})
	tok.WaitTimeout(5 * time.Second)
	if err := tok.Error(); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s: %w", sysDropped, err)
	}
	// $SYS topics are retained: if they are on, they arrive at once.
	for range 20 {
		if l.sysOn.Load() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

// newSim builds the publishers of one phase: the simulator's usual mix of
// kinds in proportion to their natural rates, ts = publish time.
func (l *Load) newSim(prefix string) (*sim.Simulator, error) {
	cfg := l.cfg
	return sim.New(sim.Config{
		Broker:       cfg.Broker,
		Prefix:       prefix,
		ClientID:     fmt.Sprintf("iocsim-load-%d-%s", os.Getpid(), prefix),
		Conns:        cfg.Conns,
		Window:       cfg.Window,
		Seed:         cfg.Seed,
		Rate:         cfg.Rate,
		Duration:     cfg.PhaseDuration,
		Sensors:      cfg.Sensors,
		Cameras:      max(1, cfg.Sensors/10),
		Sources:      max(1, cfg.Sensors/50),
		Units:        max(1, cfg.Sensors/20),
		Batch:        cfg.Batch,
		Wards:        l.wards,
		DrainTimeout: 30 * time.Second,
		Logger:       cfg.Logger,
	})
}

// steady runs s for the phase and samples at the end of the warm-up and
// just before the publishers stop; between is the steady window.
type steadyMarks struct {
	t1, t2     time.Time
	pub1, pub2 sim.Summary
	cpu1, cpu2 cpuSample
}

func (l *Load) runSteady(ctx context.Context, s *sim.Simulator, at1, at2 func()) (steadyMarks, error) {
	var (
		m    steadyMarks
		wg   sync.WaitGroup
		rerr error
	)
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); rerr = s.Run(ctx) }()
	if sleepUntil(ctx, start.Add(l.cfg.Warmup)) {
		m.t1, m.pub1, m.cpu1 = time.Now(), s.Stats(), sampleCPU(l.procs)
		at1()
	}
	if sleepUntil(ctx, start.Add(l.cfg.PhaseDuration-200*time.Millisecond)) {
		m.t2, m.pub2, m.cpu2 = time.Now(), s.Stats(), sampleCPU(l.procs)
		at2()
	}
	wg.Wait()
	if rerr == nil && ctx.Err() != nil {
		rerr = ctx.Err()
	}
	return m, rerr
}

func (l *Load) brokerPhase(ctx context.Context, run int) (Phase, error) {
	cfg := &l.cfg
	ph := Phase{Phase: "broker", Run: run, SysDropped: -1}
	fmt.Fprintf(cfg.Progress, "run %d/%d: broker alone, %s into %s/# (bare subscriber)\n", run, cfg.Runs, cfg.PhaseDuration, cfg.BenchPrefix)
	var received atomic.Int64
	opts := sim.NewMQTTOptions(cfg.Broker, fmt.Sprintf("iocsim-load-sub-%d-%d", os.Getpid(), time.Now().UnixNano())).SetOrderMatters(true)
	sub, err := sim.Connect(ctx, opts)
	if err != nil {
		return ph, err
	}
	defer sub.Disconnect(100)
	tok := sub.Subscribe(cfg.BenchPrefix+"/#", 1, func(mqtt.Client, mqtt.Message) { received.Add(1) })
	tok.WaitTimeout(5 * time.Second)
	if err := tok.Error(); err != nil {
		return ph, fmt.Errorf("subscribe %s/#: %w", cfg.BenchPrefix, err)
	}
	s, err := l.newSim(cfg.BenchPrefix)
	if err != nil {
		return ph, err
	}
	drop0 := l.dropped.Load()
	var r1, r2 int64
	m, err := l.runSteady(ctx, s, func() { r1 = received.Load() }, func() { r2 = received.Load() })
	if err != nil {
		return ph, err
	}
	l.fillPublish(&ph, s, m)
	if w := ph.Window; w > 0 {
		ph.ReceivedPerS = float64(r2-r1) / w
	}
	// Let the subscriber drain: until it has everything or stops advancing.
	end := time.Now()
	last, lastMove := received.Load(), time.Now()
	for received.Load() < ph.Published && time.Since(lastMove) < 3*time.Second && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		if r := received.Load(); r != last {
			last, lastMove = r, time.Now()
		}
	}
	ph.Received = received.Load()
	ph.Drained = ph.Received >= ph.Published
	ph.DrainSeconds = time.Since(end).Seconds()
	ph.Lost = ph.Published - ph.Received
	if d := l.dropped.Load(); drop0 >= 0 && d >= 0 {
		ph.SysDropped = d - drop0
	}
	fmt.Fprintf(cfg.Progress, "  published %.0f/s, subscriber received %.0f/s; lost %d; cpu %s\n",
		ph.PublishedPerS, ph.ReceivedPerS, ph.Lost, cpuLine(ph.CPU))
	return ph, nil
}

func (l *Load) fillPublish(ph *Phase, s *sim.Simulator, m steadyMarks) {
	sum := s.Stats()
	ph.Published, ph.Items, ph.Failed = sum.Total.Acked, sum.Total.Items, sum.Total.Failed
	if !m.t1.IsZero() && m.t2.After(m.t1) {
		ph.Window = m.t2.Sub(m.t1).Seconds()
		ph.PublishedPerS = float64(m.pub2.Total.Acked-m.pub1.Total.Acked) / ph.Window
		ph.CPU = cpuPercent(m.cpu1, m.cpu2)
	}
}

func (l *Load) pipelinePhase(ctx context.Context, run int) (Phase, error) {
	cfg := &l.cfg
	ph := Phase{Phase: "pipeline", Run: run, SysDropped: -1}
	fmt.Fprintf(cfg.Progress, "run %d/%d: full pipeline, %s into %s/# (iocd → PostGIS)\n", run, cfg.Runs, cfg.PhaseDuration, cfg.CityPrefix)
	m0, err := scrape(ctx, l.http, cfg.IocdMetrics)
	if err != nil {
		return ph, err
	}
	s, err := l.newSim(cfg.CityPrefix)
	if err != nil {
		return ph, err
	}
	drop0 := l.dropped.Load()
	var m1, m2 *sample
	var e1, e2 error
	var prof sync.WaitGroup
	marks, err := l.runSteady(ctx, s,
		func() {
			m1, e1 = scrape(ctx, l.http, cfg.IocdMetrics)
			if cfg.IocdProfile != "" && run == 1 {
				prof.Add(1)
				go func() { defer prof.Done(); l.profileIocd(ctx, &ph) }()
			}
		},
		func() { m2, e2 = scrape(ctx, l.http, cfg.IocdMetrics) })
	prof.Wait()
	if err != nil {
		return ph, err
	}
	if e := errors.Join(e1, e2); e != nil || m1 == nil || m2 == nil {
		return ph, fmt.Errorf("pipeline phase: scraping iocd: %v", e)
	}
	l.fillPublish(&ph, s, marks)
	w := m2.at.Sub(m1.at).Seconds()
	ph.CommittedPerS = (m2.sum(metricCommitted) - m1.sum(metricCommitted)) / w
	if !m2.has(metricCommitted) {
		ph.Note = "iocd exports no " + metricCommitted
	}
	lag := deltaBuckets(m1.buckets(metricLag), m2.buckets(metricLag))
	var over1, over2 bool
	ph.LagP50, over1 = quantile(0.50, lag)
	ph.LagP99, over2 = quantile(0.99, lag)
	ph.LagOver = over1 || over2
	if math.IsNaN(ph.LagP50) || math.IsNaN(ph.LagP99) {
		ph.LagP50, ph.LagP99 = 0, 0 // JSON has no NaN
		ph.Note = "no " + metricLag + " observations in the window"
	}

	// Wait for iocd to catch up with everything published.
	end := time.Now()
	var mf *sample
	for {
		mf, err = scrape(ctx, l.http, cfg.IocdMetrics)
		if err != nil {
			return ph, err
		}
		done := int64(mf.sum(metricCommitted)-m0.sum(metricCommitted)) + int64(mf.sum(metricRejected)-m0.sum(metricRejected)) +
			int64(mf.sum(metricDup)-m0.sum(metricDup)) -
			int64(mf.by(metricTwins, "outcome")["written"]-m0.by(metricTwins, "outcome")["written"])
		if done >= ph.Items {
			ph.Drained = true
			break
		}
		if time.Since(end) > cfg.DrainTimeout || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	ph.DrainSeconds = time.Since(end).Seconds()
	ph.IocdReceived = int64(mf.sum(metricReceived) - m0.sum(metricReceived))
	ph.Committed = int64(mf.sum(metricCommitted) - m0.sum(metricCommitted))
	ph.Rejected = int64(mf.sum(metricRejected) - m0.sum(metricRejected))
	ph.Duplicates = int64(mf.sum(metricDup) - m0.sum(metricDup))
	ph.Duplicates -= int64(mf.by(metricTwins, "outcome")["written"] - m0.by(metricTwins, "outcome")["written"])
	before := m0.by(metricRejected, "reason")
	for r, v := range mf.by(metricRejected, "reason") {
		if d := int64(v - before[r]); d > 0 {
			if ph.ByReason == nil {
				ph.ByReason = map[string]int64{}
			}
			ph.ByReason[r] = d
		}
	}
	ph.Lost = ph.Items - ph.Committed - ph.Rejected - ph.Duplicates
	if d := l.dropped.Load(); drop0 >= 0 && d >= 0 {
		ph.SysDropped = d - drop0
	}
	fmt.Fprintf(cfg.Progress, "  published %.0f/s, committed %.0f/s, lag p50 %.3fs p99 %.3fs, drained in %.1fs (%v); received %d committed %d rejected %d of %d items; cpu %s\n",
		ph.PublishedPerS, ph.CommittedPerS, ph.LagP50, ph.LagP99, ph.DrainSeconds, ph.Drained,
		ph.IocdReceived, ph.Committed, ph.Rejected, ph.Items, cpuLine(ph.CPU))
	return ph, nil
}

// profileIocd fetches a CPU profile of iocd over the rest of the steady
// window and writes it to cfg.IocdProfile.
func (l *Load) profileIocd(ctx context.Context, ph *Phase) {
	secs := int((l.cfg.PhaseDuration - l.cfg.Warmup - time.Second).Seconds())
	u, err := url.Parse(l.cfg.IocdMetrics)
	if err != nil || secs < 1 {
		ph.Note = "no iocd profile: phase too short"
		return
	}
	u.Path, u.RawQuery = "/debug/pprof/profile", "seconds="+strconv.Itoa(secs)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := (&http.Client{Timeout: time.Duration(secs+10) * time.Second}).Do(req)
	if err != nil {
		ph.Note = fmt.Sprintf("no iocd profile: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ph.Note = "no iocd profile: " + resp.Status
		return
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(l.cfg.IocdProfile, b, 0o644)
	}
	if err != nil {
		ph.Note = fmt.Sprintf("no iocd profile: %v", err)
		return
	}
	ph.Note = fmt.Sprintf("iocd CPU profile of %d s written to %s", secs, l.cfg.IocdProfile)
}

func (r *Report) summarise() {
	var ceil, comm, p50, p99, drain []float64
	bcpu, pcpu := map[string][]float64{}, map[string][]float64{}
	for _, p := range r.Phases {
		switch p.Phase {
		case "broker":
			ceil = append(ceil, p.ReceivedPerS)
			for k, v := range p.CPU {
				bcpu[k] = append(bcpu[k], v)
			}
		case "pipeline":
			comm = append(comm, p.CommittedPerS)
			p50 = append(p50, p.LagP50)
			p99 = append(p99, p.LagP99)
			drain = append(drain, p.DrainSeconds)
			for k, v := range p.CPU {
				pcpu[k] = append(pcpu[k], v)
			}
		}
	}
	r.CeilingPerS = median(ceil)
	r.CommittedPerS = median(comm)
	if r.CeilingPerS > 0 && len(comm) > 0 {
		r.Ratio = r.CommittedPerS / r.CeilingPerS
	}
	r.LagP50, r.LagP99, r.DrainSeconds = median(p50), median(p99), median(drain)
	r.BrokerCPU, r.PipelineCPU = medians(bcpu), medians(pcpu)
}

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medians(m map[string][]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = median(v)
	}
	return out
}

var cpuOrder = []string{groupMosquitto, groupPostgres, groupIocd, groupSelf, "other", "machine"}

func cpuLine(c map[string]float64) string {
	s := ""
	for _, k := range cpuOrder {
		if v, ok := c[k]; ok {
			s += fmt.Sprintf("%s %.1f%% ", k, v)
		}
	}
	return s
}

// WriteText prints the report as tables.
func (r *Report) WriteText(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\niocsim load on %s (%d cores), %s; %d runs of %.0f s phases (first %.0f s excluded), %d connections × %d in flight, %d sensors, batch %d\n\n",
		r.Host, r.Cores, r.Started.Format(time.RFC3339), c.Runs, c.PhaseDuration, c.Warmup, c.Conns, c.Window, c.Sensors, c.Batch)
	fmt.Fprintf(w, "%-9s %3s %10s %10s %10s %8s %8s %8s %8s %7s  %s\n",
		"phase", "run", "publish/s", "recv/s", "commit/s", "lag p50", "lag p99", "drain s", "lost", "drops", "cpu % of one core")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%-9s %3d %10.0f %10s %10s %8s %8s %8.1f %8d %7s  %s\n",
			p.Phase, p.Run, p.PublishedPerS, orDash(p.ReceivedPerS, "%.0f"), orDash(p.CommittedPerS, "%.0f"),
			orDash(p.LagP50, "%.3f"), orDash(p.LagP99, "%.3f"), p.DrainSeconds, p.Lost, sysStr(p.SysDropped), cpuLine(p.CPU))
	}
	fmt.Fprintf(w, "\nbroker ceiling (median): %.0f msgs/s\n", r.CeilingPerS)
	if r.CommittedPerS > 0 {
		fmt.Fprintf(w, "committed to PostGIS (median): %.0f msgs/s = %.0f%% of the ceiling (target ≥ 80%%)\n", r.CommittedPerS, r.Ratio*100)
		fmt.Fprintf(w, "commit lag (median of runs): p50 %.3f s, p99 %.3f s; backlog drained in %.1f s\n", r.LagP50, r.LagP99, r.DrainSeconds)
	}
	fmt.Fprintf(w, "cpu, broker phase: %s\n", cpuLine(r.BrokerCPU))
	if len(r.PipelineCPU) > 0 {
		fmt.Fprintf(w, "cpu, pipeline phase: %s\n", cpuLine(r.PipelineCPU))
	}
	fmt.Fprintf(w, "processes: broker pid %s, iocd pid %s, postgres: %s\n", pidStr(r.BrokerPID, "mosquitto"), pidStr(r.IocdPID, "iocd"), pgWhich(r.PostgresDB))
	for _, p := range r.Phases {
		if p.Note != "" {
			fmt.Fprintf(w, "note: %s run %d: %s\n", p.Phase, p.Run, p.Note)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func orDash(v float64, f string) string {
	if v == 0 || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

func sysStr(v int64) string {
	if v < 0 {
		return "?"
	}
	return strconv.FormatInt(v, 10)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func pidStr(pid int, name string) string {
	if pid == 0 {
		return "(every process named " + name + ")"
	}
	return strconv.Itoa(pid)
}

func pgWhich(db string) string {
	if db == "" {
		return "all processes named postgres"
	}
	return "the backends of database " + db + " and the server's shared processes"
}
