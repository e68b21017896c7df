package ogc

import (
	"context"
	"time"

	"github.com/twpayne/go-geom"

	"ioc/alerts"
	"ioc/api"
	"ioc/geo"
	"ioc/ingest"
)

// itemsRequest is an items (or one item) request, parsed and checked.
type itemsRequest struct {
	caller api.Caller
	id     string // one item; "" for a page
	// bbox is minLon,minLat,maxLon,maxLat when the bbox came in a
	// geographic CRS; projected bboxes are in where instead.
	bbox     []float64
	from, to time.Time // [from, to), zero: open
	where    []condition
	limit    int
	cursor   string // the source's own cursor
}

// feature is one item, in lon/lat until the response CRS is applied.
type feature struct {
	id    string
	geom  geom.T // nil: no position known
	props map[string]any
}

// page is what a collection's list returns.
type page struct {
	features []feature
	next     string // source cursor of the next page, "" on the last
	matched  int    // -1: not counted
}

// collection is one feature collection: its metadata, what a filter may
// name, and the query behind it.
type collection struct {
	id, title, description string
	queryables             []queryable
	// temporal names the property datetime selects on ("" none).
	temporal string
	// geomColumn is the lon/lat geometry column (for projected bboxes).
	geomColumn string
	geomSchema string // GeoJSON schema of the geometry, for /queryables
	list       func(ctx context.Context, r itemsRequest) (page, error)
}

func conds(cs []condition) []alerts.Condition {
	out := make([]alerts.Condition, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

// idIs selects one row by its key column.
func idIs(column, id string) condition {
	return condition{func(arg func(any) string) (string, error) { return column + " = " + arg(id) + "::text", nil }}
}

var incidentQueryables = []queryable{
	{name: "id", title: "Incident id", typ: typeString, column: "i.id"},
	{name: "kind", title: "Kind", typ: typeString, column: "i.kind"},
	{name: "severity", title: "Severity (CAP 1.2)", typ: typeString, enum: []string{"minor", "moderate", "severe", "extreme"}, column: "i.severity"},
	{name: "status", title: "Status", typ: typeString, enum: []string{"new", "acknowledged", "dispatched", "resolved"}, column: "i.status"},
	{name: "resolution", title: "Resolution", typ: typeString, enum: []string{"handled", "false_alarm", "duplicate"}, column: "i.resolution"},
	{name: "title", title: "Title", typ: typeString, column: "i.title"},
	{name: "ward", title: "Ward code", typ: typeString, column: "i.ward_code"},
	{name: "opened_by", title: "Opened by (user or rule:<id>)", typ: typeString, column: "i.opened_by"},
	{name: "auto_resolve", title: "Resolves itself", typ: typeBoolean, column: "i.auto_resolve"},
	{name: "opened_at", title: "Opened at", typ: typeDateTime, column: "i.opened_at"},
	{name: "updated_at", title: "Updated at", typ: typeDateTime, column: "i.updated_at"},
	{name: "acknowledged_at", title: "Acknowledged at", typ: typeDateTime, column: "i.acknowledged_at"},
	{name: "dispatched_at", title: "Dispatched at", typ: typeDateTime, column: "i.dispatched_at"},
	{name: "resolved_at", title: "Resolved at", typ: typeDateTime, column: "i.resolved_at"},
	{name: "escalation_level", title: "Escalation level", typ: typeInteger, column: "i.escalation_level"},
	{name: "version", title: "Version", typ: typeInteger, column: "i.version"},
}

var deviceQueryables = []queryable{
	{name: "id", title: "Device id", typ: typeString, column: "d.id"},
	{name: "kind", title: "Kind", typ: typeString, enum: []string{"traffic", "camera", "emergency", "unit", "unknown"}, column: "d.kind"},
	{name: "ward", title: "Ward code", typ: typeString, column: "d.ward_code"},
	{name: "online", title: "Online", typ: typeBoolean, column: "d.online"},
	{name: "first_seen", title: "First seen", typ: typeDateTime, column: "d.first_seen"},
	{name: "last_seen", title: "Last message arrived", typ: typeDateTime, column: "d.last_seen"},
	{name: "last_ts", title: "Latest reading's time", typ: typeDateTime, column: "d.last_ts"},
	{name: "interval_s", title: "Reporting interval (s)", typ: typeInteger, column: "d.interval_s"},
	{name: "registered_at", title: "Registered at", typ: typeDateTime, column: "d.registered_at"},
}

var wardQueryables = []queryable{
	{name: "code", title: "Ward code", typ: typeString, column: "a.code"},
	{name: "name", title: "Name (Vietnamese)", typ: typeString, column: "a.name"},
	{name: "name_en", title: "Name (English)", typ: typeString, column: "a.name_en"},
	{name: "kind", title: "Ward or commune", typ: typeString, enum: []string{"ward", "commune"}, column: "a.kind"},
	{name: "population", title: "Population", typ: typeInteger, column: "a.population"},
}

func (s *Service) collections() []*collection {
	return []*collection{
		{
			id: "incidents", title: "Incidents",
			description: "What the operations centre works: one real-world event each, with its state (CONTRACT section 2). datetime selects on opened_at.",
			queryables:  incidentQueryables, temporal: "opened_at", geomColumn: "i.geom",
			geomSchema: "https://geojson.org/schema/Point.json", list: s.listIncidents,
		},
		{
			id: "devices", title: "Devices",
			description: "Sensors, cameras, emergency sources and responder units at their last known position. datetime selects on last_seen.",
			queryables:  deviceQueryables, temporal: "last_seen", geomColumn: "d.geom",
			geomSchema: "https://geojson.org/schema/Point.json", list: s.listDevices,
		},
		{
			id: "wards", title: "Wards and communes",
			description: "Hanoi's 126 wards and communes in force since 2025-07-01. " + geo.Attribution + " (ODbL 1.0).",
			queryables:  wardQueryables, geomColumn: "a.geom",
			geomSchema: "https://geojson.org/schema/MultiPolygon.json", list: s.listWards,
		},
	}
}

func (s *Service) listIncidents(ctx context.Context, r itemsRequest) (page, error) {
	f := alerts.IncidentFilter{BBox: r.bbox, From: r.from, To: r.to, Wards: r.caller.WardFilter(),
		Where: conds(r.where), Limit: r.limit, Cursor: r.cursor}
	if r.id != "" {
		f.Where = append(f.Where, idIs("i.id", r.id))
	}
	items, next, err := s.cfg.Incidents(ctx, f)
	if err != nil {
		return page{}, err
	}
	out := page{features: make([]feature, 0, len(items)), next: next, matched: -1}
	for _, x := range items {
		ward, wardName := "", ""
		if x.Ward != nil {
			ward, wardName = x.Ward.Code, x.Ward.Name
		}
		out.features = append(out.features, feature{
			id:   x.ID,
			geom: geom.NewPointFlat(geom.XY, []float64{x.Location.Coordinates[0], x.Location.Coordinates[1]}),
			props: map[string]any{
				"kind": x.Kind, "severity": x.Severity, "status": x.Status, "resolution": x.Resolution, "title": x.Title,
				"ward": nullable(ward), "ward_name": nullable(wardName), "opened_by": x.OpenedBy, "auto_resolve": x.AutoResolve,
				"opened_at": x.OpenedAt, "updated_at": x.UpdatedAt, "acknowledged_at": x.AcknowledgedAt,
				"dispatched_at": x.DispatchedAt, "resolved_at": x.ResolvedAt, "escalation_level": x.EscalationLevel,
				"units": x.Units, "version": x.Version, "evidence_count": x.EvidenceCount,
			},
		})
	}
	return out, nil
}

func (s *Service) listDevices(ctx context.Context, r itemsRequest) (page, error) {
	f := ingest.DeviceFilter{ID: r.id, BBox: r.bbox, SeenFrom: r.from, SeenTo: r.to, Wards: r.caller.WardFilter(),
		Limit: r.limit}
	if r.cursor != "" {
		if err := api.DecodeCursor(r.cursor, &f.After); err != nil {
			return page{}, &api.ParamError{Name: "cursor", Problem: "not a cursor from a previous page"}
		}
	}
	for _, c := range r.where {
		f.Where = append(f.Where, c)
	}
	items, more, err := s.cfg.Devices(ctx, f)
	if err != nil {
		return page{}, err
	}
	next := ""
	if more {
		next = api.EncodeCursor(items[len(items)-1].ID)
	}
	out := page{features: make([]feature, 0, len(items)), next: next, matched: -1}
	for _, d := range items {
		var g geom.T
		if d.Location != nil {
			g = geom.NewPointFlat(geom.XY, []float64{d.Location.Coordinates[0], d.Location.Coordinates[1]})
		}
		var ward, wardName *string
		if d.Ward != nil {
			ward, wardName = &d.Ward.Code, nullable(d.Ward.Name)
		}
		out.features = append(out.features, feature{id: d.ID, geom: g, props: map[string]any{
			"kind": d.Kind, "ward": ward, "ward_name": wardName, "online": d.Online, "first_seen": d.FirstSeen,
			"last_seen": d.LastSeen, "last_ts": d.LastTS, "status_ts": d.StatusTS, "interval_s": d.IntervalS,
			"registered_at": d.RegisteredAt,
		}})
	}
	return out, nil
}

func (s *Service) listWards(ctx context.Context, r itemsRequest) (page, error) {
	f := geo.AreaFilter{Code: r.id, BBox: r.bbox, Codes: r.caller.WardFilter(), Limit: r.limit, Cursor: r.cursor}
	for _, c := range r.where {
		f.Where = append(f.Where, c)
	}
	p, err := s.cfg.Wards(ctx, f)
	if err != nil {
		return page{}, err
	}
	out := page{features: make([]feature, 0, len(p.Wards)), next: p.Next, matched: p.Matched}
	for _, w := range p.Wards {
		out.features = append(out.features, feature{id: w.Code, geom: w.Geom, props: map[string]any{
			"code": w.Code, "name": w.Name, "name_en": w.NameEn, "kind": w.Kind, "population": w.Population,
		}})
	}
	return out, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
