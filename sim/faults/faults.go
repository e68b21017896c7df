package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config is a suite run.
type Config struct {
	Short bool     // CI's version: the same faults, shorter (a few minutes in all)
	Only  []string // fault names to run; empty: all of the chosen length
	Dir   string   // working directory (default: a new temporary one, removed at the end)
	Root  string   // the ioc module (default: found from the working directory)
	Wards string   // wards GeoJSON (default: ../shared/data/hanoi/wards.geojson beside Root)
	Rate  float64  // simulator messages per second (default 200)
	Burst int      // the broker faults' burst (0: 20,000, CI 8,000; <0: none)
	// Log receives the children's logs and the suite's progress (default:
	// only the suite's log file in Dir).
	Log          io.Writer
	IocdLogLevel string // default warn
}

// Suite owns the PostgreSQL cluster and the iocd binary shared by the
// worlds.
type Suite struct {
	cfg   Config
	root  string
	wards string
	dir   string
	iocd  string
	pg    *Postgres
	logw  io.Writer
	logf  *os.File
	temp  bool
	// The first admin's password (iocd's bootstrap), for the websocket
	// watchers.
	adminPass, adminPassFile string
}

// Result is one fault's outcome.
type Result struct {
	Fault    string
	Broker   string
	Figures  Figures
	Recovery time.Duration // fault healed → everything acknowledged before it committed; <0: not reached
	Err      error
	Note     string
	// DeploymentChoice: the loss is the broker's, fixed by choosing
	// another broker, not by iocd.
	DeploymentChoice bool
	Skipped          string // why the fault was not run
}

// OK: nothing lost, doubled or missing.
func (r Result) OK() bool {
	f := r.Figures
	return r.Err == nil && r.Skipped == "" && f.Lost == 0 && f.Duplicated == 0 && f.Rejected == 0 &&
		f.IncMissing == 0 && f.IncDoubled == 0 && f.SignalsAlone == 0 && f.IncOpened == f.IncExpected && f.Acked > 0 &&
		!slices.Contains(f.Shares, 0) && f.WSGaps == 0 && f.WSRepeats == 0 && f.WSBehind == 0
}

// durations of a run: full (the issue's) or short (CI).
type durations struct {
	warm, tail                    time.Duration
	killFor, killMin, killMax     time.Duration
	pgDown, latencyFor, redisDown time.Duration
	partitionFor, backlog         time.Duration
	burst                         int
	instanceDown                  time.Duration
	recoverWithin                 time.Duration
}

func (s *Suite) durations() (d durations) {
	defer func() {
		switch {
		case s.cfg.Burst > 0:
			d.burst = s.cfg.Burst
		case s.cfg.Burst < 0:
			d.burst = 0
		}
	}()
	if s.cfg.Short {
		return durations{warm: 2 * time.Second, tail: time.Second,
			killFor: 15 * time.Second, killMin: 5 * time.Second, killMax: 10 * time.Second, instanceDown: 8 * time.Second,
			pgDown: 8 * time.Second, latencyFor: 8 * time.Second, redisDown: 8 * time.Second,
			partitionFor: 8 * time.Second, backlog: 3 * time.Second, burst: 8000, recoverWithin: 120 * time.Second}
	}
	return durations{warm: 5 * time.Second, tail: 5 * time.Second,
		killFor: 5 * time.Minute, killMin: 5 * time.Second, killMax: 20 * time.Second, instanceDown: 20 * time.Second,
		pgDown: 30 * time.Second, latencyFor: 30 * time.Second, redisDown: time.Minute,
		partitionFor: 30 * time.Second, backlog: 10 * time.Second, burst: 20000, recoverWithin: 180 * time.Second}
}

// Fault is one thing that breaks.
type Fault struct {
	Name  string
	Setup Setup
	Short bool // part of the CI version
	// Inject breaks and heals, and returns when the fault is over.
	Inject func(ctx context.Context, w *World, d durations, log func(string, ...any)) error
	// DeploymentChoice marks a broker that loses what it acknowledged when
	// it crashes: the loss is measured and reported, not a product bug.
	DeploymentChoice bool
	Note             string
	Skip             string // not run, and why
}

// Faults is the catalogue, in the order.
func Faults() []Fault {
	var fs []Fault
	fs = append(fs, Fault{Name: "iocd-sigkill", Setup: Setup{Broker: "mosquitto"}, Short: true,
		Note: "SIGKILL iocd every 5-20 s for 5 min (CI: 5-10 s for 15 s), restarted at once",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			return killRepeatedly(ctx, w, d, log)
		}})
	fs = append(fs, Fault{Name: "iocd-sigkill-nats", Setup: Setup{Broker: "nats"},
		Note: "the same on NATS: SIGKILL iocd every 5-20 s, restarted at once",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			return killRepeatedly(ctx, w, d, log)
		}})
	fs = append(fs, Fault{Name: "iocd-down-nats-shared", Setup: Setup{Broker: "nats", Instances: 2}, Short: true,
		Note: "two instances sharing the load on NATS (deploy/nats/instances.conf); one SIGKILLed and kept down 20 s (CI: 8 s)",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.Iocds[1].Kill()
			if err := sleep(ctx, d.instanceDown); err != nil {
				return err
			}
			return w.Iocds[1].Start(ctx)
		}})
	fs = append(fs, Fault{Name: "postgres-restart", Setup: Setup{Broker: "mosquitto"},
		Note: "PostgreSQL immediate shutdown (crash) and started again at once",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.s.pg.Crash()
			return w.s.pg.Start(ctx)
		}})
	fs = append(fs, Fault{Name: "postgres-down", Setup: Setup{Broker: "mosquitto"}, Short: true,
		Note: "PostgreSQL crashed and kept down 30 s (CI: 8 s)",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.s.pg.Crash()
			if err := sleep(ctx, d.pgDown); err != nil {
				return err
			}
			return w.s.pg.Start(ctx)
		}})
	for _, b := range []string{"mosquitto", "nats", "nats-cluster"} {
		b := b
		f := Fault{Name: "broker-sigkill-" + b, Setup: Setup{Broker: b}, Short: b == "nats",
			DeploymentChoice: b == "mosquitto",
			Note:             "iocd paused (SIGSTOP); a burst of 20,000 readings (CI: 8,000) and 10 s (CI: 3 s) of load build a backlog; the broker SIGKILLed, restarted, iocd resumed",
			Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
				for _, c := range w.Iocds {
					c.Pause()
				}
				before := w.load.nAcked.Load()
				if err := w.load.burst(ctx, w.load.broker, "faults-burst-"+w.name, w.load.runID, d.burst); err != nil {
					return err
				}
				if err := sleep(ctx, d.backlog); err != nil {
					return err
				}
				log("backlog: %d acknowledged while iocd was paused (a burst of %d among them)", w.load.nAcked.Load()-before, d.burst)
				w.Broker.Kill(0)
				if b == "nats-cluster" {
					// One node of three is gone; iocd and the devices move to
					// another through their load balancers. The node comes
					// back later and catches up.
					for _, c := range w.Iocds {
						c.Resume()
					}
					if err := sleep(ctx, 10*time.Second); err != nil {
						return err
					}
					return w.Broker.Restart(ctx, 0)
				}
				if err := sleep(ctx, time.Second); err != nil {
					return err
				}
				err := w.Broker.Restart(ctx, 0)
				for _, c := range w.Iocds {
					c.Resume()
				}
				return err
			}}
		if b == "nats-cluster" {
			f.Note = "iocd paused, backlog as above; one node of three SIGKILLed (the one iocd and the devices are on), iocd resumed, the node restarted 10 s later"
		}
		fs = append(fs, f)
	}
	fs = append(fs, Fault{Name: "node-sigkill-nats-cluster", Setup: Setup{Broker: "nats-cluster"},
		Note: "no pause, no burst: under steady load one node of three SIGKILLed (the one iocd and the devices are on), restarted 10 s later",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.Broker.Kill(0)
			if err := sleep(ctx, 10*time.Second); err != nil {
				return err
			}
			return w.Broker.Restart(ctx, 0)
		}})
	fs = append(fs, Fault{Name: "redis-down", Setup: Setup{Broker: "mosquitto", Instances: 2}, Short: true,
		Note: "two instances sharing the subscription; Redis SIGKILLed, down 60 s (CI: 8 s), restarted empty",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.Redis.Kill()
			if err := sleep(ctx, d.redisDown); err != nil {
				return err
			}
			return w.Redis.Start(ctx)
		}})
	fs = append(fs, Fault{Name: "postgres-latency", Setup: Setup{Broker: "mosquitto"}, Short: true,
		Note: "2 s added each way between iocd and PostgreSQL for 30 s (CI: 8 s)",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			for _, c := range w.Iocds {
				c.PG.SetLatency(2 * time.Second)
			}
			err := sleep(ctx, d.latencyFor)
			for _, c := range w.Iocds {
				c.PG.SetLatency(0)
			}
			return err
		}})
	fs = append(fs, Fault{Name: "redis-partition", Setup: Setup{Broker: "mosquitto", Instances: 2}, Short: true,
		Note: "two instances; one cannot reach Redis (packets held, nothing closed) for 30 s (CI: 8 s)",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			w.Iocds[1].RD.Partition()
			err := sleep(ctx, d.partitionFor)
			w.Iocds[1].RD.Heal()
			return err
		}})
	fs = append(fs, Fault{Name: "clock-skew", Setup: Setup{Broker: "mosquitto", Instances: 2, Skew: 30 * time.Second}, Short: true,
		Note: "two instances sharing the subscription, the second one's clock 30 s ahead (iocd's clock_offset) from its start; load and emergency signals for 30 s (CI: 8 s)",
		Inject: func(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
			if err := sleep(ctx, d.latencyFor); err != nil {
				return err
			}
			// The skew is in effect: the second instance stamps what it
			// receives with its own clock.
			var ahead float64
			if err := w.Pool.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM max(received_at) - now()), 0) FROM traffic_readings`).Scan(&ahead); err != nil {
				return err
			}
			log("the newest reading's received_at is %.1f s ahead of PostgreSQL's clock", ahead)
			if ahead < 20 {
				return fmt.Errorf("clock skew not in effect: the newest received_at is %.1f s ahead, want about 30", ahead)
			}
			return nil
		}})
	return fs
}

// killRepeatedly SIGKILLs the first instance at random intervals and
// restarts it at once, for d.killFor.
func killRepeatedly(ctx context.Context, w *World, d durations, log func(string, ...any)) error {
	rng := rand.New(rand.NewPCG(5, 20))
	end := time.Now().Add(d.killFor)
	kills := 0
	for time.Now().Before(end) {
		wait := d.killMin + time.Duration(rng.Int64N(int64(d.killMax-d.killMin)+1))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		w.Iocds[0].Kill()
		kills++
		if err := w.Iocds[0].Start(ctx); err != nil {
			return err
		}
	}
	log("%d kills", kills)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// New prepares a suite: finds the module, builds iocd, starts PostgreSQL.
func New(ctx context.Context, cfg Config) (*Suite, error) {
	s := &Suite{cfg: cfg}
	if s.cfg.Rate == 0 {
		s.cfg.Rate = 200
	}
	if s.cfg.IocdLogLevel == "" {
		s.cfg.IocdLogLevel = "warn"
	}
	var err error
	if s.root = cfg.Root; s.root == "" {
		if s.root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	if s.wards = cfg.Wards; s.wards == "" {
		s.wards = filepath.Join(s.root, "..", "shared", "data", "hanoi", "wards.geojson")
	}
	if !fileExists(s.wards) {
		return nil, fmt.Errorf("wards %s not found", s.wards)
	}
	if s.dir = cfg.Dir; s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "ioc-faults-"); err != nil {
			return nil, err
		}
		s.temp = true
	}
	// 0755: PostgreSQL runs as another user when the suite runs as root.
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return nil, err
	}
	if s.logf, err = os.Create(filepath.Join(s.dir, "suite.log")); err != nil {
		return nil, err
	}
	s.logw = s.logf
	if cfg.Log != nil {
		s.logw = io.MultiWriter(s.logf, cfg.Log)
	}
	s.adminPass = fmt.Sprintf("fault-suite-%d-secret", time.Now().UnixNano())
	s.adminPassFile = filepath.Join(s.dir, "admin.pass")
	if err := os.WriteFile(s.adminPassFile, []byte(s.adminPass+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.iocd, err = BuildIocd(ctx, s.root, s.dir); err != nil {
		s.Close()
		return nil, err
	}
	if s.pg, err = StartPostgres(ctx, filepath.Join(s.dir, "pg"), prefixWriter(s.logw, "postgres: ")); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops PostgreSQL and removes a temporary directory.
func (s *Suite) Close() {
	if s.pg != nil {
		s.pg.Stop()
	}
	if s.logf != nil {
		s.logf.Close()
	}
	if s.temp {
		os.RemoveAll(s.dir)
	}
}

func (s *Suite) logln(format string, args ...any) {
	fmt.Fprintf(s.logw, "faults: "+format+"\n", args...)
}

// tail is the end of the suite's log, for an error message.
func (s *Suite) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "suite.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Run runs the chosen faults one after another.
func (s *Suite) Run(ctx context.Context) []Result {
	var out []Result
	for _, f := range Faults() {
		if len(s.cfg.Only) > 0 {
			if !contains(s.cfg.Only, f.Name) {
				continue
			}
		} else if s.cfg.Short && !f.Short {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.RunFault(ctx, f))
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// RunFault sets up a world, loads it, breaks it, waits for recovery and
// judges.
func (s *Suite) RunFault(ctx context.Context, f Fault) (r Result) {
	r = Result{Fault: f.Name, Broker: f.Setup.Broker, Note: f.Note, DeploymentChoice: f.DeploymentChoice, Recovery: -1}
	if f.Skip != "" {
		r.Skipped = f.Skip
		return r
	}
	d := s.durations()
	started := time.Now()
	log := func(format string, args ...any) {
		s.logln("%s +%s: "+format, append([]any{f.Name, time.Since(started).Round(100 * time.Millisecond)}, args...)...)
	}
	w, err := s.newWorld(ctx, f.Name, f.Setup)
	if err != nil {
		r.Err = err
		return r
	}
	defer w.Close()
	log("world up (%s, %d instance(s))", w.Broker.Name(), len(w.Iocds))
	w.startWatchers(ctx)
	if err := w.startLoad(ctx, s.cfg.Rate, 3*time.Second); err != nil {
		r.Err = err
		return r
	}
	if err := sleep(ctx, d.warm); err != nil {
		r.Err = err
		return r
	}
	log("inject")
	w.injectAt = time.Now()
	if err := f.Inject(ctx, w, d, log); err != nil {
		r.Err = fmt.Errorf("inject: %w", err)
		return r
	}
	healed := time.Now()
	atHeal, _ := w.load.snapshot()
	log("healed; %d acknowledged so far", len(atHeal))
	within := d.recoverWithin
	if f.DeploymentChoice {
		within = 30 * time.Second // it will not all come: it was lost
	}
	for _, c := range w.Iocds {
		if err := c.WaitReady(ctx, within); err != nil {
			r.Err = err
			return r
		}
	}
	if _, err := w.waitRecovered(ctx, atHeal, within-time.Since(healed)); err == nil {
		r.Recovery = time.Since(healed)
		log("recovered in %s", r.Recovery.Round(100*time.Millisecond))
	} else {
		log("not recovered: %v", err)
	}
	if err := sleep(ctx, d.tail); err != nil {
		r.Err = err
		return r
	}
	w.load.stop()
	if w.load.simErr != nil {
		r.Err = fmt.Errorf("simulator: %w", w.load.simErr)
		return r
	}
	final := w.load.nAcked.Load()
	if _, err := w.waitCommitted(ctx, final, within); err != nil {
		log("final drain: %v", err)
	}
	// Incidents are opened in the transaction that commits the signal, but
	// let the last ones settle.
	sleep(ctx, time.Second)
	r.Figures, r.Err = w.judge(ctx)
	w.judgeWatchers(ctx, &r.Figures)
	log("%+v", r.Figures)
	return r
}

// WriteTable prints the results as a Markdown table.
func WriteTable(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| fault | broker | acked | committed | rejected | lost | duplicated | incidents expected / opened | missing / doubled | ws clients: gaps / repeats / behind (resets, reconnects) | recovery | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | %s | | | | | | | | | | not run: %s |\n", r.Fault, r.Broker, strings.TrimPrefix(r.Skipped, "not run: "))
			continue
		}
		f := r.Figures
		rec := "not reached"
		if r.Recovery >= 0 {
			rec = fmt.Sprintf("%.1f s", r.Recovery.Seconds())
		}
		verdict := "ok"
		switch {
		case r.Err != nil:
			verdict = "error: " + strings.ReplaceAll(firstLine(r.Err.Error()), "|", "/")
		case r.OK():
		case r.DeploymentChoice:
			verdict = "LOSS: the broker's (deployment choice: use NATS)"
		default:
			verdict = "LOSS"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %d | %d / %d | %d / %d | %d: %d / %d / %d (%d, %d) | %s | %s |\n",
			r.Fault, r.Broker, f.Acked, f.Committed, f.Rejected, f.Lost, f.Duplicated,
			f.IncExpected, f.IncOpened, f.IncMissing, f.IncDoubled,
			f.WSClients, f.WSGaps, f.WSRepeats, f.WSBehind, f.WSResets, f.WSReconnects, rec, verdict)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
