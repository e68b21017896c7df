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
	"io"
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

func run(args []string) (err error) {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("iocd "+cmd, flag.ContinueOnError)
	cfg, err := config.Load(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	// A library may copy a URL with its password into an error.
	defer func() {
		if err != nil {
			err = scrubbed{cfg.Scrub(err.Error()), err}
		}
	}()
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
		fmt.Fprintln(stdout, cfg.Redacted())
		return nil
	case "areas":
		return runAreas(ctx, cfg, fs.Args(), log)
	case "users":
		return runUsers(ctx, cfg, fs.Args(), log)
	default:
		return fmt.Errorf("unknown command %q (serve, migrate, checkconfig, areas, users)", cmd)
	}
}

// scrubbed is an error whose text has had the configured secrets hidden;
// errors.Is still sees the original.
type scrubbed struct {
	msg string
	err error
}

func (e scrubbed) Error() string { return e.msg }
func (e scrubbed) Unwrap() error { return e.err }

// stdout receives checkconfig's output (tests replace it).
var stdout io.Writer = os.Stdout

func newLogger(cfg config.Config) *slog.Logger { return newLoggerTo(cfg, os.Stderr) }

// newLoggerTo writes iocd's log to w, with the configured secrets hidden
// from every string and error attribute (config.Scrub).
func newLoggerTo(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	scrub := cfg.Scrubber()
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindString:
			a.Value = slog.StringValue(scrub.Replace(a.Value.String()))
		case slog.KindAny:
			if err, ok := a.Value.Any().(error); ok {
				a.Value = slog.StringValue(scrub.Replace(err.Error()))
			}
		}
		return a
	}}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
