package main

import (
	"context"
	"os"
	"time"

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
	eng, err := alerts.New(ctx, alerts.Config{
		RulesFile:  rulesFile,
		WebhookURL: cfg.WebhookURL,
		Geo:        geoAdapter{a.geo},
		Registerer: a.reg,
	}, a.pool, a.log.With("part", "alerts"))
	if err != nil {
		return err
	}
	units := a.geo.Units()
	eng.Register(a.srv, alerts.HTTPOptions{
		NearestUnits: a.geo.WriteNearestUnits,
		UnitKnown:    func(id string) bool { _, ok := units.Get(id); return ok },
	})
	a.runs["alerts"] = eng.Run
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
