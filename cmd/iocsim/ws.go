package main

import (
	"context"
	"flag"
	"os"
	"time"

	"ioc/sim/wsload"
)

// wsCmd is `iocsim ws`: websocket clients against iocd's /ws while
// emergency signals are published (docs/streams.md, "Measured").
func wsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iocsim ws", flag.ContinueOnError)
	var cfg wsload.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "iocd")
	fs.StringVar(&cfg.User, "user", "admin", "user to sign in as (needs metrics:read for the memory figure)")
	fs.StringVar(&cfg.Pass, "password", os.Getenv("IOC_PASSWORD"), "password (env IOC_PASSWORD)")
	fs.StringVar(&cfg.Broker, "broker", env("IOC_MQTT_URL", "tcp://127.0.0.1:1883"), "MQTT broker iocd ingests from")
	fs.StringVar(&cfg.Prefix, "prefix", env("IOC_MQTT_TOPIC_PREFIX", "city"), "topic prefix iocd ingests")
	fs.IntVar(&cfg.Active, "clients", 1000, "active clients (a mix: ward operators, street maps, city zoom, dispatchers)")
	fs.IntVar(&cfg.Idle, "idle", 0, "idle clients connected first, for the memory per connection")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "publishing time")
	fs.IntVar(&cfg.Dialers, "dialers", 16, "connections opened at once")
	fs.BoolVar(&cfg.Batch, "batch", false, `subscribe with "batch": true (each round of device and unit updates in one frame)`)
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "wait after the idle clients connected before reading iocd's memory")
	hold := fs.Duration("hold", 0, "keep the idle clients connected this long after the report")
	fs.Float64Var(&cfg.SignalRate, "signal-rate", 2, "emergency signals per second, each opening an incident")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Hold = *hold > 0
	rep, err := wsload.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	rep.WriteText(os.Stdout)
	if rep.Release != nil {
		select {
		case <-time.After(*hold):
		case <-ctx.Done():
		}
		rep.Release()
	}
	return nil
}
