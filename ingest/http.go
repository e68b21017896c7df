package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
)

// Reader serves ingest's read routes (CONTRACT section 3):
//
//	GET /api/v1/devices                     devices:read    ?kind=&ward=&online=&bbox=&near=lon,lat&radius_m=&limit=&cursor=
//	GET /api/v1/devices/{id}                devices:read
//	GET /api/v1/devices/{id}/telemetry      telemetry:read  ?from=&to=[&bucket=5m]&limit=&cursor=
//	GET /api/v1/ingest/rejects              rejects:read    ?reason=&device=&from=&to=&limit=&cursor=
//	POST   /api/v1/devices                  devices:write   register a device {"id","kind"[,"fixed_location"]}
//	DELETE /api/v1/devices/{id}             devices:write   remove its registration
//
// Every query applies the caller's ward scope.
type Reader struct {
	// Registry, if set, hears of registrations made here at once
	// (the Ingester; other instances read them within a minute).
	Registry interface {
		Enroll(id string, on bool, fixed *[2]float64)
	}
	pool     *pgxpool.Pool
	log      *slog.Logger
	wardName func(code string) string // may be nil
	now      func() time.Time
}

// NewReader makes the read API. wardName turns a ward code into its name.
func NewReader(pool *pgxpool.Pool, wardName func(string) string, log *slog.Logger) *Reader {
	return &Reader{pool: pool, log: log, wardName: wardName, now: time.Now}
}

// Register adds the routes to srv.
func (rd *Reader) Register(srv *api.Server) {
	srv.Handle("GET", "/api/v1/devices", "devices:read", rd.listDevices)
	srv.Handle("GET", "/api/v1/devices/{id}", "devices:read", rd.getDevice)
	srv.Handle("GET", "/api/v1/devices/{id}/telemetry", "telemetry:read", rd.telemetry)
	srv.Handle("GET", "/api/v1/ingest/rejects", "rejects:read", rd.rejects)
	srv.Handle("POST", "/api/v1/devices", "devices:write", rd.registerDevice)
	srv.Handle("DELETE", "/api/v1/devices/{id}", "devices:write", rd.unregisterDevice)
}

// deviceRegistration is the body of POST /api/v1/devices.
type deviceRegistration struct {
	ID            string `json:"id"`
	Kind          string `json:"kind"`
	FixedLocation *point `json:"fixed_location"`
}

var errDeviceBody = api.NewProblem(http.StatusBadRequest, "bad_request", "bad device registration")

// registerDevice registers a device (require_registered_devices admits
// only these), creating its row or marking an existing one. A fixed
// location lets its readings omit lat/lon. 201 with the device.
func (rd *Reader) registerDevice(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	var in deviceRegistration
	if err := api.DecodeJSON(r, &in); err != nil {
		api.Fail(w, r, err)
		return
	}
	if !validID(in.ID) {
		api.Fail(w, r, fmt.Errorf("%w: id: want 1-64 of A-Z a-z 0-9 . _ -", errDeviceBody))
		return
	}
	switch Kind(in.Kind) {
	case KindTraffic, KindCamera, KindEmergency, KindUnit:
	default:
		api.Fail(w, r, fmt.Errorf("%w: kind: want traffic, camera, emergency or unit", errDeviceBody))
		return
	}
	var fixed *[2]float64
	if f := in.FixedLocation; f != nil {
		c := f.Coordinates
		if f.Type != "Point" || c[0] < -180 || c[0] > 180 || c[1] < -90 || c[1] > 90 || (c[0] == 0 && c[1] == 0) {
			api.Fail(w, r, fmt.Errorf("%w: fixed_location: want a GeoJSON Point [lon, lat]", errDeviceBody))
			return
		}
		fixed = &c
	}
	var lon, lat *float64
	if fixed != nil {
		lon, lat = &fixed[0], &fixed[1]
	}
	d, err := rd.scanDevice(rd.pool.QueryRow(r.Context(), `
		INSERT INTO devices AS d (id, kind, fixed_geom, first_seen, last_seen, online, registered_at)
		VALUES ($1, $2, CASE WHEN $3::float8 IS NOT NULL THEN ST_SetSRID(ST_MakePoint($3, $4), 4326) END, now(), now(), false, now())
		ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind,
		  fixed_geom = coalesce(EXCLUDED.fixed_geom, d.fixed_geom),
		  registered_at = coalesce(d.registered_at, EXCLUDED.registered_at)
		RETURNING `+deviceCols, in.ID, in.Kind, lon, lat))
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	if rd.Registry != nil {
		var at *[2]float64
		if d.FixedLocation != nil {
			at = &d.FixedLocation.Coordinates
		}
		rd.Registry.Enroll(d.ID, true, at)
	}
	api.JSON(w, http.StatusCreated, d)
}

// unregisterDevice removes a device's registration (its row and history
// stay); with require_registered_devices on, its messages are then
// rejected as unknown_device. 204.
func (rd *Reader) unregisterDevice(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		api.Fail(w, r, fmt.Errorf("%w: id: want 1-64 of A-Z a-z 0-9 . _ -", errDeviceBody))
		return
	}
	tag, err := rd.pool.Exec(r.Context(), `UPDATE devices SET registered_at = NULL WHERE id = $1 AND registered_at IS NOT NULL`, id)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		api.Fail(w, r, fmt.Errorf("%w: no registered device %s", api.ErrNotFound, id))
		return
	}
	if rd.Registry != nil {
		rd.Registry.Enroll(id, false, nil)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Paging and span caps keep one request from reading the whole history.
const (
	maxPage     = 1000
	defaultPage = 100
	maxSpan     = 31 * 24 * time.Hour
)

type wardRef struct {
	Code string `json:"code"`
	Name string `json:"name,omitempty"`
}

type point struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

// Device is the API's view of a registered device.
type Device struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	Location      *point     `json:"location"`
	FixedLocation *point     `json:"fixed_location,omitempty"`
	Ward          *wardRef   `json:"ward"`
	Online        bool       `json:"online"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	LastTS        *time.Time `json:"last_ts,omitempty"`
	StatusTS      *time.Time `json:"status_ts,omitempty"`
	IntervalS     *int32     `json:"interval_s,omitempty"`
	// RegisteredAt: when an admin registered the device (POST
	// /api/v1/devices); absent for devices ingest met on its own.
	RegisteredAt *time.Time `json:"registered_at,omitempty"`
	// DistanceM and SnapshotURL only in an answer to near=: metres from
	// the point, and a camera's latest snapshot (DeviceFilter.Near).
	DistanceM   *float64 `json:"distance_m,omitempty"`
	SnapshotURL string   `json:"snapshot_url,omitempty"`
}

const deviceCols = `id, kind, ST_X(geom), ST_Y(geom), ST_X(fixed_geom), ST_Y(fixed_geom), ward_code, online,
	first_seen, last_seen, last_ts, status_ts, interval_s, registered_at`

// scanDevice reads deviceCols and then extra columns into extra.
func (rd *Reader) scanDevice(row pgx.Row, extra ...any) (Device, error) {
	var d Device
	var lon, lat, flon, flat *float64
	var ward *string
	err := row.Scan(append([]any{&d.ID, &d.Kind, &lon, &lat, &flon, &flat, &ward, &d.Online, &d.FirstSeen, &d.LastSeen,
		&d.LastTS, &d.StatusTS, &d.IntervalS, &d.RegisteredAt}, extra...)...)
	if lon != nil && lat != nil {
		d.Location = &point{"Point", [2]float64{*lon, *lat}}
	}
	if flon != nil && flat != nil {
		d.FixedLocation = &point{"Point", [2]float64{*flon, *flat}}
	}
	if ward != nil {
		d.Ward = rd.ward(*ward)
	}
	return d, err
}

func (rd *Reader) ward(code string) *wardRef {
	w := &wardRef{Code: code}
	if rd.wardName != nil {
		w.Name = rd.wardName(code)
	}
	return w
}

// Radius of GET /api/v1/devices?near=: the default and the cap (a wider
// circle is a bbox query, not "what is near the incident").
const (
	defaultNearRadiusM = 500
	maxNearRadiusM     = 5000
)

func (rd *Reader) listDevices(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "kind", "ward", "online", "bbox", "near", "radius_m", "limit", "cursor")
	kind := q.Enum("kind", "traffic", "camera", "emergency", "unit", "unknown")
	ward := q.String("ward", 16)
	online := q.Enum("online", "true", "false")
	bbox := q.BBox("bbox")
	nearS := q.String("near", 64)
	radius := q.Int("radius_m", defaultNearRadiusM, 1, maxNearRadiusM)
	limit := q.Int("limit", defaultPage, 1, maxPage)
	var after string
	hasCursor := q.Cursor("cursor", &after)
	if api.BadParam(w, q.Err()) {
		return
	}
	near, err := parseNear(nearS, r.URL.Query().Has("radius_m"), hasCursor)
	if err != nil {
		api.Error(w, http.StatusBadRequest, "bad_parameter", err.Error())
		return
	}
	c := api.CallerFrom(r.Context())
	if api.ForbidWard(w, c, ward) {
		return
	}
	items, more, err := rd.Devices(r.Context(), DeviceFilter{Kind: kind, Ward: ward, Online: online, BBox: bbox,
		Near: near, RadiusM: float64(radius), Wards: c.WardFilter(), Limit: limit, After: after})
	if err != nil {
		api.Internal(w, rd.log, r, err)
		return
	}
	if near != nil {
		more = false // nearest first: the limit is the answer, there is no next page
	}
	api.JSON(w, http.StatusOK, devicesPage(items, more))
}

// parseNear reads near=lon,lat (nil when absent). radius_m means nothing
// without it, and a cursor pages by id, which a nearest-first list is not.
func parseNear(s string, hasRadius, hasCursor bool) (*[2]float64, error) {
	if s == "" {
		if hasRadius {
			return nil, errors.New("radius_m: only with near")
		}
		return nil, nil
	}
	if hasCursor {
		return nil, errors.New("cursor: not with near (the answer is the nearest, up to limit)")
	}
	lonS, latS, ok := strings.Cut(s, ",")
	lon, err1 := strconv.ParseFloat(strings.TrimSpace(lonS), 64)
	lat, err2 := strconv.ParseFloat(strings.TrimSpace(latS), 64)
	if !ok || err1 != nil || err2 != nil || math.IsNaN(lon) || math.IsNaN(lat) || math.Abs(lon) > 180 || math.Abs(lat) > 90 {
		return nil, errors.New("near: want lon,lat in degrees")
	}
	return &[2]float64{lon, lat}, nil
}

func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	items := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
	return items, rows.Err()
}

// device loads one device the caller may see, answering 400/403/404 itself.
func (rd *Reader) device(w http.ResponseWriter, r *http.Request) (Device, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		api.Error(w, http.StatusBadRequest, "bad_parameter", "id: want 1-64 of A-Z a-z 0-9 . _ -")
		return Device{}, false
	}
	d, err := rd.scanDevice(rd.pool.QueryRow(r.Context(), `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		api.NotFound(w, "device "+id)
		return d, false
	}
	if err != nil {
		api.Internal(w, rd.log, r, err)
		return d, false
	}
	c := api.CallerFrom(r.Context())
	if c.Scoped() && (d.Ward == nil || !c.SeesWard(d.Ward.Code)) {
		api.Error(w, http.StatusForbidden, "forbidden", "device "+id+" is outside your wards")
		return d, false
	}
	return d, true
}

func (rd *Reader) getDevice(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	if d, ok := rd.device(w, r); ok {
		api.JSON(w, http.StatusOK, d)
	}
}

// telemetrySQL per device kind: its table and the raw columns.
var telemetrySQL = map[string]struct{ table, raw string }{
	"traffic":   {"traffic_readings", `'speed_kmh', speed_kmh, 'volume', volume, 'occupancy', occupancy, 'interval_s', interval_s, 'lane', lane, 'heading_deg', heading_deg`},
	"camera":    {"camera_events", `'event', event, 'confidence', confidence, 'count', count, 'snapshot_url', snapshot_url, 'zone', zone`},
	"emergency": {"emergency_signals", `'type', type, 'priority', priority, 'channel', channel, 'note', note, 'caller_ref', caller_ref`},
	"unit":      {"unit_positions", `'kind', kind, 'status', status, 'speed_kmh', speed_kmh, 'heading_deg', heading_deg`},
}

// telemetry: GET /api/v1/devices/{id}/telemetry?from=&to=[&bucket=5m|1h|1d]&limit=&cursor=
// (Reader.Telemetry does the work).
func (rd *Reader) telemetry(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "from", "to", "bucket", "limit", "cursor")
	from, to := q.Time("from"), q.Time("to")
	bucket := q.Enum("bucket", "5m", "1h", "1d")
	limit := q.Int("limit", 500, 1, 5000)
	var after TelemetryCursor
	hasCursor := q.Cursor("cursor", &after)
	if api.BadParam(w, q.Err()) {
		return
	}
	if to.IsZero() {
		to = rd.now()
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		api.Error(w, http.StatusBadRequest, "bad_parameter", "from must be before to")
		return
	}
	if span := telemetrySpan[bucket]; to.Sub(from) > span {
		what := "raw readings"
		if bucket != "" {
			what = "bucket=" + bucket
		}
		api.Error(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("from..to spans more than %d days (the cap for %s)", int(span.Hours()/24), what))
		return
	}
	d, ok := rd.device(w, r)
	if !ok {
		return
	}
	tq := TelemetryQuery{DeviceID: d.ID, Kind: d.Kind, From: from, To: to, Bucket: bucket, Limit: limit,
		Wards: api.CallerFrom(r.Context()).WardFilter()}
	if hasCursor {
		tq.After = &after
	}
	page, err := rd.Telemetry(r.Context(), tq)
	if err != nil {
		api.Internal(w, rd.log, r, err)
		return
	}
	out := api.List[json.RawMessage]{Items: page.Items}
	if page.Next != nil {
		out.NextCursor = api.EncodeCursor(*page.Next)
	}
	api.JSON(w, http.StatusOK, out)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// RejectView is one stored rejection.
type RejectView struct {
	ID             int64     `json:"id"`
	ReceivedAt     time.Time `json:"received_at"`
	LastReceivedAt time.Time `json:"last_received_at"`
	Deliveries     int       `json:"deliveries"`
	Topic          string    `json:"topic"`
	DeviceID       *string   `json:"device_id"`
	Item           *int      `json:"item,omitempty"`
	Reason         string    `json:"reason"`
	Detail         string    `json:"detail"`
	Payload        *string   `json:"payload,omitempty"`        // as text when valid UTF-8
	PayloadBase64  []byte    `json:"payload_base64,omitempty"` // otherwise the bytes
	PayloadSize    int       `json:"payload_size"`
	Truncated      bool      `json:"truncated"`
}

type rejectKey struct {
	At time.Time `json:"t"`
	ID int64     `json:"i"`
}

func (rd *Reader) rejects(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "reason", "device", "from", "to", "limit", "cursor")
	reason := q.String("reason", 64)
	device := q.String("device", 64)
	from, to := q.Time("from"), q.Time("to")
	limit := q.Int("limit", defaultPage, 1, maxPage)
	var after rejectKey
	hasCursor := q.Cursor("cursor", &after)
	if api.BadParam(w, q.Err()) {
		return
	}
	if device != "" && !validID(device) {
		api.Error(w, http.StatusBadRequest, "bad_parameter", "device: want 1-64 of A-Z a-z 0-9 . _ -")
		return
	}
	if !hasCursor {
		after = rejectKey{At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: 0}
	}
	rows, err := rd.pool.Query(r.Context(), `SELECT id, received_at, last_received_at, greatest(deliveries, 1), topic, device_id, item,
			reason, detail, payload, payload_size
		FROM ingest_rejects
		WHERE ($1 = '' OR reason = $1) AND ($2 = '' OR device_id = $2)
		  AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($4::timestamptz IS NULL OR received_at < $4)
		  AND (received_at, id) < ($5, CASE WHEN $6 THEN $7 ELSE 9223372036854775807 END)
		  AND ($8::text[] IS NULL OR device_id IN (SELECT id FROM devices WHERE ward_code = ANY($8)))
		ORDER BY received_at DESC, id DESC LIMIT $9`,
		reason, device, nullTime(from), nullTime(to), after.At, hasCursor, after.ID, api.CallerFrom(r.Context()).WardFilter(), limit+1)
	if err != nil {
		api.Internal(w, rd.log, r, err)
		return
	}
	items, err := collect(rows, func(row pgx.Row) (RejectView, error) {
		var v RejectView
		var payload []byte
		var item int
		err := row.Scan(&v.ID, &v.ReceivedAt, &v.LastReceivedAt, &v.Deliveries, &v.Topic, &v.DeviceID, &item,
			&v.Reason, &v.Detail, &payload, &v.PayloadSize)
		if item >= 0 {
			v.Item = &item
		}
		if utf8.Valid(payload) {
			s := string(payload)
			v.Payload = &s
		} else {
			v.PayloadBase64 = payload
		}
		v.Truncated = len(payload) < v.PayloadSize
		return v, err
	})
	if err != nil {
		api.Internal(w, rd.log, r, err)
		return
	}
	out := api.List[RejectView]{Items: items}
	if len(items) > limit {
		out.Items = items[:limit]
		last := items[limit-1]
		out.NextCursor = api.EncodeCursor(rejectKey{last.ReceivedAt, last.ID})
	}
	api.JSON(w, http.StatusOK, out)
}
