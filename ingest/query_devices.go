package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ioc/api"
)

// DeviceFilter selects devices. Zero fields select everything.
type DeviceFilter struct {
	ID     string    // one device
	Kind   string    // traffic, camera, emergency, unit, unknown
	Ward   string    // one ward code
	Online string    // "true", "false" or ""
	BBox   []float64 // minLon, minLat, maxLon, maxLat
	// SeenFrom, SeenTo bound last_seen ([from, to); zero: open).
	SeenFrom, SeenTo time.Time
	// Wards limits the answer to these wards (nil: every ward): the
	// caller's ward scope.
	Wards []string
	// Where adds conditions written by another part (the OGC API's CQL2
	// filter), ANDed with the rest: SQL over devices aliased d, values
	// through arg.
	Where []Condition
	Limit int
	// After is the id the previous page ended on (a cursor's content).
	After string
}

// Condition is one extra condition of a query, as SQL. arg binds a value
// and returns its placeholder; a Condition never writes a value into the
// SQL text itself.
type Condition interface {
	SQL(arg func(any) string) (string, error)
}

// Devices returns the devices matching f in id order, at most f.Limit,
// and whether more follow. The devices route, the OGC API and the
// websocket snapshots call it, so they select alike.
func (rd *Reader) Devices(ctx context.Context, f DeviceFilter) ([]Device, bool, error) {
	args := []any{f.Wards}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{`($1::text[] IS NULL OR d.ward_code = ANY($1))`}
	for _, c := range []struct{ col, v string }{{"id", f.ID}, {"kind", f.Kind}, {"ward_code", f.Ward}} {
		if c.v != "" {
			where = append(where, "d."+c.col+" = "+arg(c.v))
		}
	}
	if f.Online != "" {
		where = append(where, "d.online = "+arg(f.Online == "true"))
	}
	if f.BBox != nil {
		where = append(where, fmt.Sprintf("d.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)", arg(f.BBox[0]), arg(f.BBox[1]), arg(f.BBox[2]), arg(f.BBox[3])))
	}
	if !f.SeenFrom.IsZero() {
		where = append(where, "d.last_seen >= "+arg(f.SeenFrom))
	}
	if !f.SeenTo.IsZero() {
		where = append(where, "d.last_seen < "+arg(f.SeenTo))
	}
	for _, c := range f.Where {
		sql, err := c.SQL(arg)
		if err != nil {
			return nil, false, err
		}
		where = append(where, "("+sql+")")
	}
	if f.After != "" {
		where = append(where, "d.id > "+arg(f.After))
	}
	sql := `SELECT ` + deviceColsAs("d") + ` FROM devices d WHERE ` + strings.Join(where, " AND ") + ` ORDER BY d.id LIMIT ` + arg(f.Limit+1)
	rows, err := rd.pool.Query(ctx, sql, args...)
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

// deviceColsAs is deviceCols over a table alias.
func deviceColsAs(a string) string {
	return a + `.id, ` + a + `.kind, ST_X(` + a + `.geom), ST_Y(` + a + `.geom), ST_X(` + a + `.fixed_geom), ST_Y(` + a + `.fixed_geom), ` +
		a + `.ward_code, ` + a + `.online, ` + a + `.first_seen, ` + a + `.last_seen, ` + a + `.last_ts, ` + a + `.status_ts, ` +
		a + `.interval_s, ` + a + `.registered_at`
}

// devicesPage is the list route's answer for f.
func devicesPage(items []Device, more bool) api.List[Device] {
	out := api.List[Device]{Items: items}
	if more {
		out.NextCursor = api.EncodeCursor(items[len(items)-1].ID)
	}
	return out
}

// DeviceHealth is one ward's count of devices online and offline.
type DeviceHealth struct {
	Online  int `json:"online"`
	Offline int `json:"offline"`
}

// HealthByWard counts the devices online and offline per ward (the
// websocket's wards layer). Devices outside every ward count under "".
func (rd *Reader) HealthByWard(ctx context.Context) (map[string]DeviceHealth, error) {
	rows, err := rd.pool.Query(ctx, `SELECT coalesce(ward_code, ''), count(*) FILTER (WHERE online),
		count(*) FILTER (WHERE NOT online) FROM devices GROUP BY 1`)
	if err != nil {
		return nil, fmt.Errorf("device health by ward: %w", err)
	}
	defer rows.Close()
	out := map[string]DeviceHealth{}
	for rows.Next() {
		var ward string
		var h DeviceHealth
		if err := rows.Scan(&ward, &h.Online, &h.Offline); err != nil {
			return nil, fmt.Errorf("device health by ward: %w", err)
		}
		out[ward] = h
	}
	return out, rows.Err()
}
