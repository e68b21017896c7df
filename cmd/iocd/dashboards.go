package main

import (
	"ioc/dashboards"
)

// setupDashboards serves the control-room web app at / (public: the page
// holds no data; the API and /ws it calls enforce roles and wards).
func setupDashboards(a *app) error {
	cfg := a.cfg
	d, err := dashboards.New(dashboards.Config{
		TileURL: cfg.DashboardTileURL, TileAttribution: cfg.DashboardTileAttribution,
		AckTarget: cfg.DashboardAckTarget.Std(), DispatchTarget: cfg.DashboardDispatchTarget.Std(),
		Locale: cfg.DashboardLocale,
	}, a.log.With("part", "dashboards"))
	if err != nil {
		return err
	}
	d.Register(a.srv)
	return nil
}
