package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"ioc/auth"
	"ioc/config"
	"ioc/streams"
)

// setupStreams builds the websocket gateway at /ws over the alert engine's
// incident events, the devices table, the unit registry and the security
// layer; with redis_url set, device and unit updates fan out between
// instances through Redis.
func setupStreams(cfg config.Config, a *app) error {
	var broker streams.Broker = streams.NewMemoryBroker()
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("streams: redis url: %w", err)
		}
		rdb := redis.NewClient(opt)
		a.closers = append(a.closers, func() { rdb.Close() })
		broker = streams.NewRedisBroker(rdb, a.log.With("part", "streams"))
	}
	a.reg.MustRegister(streams.Collectors()...)
	units := a.geo.Units()
	a.streams = streams.New(streams.Config{
		Events: a.alerts.Events(), Store: a.alerts.Store(),
		Devices: a.reader.Devices, DeviceHealth: a.reader.HealthByWard,
		Units: units.List, Unit: units.Get, UnitJSON: a.geo.UnitJSON,
		WardName: a.geo.WardName, KnownWard: a.geo.KnownWard,
		Credential: a.sec.Credential, Recheck: a.sec.Recheck,
		Broker:         broker,
		Heartbeat:      cfg.WSHeartbeat.Std(),
		UpdateInterval: cfg.WSUpdateInterval.Std(),
		QueueBytes:     cfg.WSQueueBytes,
		Log:            a.log.With("part", "streams"),
	})
	a.srv.Handle("GET", "/ws", auth.ActWSSubscribe, a.streams.ServeWS)
	a.runs["streams"] = a.streams.Run
	a.observers = append(a.observers, a.streams.Observe)
	return nil
}
