package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"ioc/config"
	"ioc/db"
	"ioc/ingest"
	"ioc/sim"
	"ioc/sim/seed"

	"github.com/jackc/pgx/v5/pgxpool"
)

// seedCmd fills a database with a year of Hanoi (docs/simulator.md, "Seeding").
func seedCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iocsim seed", flag.ContinueOnError)
	var cfg seed.Config
	dbURL := fs.String("database-url", env("IOC_DATABASE_URL", ""), "PostgreSQL to fill (env IOC_DATABASE_URL); it is migrated first")
	end := fs.String("end", "", "end of the history, RFC 3339 (default: now)")
	verbose := fs.Bool("v", false, "debug logs")
	noRollups := fs.Bool("no-rollups", false, "leave the telemetry rollups to iocd's first pass")
	fs.Int64Var(&cfg.Telemetry, "telemetry", 10_000_000, "telemetry rows (80% traffic, 12% unit positions, 6% camera events, 2% emergency signals)")
	fs.Int64Var(&cfg.Incidents, "incidents", 1_000_000, "incidents (timeline and evidence rows come on top)")
	fs.IntVar(&cfg.Days, "days", 365, "days of history, ending at --end")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: same seed, same history")
	fs.StringVar(&cfg.WardsPath, "wards", sim.DefaultWardsPath, "wards GeoJSON (imported when the areas table is empty)")
	fs.IntVar(&cfg.Sensors, "sensors", 0, "traffic sensors (0: as many as report every 5 minutes)")
	fs.IntVar(&cfg.Cameras, "cameras", 60, "cameras")
	fs.IntVar(&cfg.Sources, "sources", 20, "fixed emergency sources, besides the 4 call centres")
	fs.IntVar(&cfg.Units, "units", 40, "responder units")
	fs.IntVar(&cfg.Jobs, "jobs", 3, "generators at once (each with 1-3 COPY connections)")
	fs.BoolVar(&cfg.KeepIndexes, "keep-indexes", false, "load with every index in place (slower; to compare)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dbURL == "" {
		return fmt.Errorf("--database-url (or IOC_DATABASE_URL) is required")
	}
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			return fmt.Errorf("--end: %w", err)
		}
		cfg.End = t
	}
	cfg.Log = newLogger(*verbose)
	cfg.Progress = os.Stderr
	if !*noRollups {
		cfg.Rollups = func(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) error {
			return ingest.RollUpConcurrently(ctx, pool, from, to, cfg.Jobs)
		}
	}
	pool, err := db.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	fmt.Fprintf(os.Stderr, "iocsim seed: %d telemetry rows, %d incidents over %d days into %s\n",
		cfg.Telemetry, cfg.Incidents, cfg.Days, config.Redact(*dbURL))
	sum, err := seed.Run(ctx, pool, cfg)
	if err != nil {
		return err
	}
	tables := make([]string, 0, len(sum.Rows))
	for t := range sum.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	fmt.Fprintf(os.Stderr, "iocsim seed: %s .. %s, %d devices\n", sum.Start.Format(time.RFC3339), sum.End.Format(time.RFC3339), sum.Devices)
	for _, t := range tables {
		fmt.Fprintf(os.Stderr, "  %-20s %10d rows\n", t, sum.Rows[t])
	}
	fmt.Fprintf(os.Stderr, "  load %s, indexes+analyze %s, rollups %s (beside them), total %s\n",
		sum.Load.Round(100*time.Millisecond), sum.Indexes.Round(100*time.Millisecond), sum.Rollups.Round(100*time.Millisecond), sum.Total.Round(100*time.Millisecond))
	return nil
}
