// Command iocsim publishes simulated Hanoi city telemetry to an MQTT broker
// (iocsim run, the default) and measures the ingest pipeline under load
// (iocsim load). See docs/simulator.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"ioc/config"
	"ioc/sim"
	"ioc/sim/load"
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if p := os.Getenv("IOCSIM_CPUPROFILE"); p != "" {
		stop, err := startProfile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "iocsim:", err)
			os.Exit(1)
		}
		defer stop()
	}
	var err error
	switch cmd {
	case "run":
		err = runCmd(ctx, args)
	case "load":
		err = loadCmd(ctx, args)
	case "ws":
		err = wsCmd(ctx, args)
	case "seed":
		err = seedCmd(ctx, args)
	case "faults":
		err = faultsCmd(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprintln(os.Stderr, "usage: iocsim [run] [flags] | iocsim load [flags] | iocsim ws [flags] | iocsim seed [flags] | iocsim faults [flags]; -h after a command lists its flags")
		return
	default:
		err = fmt.Errorf("unknown command %q (run, load, ws, seed, faults)", cmd)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "iocsim:", err)
		cancel()
		os.Exit(1) //nolint:gocritic // the profile is incomplete anyway
	}
}

// startProfile writes a CPU profile of the whole run (env
// IOCSIM_CPUPROFILE=FILE), to see where the load generator's time goes.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func newLogger(verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iocsim run", flag.ContinueOnError)
	var (
		cfg      sim.Config
		truth    = fs.String("truth", "", "write the scripted incidents' ground truth to `FILE` (JSON lines)")
		summary  = fs.String("summary", "", "write the summary as JSON to `FILE`")
		start    = fs.String("start", "", "simulated start time, RFC 3339 (default: now, or earlier with --clock-speed)")
		progress = fs.Duration("progress", 2*time.Second, "progress line interval on stderr (0: none)")
		verbose  = fs.Bool("v", false, "debug logs")
	)
	fs.StringVar(&cfg.Broker, "broker", env("IOC_MQTT_URL", "tcp://127.0.0.1:1883"), "MQTT broker URL (env IOC_MQTT_URL)")
	fs.StringVar(&cfg.Prefix, "prefix", env("IOC_MQTT_TOPIC_PREFIX", "city"), "topic prefix (env IOC_MQTT_TOPIC_PREFIX)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: same seed, same devices and messages")
	fs.Float64Var(&cfg.Rate, "rate", sim.RateNatural, "messages per second; -1: the devices' own schedules; 0: as fast as possible")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.Int64Var(&cfg.Count, "count", 0, "stop after this many messages (0: no limit)")
	fs.IntVar(&cfg.Sensors, "sensors", 3000, "traffic sensors")
	fs.IntVar(&cfg.Cameras, "cameras", 300, "cameras")
	fs.IntVar(&cfg.Sources, "sources", 60, "fixed emergency sources (panic buttons, fire alarms, flood sensors), besides the call centres")
	fs.IntVar(&cfg.Units, "units", 120, "responder units")
	fs.DurationVar(&cfg.SensorInterval, "interval", 60*time.Second, "traffic sensor reporting interval (simulated time)")
	fs.Float64Var(&cfg.BadRatio, "bad-ratio", 0, "fraction of messages replaced by malformed ones")
	fs.StringVar(&cfg.Scenarios, "scenarios", "", `scripted incidents: "all" or "congestion@1m,accident@3m,fire@5m" (offsets in simulated time)`)
	fs.Float64Var(&cfg.ClockSpeed, "clock-speed", 1, "simulated seconds per wall second")
	fs.IntVar(&cfg.Batch, "batch", 1, "traffic sensors send arrays of this many readings (gateway batches)")
	fs.IntVar(&cfg.Conns, "conns", 0, "MQTT connections (0: 1, or 4 when --rate is 0 or above 2000)")
	fs.IntVar(&cfg.Window, "window", 1000, "unacknowledged publishes per connection")
	fs.StringVar(&cfg.WardsPath, "wards", sim.DefaultWardsPath, "wards GeoJSON")
	fs.StringVar(&cfg.HospitalsPath, "hospitals", "", "hospitals GeoJSON (default: hospitals.geojson beside --wards)")
	fs.StringVar(&cfg.RunID, "run-id", "", "prefix of message ids (default: from the start time, so runs never share ids)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		cfg.Start = t
	}
	if *progress > 0 {
		cfg.Progress, cfg.ProgressEvery = os.Stderr, *progress
	}
	cfg.Logger = newLogger(*verbose)
	if *truth != "" {
		f, err := os.Create(*truth)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Truth = f
	}
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stderr, startLine(s.Devices(), s.Start(), cfg.Broker, cfg.Prefix))
	runErr := s.Run(ctx)
	sum := s.Stats()
	sum.WriteText(os.Stderr)
	if *summary != "" {
		if err := writeJSON(*summary, sum); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// startLine is the run command's first line on stderr. The broker URL may
// carry the simulator account's password: it is redacted.
func startLine(devices any, start time.Time, broker, prefix string) string {
	return fmt.Sprintf("iocsim: %v devices, simulated start %s, publishing to %s under %s/\n",
		devices, start.Format(time.RFC3339), config.Redact(broker), prefix)
}

func writeJSON(path string, v any) error {
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func loadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iocsim load", flag.ContinueOnError)
	var (
		cfg     load.Config
		jsonOut = fs.String("json", "", "write the report as JSON to `FILE` (- for stdout)")
		verbose = fs.Bool("v", false, "debug logs")
	)
	fs.StringVar(&cfg.Broker, "broker", env("IOC_MQTT_URL", "tcp://127.0.0.1:1883"), "MQTT broker URL (env IOC_MQTT_URL)")
	fs.StringVar(&cfg.BenchPrefix, "bench-prefix", "bench", "topic prefix of the broker-only phase (iocd must not subscribe to it)")
	fs.StringVar(&cfg.CityPrefix, "prefix", env("IOC_MQTT_TOPIC_PREFIX", "city"), "topic prefix iocd ingests")
	metrics := "http://127.0.0.1:8080/metrics"
	if a := os.Getenv("IOC_METRICS_ADDR"); a != "" { // iocd's credential-free metrics listener
		metrics = "http://" + a + "/metrics"
	}
	fs.StringVar(&cfg.IocdMetrics, "iocd-metrics", metrics, "iocd's Prometheus endpoint (default from IOC_METRICS_ADDR; empty: skip the pipeline phase)")
	fs.DurationVar(&cfg.PhaseDuration, "phase-duration", 20*time.Second, "publishing time per phase")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "start of each phase left out of the figures")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 120*time.Second, "how long to wait for iocd to catch up after a pipeline phase")
	fs.IntVar(&cfg.Runs, "runs", 3, "repeat both phases this many times, alternating; medians are reported")
	fs.IntVar(&cfg.Conns, "conns", 4, "publishing connections")
	fs.IntVar(&cfg.Window, "window", 1000, "unacknowledged publishes per connection")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second (0: as fast as possible)")
	fs.IntVar(&cfg.Sensors, "sensors", 2000, "traffic sensors (distinct device ids)")
	fs.IntVar(&cfg.Batch, "batch", 1, "traffic readings per message")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.StringVar(&cfg.WardsPath, "wards", sim.DefaultWardsPath, "wards GeoJSON")
	fs.IntVar(&cfg.IocdPID, "iocd-pid", 0, "iocd's pid (default: the process listening on the metrics port, else by name)")
	fs.StringVar(&cfg.PostgresDB, "postgres-db", "", "count only this database's PostgreSQL backends (and the server's shared processes) as postgres (default: every postgres process)")
	fs.StringVar(&cfg.IocdProfile, "iocd-profile", "", "write a CPU profile of iocd during the first pipeline phase to `FILE` (needs /debug/pprof beside the metrics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Logger = newLogger(*verbose)
	cfg.Progress = os.Stderr
	l, err := load.New(cfg)
	if err != nil {
		return err
	}
	rep, err := l.Run(ctx)
	if rep != nil {
		rep.Config.Broker = config.Redact(rep.Config.Broker)
		rep.WriteText(os.Stdout)
		if *jsonOut != "" {
			if jerr := writeJSON(*jsonOut, rep); jerr != nil {
				err = errors.Join(err, jerr)
			}
		}
	}
	return err
}
