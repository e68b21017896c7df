package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"ioc/alerts"
	"ioc/config"
	"ioc/geo"
)

// setupAlerts builds the alert engine, registers its routes on a.srv, adds
// its Run to a.runs, its observation hook to a.observers and its
// in-transaction hook for emergency signals to a.inTx.
func setupAlerts(ctx context.Context, cfg config.Config, a *app) error {
	rulesFile := cfg.RulesFile
	if rulesFile == "" {
		if _, err := os.Stat("deploy/rules.json"); err == nil {
			rulesFile = "deploy/rules.json"
		}
	}
	acfg := alerts.Config{
		RulesFile:  rulesFile,
		WebhookURL: cfg.WebhookURL,
		QueueSize:  cfg.AlertQueueSize,
		Geo:        geoAdapter{a.geo},
		Registerer: a.reg,
		Now:        clock(cfg),
	}
	switch {
	case cfg.MQTTSharedGroup != "" && cfg.RedisURL != "":
		// Instances share the subscription: per-device windows live on
		// the one instance that leads (alerts/shared.go).
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("alerts: redis url: %w", err)
		}
		acfg.Redis = redis.NewClient(opt)
		a.closers = append(a.closers, func() { acfg.Redis.Close() })
	case cfg.MQTTSharedGroup != "":
		a.log.Warn("mqtt_shared_group without redis_url: each instance evaluates only the readings it receives, " +
			"so a device's windows (thresholds held, counts, geofence crossings) are split across instances; set redis_url")
	}
	eng, err := alerts.New(ctx, acfg, a.pool, a.log.With("part", "alerts"))
	if err != nil {
		return err
	}
	eng.Register(a.srv, alerts.HTTPOptions{
		NearestUnits: a.geo.WriteNearestUnits,
		UnitVisible:  a.geo.UnitVisible,
		KnownWard:    a.geo.KnownWard,
		// History reads (list, stats, exports, CAP) go through the API's
		// pool, whose statements time out.
		ReadPool: a.apiPool,
		Targets: alerts.ResponseTargets{Acknowledge: cfg.ResponseTargetAcknowledge.Std(),
			Dispatch: cfg.ResponseTargetDispatch.Std(), Resolve: cfg.ResponseTargetResolve.Std()},
	})
	a.runs["alerts"] = eng.Run
	a.alerts = eng
	eng.Events().SetRetention(cfg.EventRetention.Std(), int64(cfg.EventRetentionCount))
	a.observers = append(a.observers, eng.Observe)
	a.inTx = eng.InTx
	return nil
}

// geoAdapter gives the engine what it needs of geo.Service.
type geoAdapter struct{ s *geo.Service }

func (g geoAdapter) Ward(lon, lat float64) (string, bool) { return g.s.Wards().Lookup(lon, lat) }

func (g geoAdapter) WardName(code string) string { return g.s.WardName(code) }

func (g geoAdapter) InFence(tag string, lon, lat float64, t time.Time) bool {
	var buf [8]*geo.Geofence
	for _, f := range g.s.Geofences().ActiveContaining(buf[:0], lon, lat, t) {
		for _, x := range f.Tags {
			if x == tag {
				return true
			}
		}
	}
	return false
}
