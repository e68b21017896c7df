package ingest

import (
	"context"
	"fmt"

	"ioc/api"
)

// DeviceFilter selects devices. Zero fields select everything.
type DeviceFilter struct {
	Kind   string    // traffic, camera, emergency, unit, unknown
	Ward   string    // one ward code
	Online string    // "true", "false" or ""
	BBox   []float64 // minLon, minLat, maxLon, maxLat
	// Wards limits the answer to these wards (nil: every ward): the
	// caller's ward scope.
	Wards []string
	Limit int
	// After is the id the previous page ended on (a cursor's content).
	After string
}

// Devices returns the devices matching f in id order, at most f.Limit,
// and whether more follow. The devices route, the OGC API and the
// websocket snapshots call it, so they select alike.
func (rd *Reader) Devices(ctx context.Context, f DeviceFilter) ([]Device, bool, error) {
	rows, err := rd.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices
		WHERE ($1 = '' OR kind = $1)
		  AND ($2 = '' OR ward_code = $2)
		  AND ($3 = '' OR online = ($3 = 'true'))
		  AND ($4::float8[] IS NULL OR geom && ST_MakeEnvelope($4[1], $4[2], $4[3], $4[4], 4326))
		  AND ($5::text[] IS NULL OR ward_code = ANY($5))
		  AND id > $6
		ORDER BY id LIMIT $7`, f.Kind, f.Ward, f.Online, f.BBox, f.Wards, f.After, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list devices: %w", err)
	}
	items, err := collect(rows, rd.scanDevice)
	if err != nil {
		return nil, false, fmt.Errorf("list devices: %w", err)
	}
	if len(items) > f.Limit {
		return items[:f.Limit], true, nil
	}
	return items, false, nil
}

// devicesPage is the list route's answer for f.
func devicesPage(items []Device, more bool) api.List[Device] {
	out := api.List[Device]{Items: items}
	if more {
		out.NextCursor = api.EncodeCursor(items[len(items)-1].ID)
	}
	return out
}
