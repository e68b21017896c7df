package main

import (
	"context"

	"ioc/geo"
	"ioc/geo/ogc"
)

// hanoiExtent is the city outline's lon/lat bounds
// (../shared/data/hanoi/city.geojson), for the collections' extent.
var hanoiExtent = [4]float64{105.288961, 20.564515, 106.020072, 21.385418}

// setupOGC registers OGC API – Features at /ogc over the same query
// functions the JSON API uses: the alert engine's incident list, ingest's
// device list and geo's areas.
func setupOGC(a *app) error {
	svc, err := ogc.New(ogc.Config{
		Incidents: a.alerts.Store().List,
		Devices:   a.reader.Devices,
		Wards: func(ctx context.Context, f geo.AreaFilter) (geo.AreaPage, error) {
			return geo.ListAreas(ctx, a.apiPool, f)
		},
		Pool:       a.apiPool,
		Extent:     hanoiExtent,
		Registerer: a.reg,
	})
	if err != nil {
		return err
	}
	svc.Register(a.srv)
	return nil
}
