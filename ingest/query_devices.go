package ingest

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	// Near, if set, keeps the devices within RadiusM metres of this
	// point (lon, lat), nearest first, each with its DistanceM, and
	// cameras with their latest snapshot (see Devices). After is then
	// unused: a nearest-first answer has no id cursor.
	Near    *[2]float64
	RadiusM float64
	Limit   int
	// After is the id the previous page ended on (a cursor's content).
	After string
}

// SnapshotWindow is how far back a near query looks for a camera's latest
// snapshot: an older picture is not worth showing an operator.
const SnapshotWindow = time.Hour

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
	cols, order := deviceColsAs("d"), "d.id"
	if f.Near != nil {
		// On the sphere, as geo's distances are. The && box lets the
		// GiST index on geom find the candidates; a degree of longitude
		// is the shorter one, so the box is padded by it.
		p := fmt.Sprintf("ST_SetSRID(ST_MakePoint(%s, %s), 4326)", arg(f.Near[0]), arg(f.Near[1]))
		pad := f.RadiusM / (111_195 * math.Cos(f.Near[1]*math.Pi/180))
		dist := "ST_Distance(d.geom::geography, " + p + "::geography, false)"
		where = append(where, "d.geom && ST_Expand("+p+", "+arg(pad)+")",
			"ST_DWithin(d.geom::geography, "+p+"::geography, "+arg(f.RadiusM)+", false)")
		cols, order = cols+", "+dist, dist+", d.id"
	} else if f.After != "" {
		where = append(where, "d.id > "+arg(f.After))
	}
	sql := `SELECT ` + cols + ` FROM devices d WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT ` + arg(f.Limit+1)
	rows, err := rd.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list devices: %w", err)
	}
	scan := func(row pgx.Row) (Device, error) { return rd.scanDevice(row) }
	if f.Near != nil {
		scan = func(row pgx.Row) (Device, error) {
			var m float64
			d, err := rd.scanDevice(row, &m)
			m = math.Round(m)
			d.DistanceM = &m
			return d, err
		}
	}
	items, err := collect(rows, scan)
	if err != nil {
		return nil, false, fmt.Errorf("list devices: %w", err)
	}
	more := len(items) > f.Limit
	if more {
		items = items[:f.Limit]
	}
	if f.Near != nil {
		if err := rd.addSnapshots(ctx, items); err != nil {
			return nil, false, err
		}
	}
	return items, more, nil
}

// addSnapshots gives each camera in items the snapshot of its latest event
// within SnapshotWindow, if one had a snapshot: one query for all of them,
// each camera read backwards from its newest row along the primary key
// (device_id, ts, msg_id).
func (rd *Reader) addSnapshots(ctx context.Context, items []Device) error {
	var ids []string
	at := map[string]int{}
	for i, d := range items {
		if d.Kind == "camera" {
			ids = append(ids, d.ID)
			at[d.ID] = i
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := rd.pool.Query(ctx, `
		SELECT DISTINCT ON (device_id) device_id, snapshot_url FROM camera_events
		WHERE device_id = ANY($1) AND ts >= $2 AND snapshot_url IS NOT NULL
		ORDER BY device_id, ts DESC`, ids, rd.now().Add(-SnapshotWindow))
	if err != nil {
		return fmt.Errorf("camera snapshots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, url string
		if err := rows.Scan(&id, &url); err != nil {
			return fmt.Errorf("camera snapshots: %w", err)
		}
		items[at[id]].SnapshotURL = url
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("camera snapshots: %w", err)
	}
	return nil
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
