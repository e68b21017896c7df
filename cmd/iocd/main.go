// Command iocd is the operations centre service.
//
//	iocd [serve]          run ingest, alerts, streams and the dashboard
//	iocd migrate          apply the database schema and exit
//	iocd checkconfig      validate the configuration and print it
//	iocd areas import F   load wards from a GeoJSON file
//	iocd users ...        manage control-room accounts
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ioc/config"
	"ioc/db"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "iocd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("iocd "+cmd, flag.ContinueOnError)
	cfg, err := config.Load(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "serve":
		return serve(ctx, cfg, log)
	case "migrate":
		pool, err := db.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		ran, err := db.Migrate(ctx, pool)
		for _, name := range ran {
			log.Info("applied migration", "name", name)
		}
		return err
	case "checkconfig":
		fmt.Println(cfg.Redacted())
		return nil
	case "areas":
		return runAreas(ctx, cfg, fs.Args(), log)
	case "users":
		return runUsers(ctx, cfg, fs.Args(), log)
	default:
		return fmt.Errorf("unknown command %q (serve, migrate, checkconfig, areas, users)", cmd)
	}
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
