package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
	"ioc/auth"
)

// HTTPOptions connects the routes to the rest of the service.
type HTTPOptions struct {
	// NearestUnits answers GET /incidents/{id}/nearest-units for a point,
	// leaving out the units in except: those already on the incident
	// (geo.Service.WriteNearestUnits).
	NearestUnits func(w http.ResponseWriter, r *http.Request, lon, lat float64, kind string, limit int, except []string)
	// UnitVisible, if set, refuses dispatching units nobody has heard of
	// or that are outside the caller's wards (geo.Service.UnitVisible).
	UnitVisible func(c api.Caller, id string) bool
	// KnownWard tells a loaded ward code (geo.Service.KnownWard): a ward
	// parameter or body field naming anything else is a 400 unknown_ward.
	// nil refuses every ward code.
	KnownWard func(code string) bool
	// ReadPool, if set, serves the history reads (list, statistics,
	// exports, CAP): iocd's API pool, whose statements time out, so no
	// analyst's query holds the connections the engine writes with.
	ReadPool *pgxpool.Pool
	// Targets are the response-time targets of GET
	// /stats/response-times; zero fields take DefaultTargets.
	Targets ResponseTargets
	// CAP names the sender of CAP messages; zero: DefaultCAPSender.
	CAP CAPSender
}

// Register adds the incident and rule routes:
//
//	GET  /api/v1/incidents                      incidents:read   ?status=&kind=&severity=&ward=&bbox=&from=&to=&q=&limit=&cursor=
//	POST /api/v1/incidents                      incidents:open
//	GET  /api/v1/incidents/{id}                 incidents:read   with the first page of evidence and timeline
//	GET  /api/v1/incidents/{id}/evidence        incidents:read   ?limit=&cursor=
//	GET  /api/v1/incidents/{id}/timeline        incidents:read   ?limit=&cursor=
//	POST /api/v1/incidents/{id}/ack             incidents:ack       If-Match
//	POST /api/v1/incidents/{id}/dispatch        incidents:dispatch  If-Match {unit_ids}
//	POST /api/v1/incidents/{id}/resolve         incidents:resolve   If-Match {resolution, note}
//	POST /api/v1/incidents/{id}/reopen          incidents:reopen    If-Match
//	POST /api/v1/incidents/{id}/comments        incidents:comment   {text}; If-Match optional
//	GET  /api/v1/incidents/{id}/nearest-units   incidents:read   ?kind=&limit=
//	GET  /api/v1/rules                          rules:read       webhook_url in full for admins only
//	PUT  /api/v1/rules                          rules:write      If-Match optional
//
// and the history routes (docs/history.md), the heavy ones limited per
// caller (api.Server.HandleHeavy):
//
//	GET  /api/v1/incidents.csv                  export:read      the filters of /incidents; audited
//	GET  /api/v1/incidents.geojson              export:read      the filters of /incidents; audited
//	GET  /api/v1/incidents.atom                 export:read      Atom feed of current (unresolved) incidents
//	GET  /api/v1/incidents/{id}.cap             export:read      CAP 1.2 (dispatched by GET /incidents/{id})
//	GET  /api/v1/stats/incidents                stats:read       ?group_by=ward|kind|severity|hour|day + filters
//	GET  /api/v1/stats/response-times           stats:read       ?by=ward|kind + filters
func (e *Engine) Register(srv *api.Server, opts HTTPOptions) {
	h := &handlers{e: e, opts: opts}
	if opts.ReadPool != nil {
		rs := *e.store
		rs.pool = opts.ReadPool
		h.read = &rs
	}
	srv.Handle("GET", "/api/v1/incidents", auth.ActIncidentsRead, h.list)
	srv.Handle("POST", "/api/v1/incidents", auth.ActIncidentsOpen, h.open)
	srv.Handle("GET", "/api/v1/incidents/{id}", auth.ActIncidentsRead, h.get)
	srv.Handle("GET", "/api/v1/incidents/{id}/evidence", auth.ActIncidentsRead, h.evidence)
	srv.Handle("GET", "/api/v1/incidents/{id}/timeline", auth.ActIncidentsRead, h.timeline)
	srv.Handle("POST", "/api/v1/incidents/{id}/ack", auth.ActIncidentsAck, h.act("ack", auth.ActIncidentsAck))
	srv.Handle("POST", "/api/v1/incidents/{id}/dispatch", auth.ActIncidentsDispatch, h.act("dispatch", auth.ActIncidentsDispatch))
	srv.Handle("POST", "/api/v1/incidents/{id}/resolve", auth.ActIncidentsResolve, h.act("resolve", auth.ActIncidentsResolve))
	srv.Handle("POST", "/api/v1/incidents/{id}/reopen", auth.ActIncidentsReopen, h.act("reopen", auth.ActIncidentsReopen))
	srv.Handle("POST", "/api/v1/incidents/{id}/comments", auth.ActIncidentsComment, h.act("comment", auth.ActIncidentsComment))
	srv.Handle("GET", "/api/v1/incidents/{id}/nearest-units", auth.ActIncidentsRead, h.nearest)
	srv.Handle("GET", "/api/v1/rules", auth.ActRulesRead, h.getRules)
	srv.Handle("PUT", "/api/v1/rules", auth.ActRulesWrite, h.putRules)
	srv.HandleHeavy("GET", "/api/v1/incidents.csv", auth.ActExportRead, h.export(func() ExportFormat { return CSVExport{} }, "csv"))
	srv.HandleHeavy("GET", "/api/v1/incidents.geojson", auth.ActExportRead, h.export(func() ExportFormat { return &GeoJSONExport{} }, "geojson"))
	srv.Handle("GET", "/api/v1/incidents.atom", auth.ActExportRead, h.atom)
	srv.HandleHeavy("GET", "/api/v1/stats/incidents", auth.ActStatsRead, h.stats)
	srv.HandleHeavy("GET", "/api/v1/stats/response-times", auth.ActStatsRead, h.responseTimes)
}

type handlers struct {
	e    *Engine
	opts HTTPOptions
	read *Store // nil: the engine's own
}

var statuses = []string{StatusNew, StatusAcknowledged, StatusDispatched, StatusResolved}

// errIfMatchRequired: a state change sent without the version it was decided on.
var errIfMatchRequired = api.NewProblem(http.StatusPreconditionRequired, "if_match_required", "send If-Match with the incident's version")

// bodyProblem is a 400 about one field of a request body.
func bodyProblem(field, problem string) error {
	return api.Problemf(http.StatusBadRequest, "bad_parameter", "%s: %s", field, problem)
}

func (h *handlers) knownWard(code string) bool {
	return h.opts.KnownWard != nil && h.opts.KnownWard(code)
}

// filterParams are the query parameters of every incident query (the
// list, the exports, the statistics).
var filterParams = []string{"status", "kind", "severity", "ward", "bbox", "from", "to", "updated_since", "active", "q"}

// parseFilter reads an incident query's filters from q and applies the
// caller's ward scope: the one place where a request becomes an
// IncidentFilter. A ward filter naming a ward outside the caller's is
// refused (403); without one, the scope restricts the answer.
func (h *handlers) parseFilter(r *http.Request, q *api.Query) (IncidentFilter, error) {
	var first error
	list := func(name string, options []string, known func(string) bool) []string {
		vs, err := splitList(q, name, options, known)
		if err != nil && first == nil {
			first = err
		}
		return vs
	}
	f := IncidentFilter{
		Status:       list("status", statuses, nil),
		Kind:         list("kind", h.e.rules.Load().kinds, nil),
		Severity:     list("severity", severities, nil),
		Ward:         list("ward", nil, h.knownWard),
		BBox:         q.BBox("bbox"),
		From:         q.Time("from"),
		To:           q.Time("to"),
		UpdatedSince: q.Time("updated_since"),
		Active:       q.Enum("active", "true", "false") == "true",
		Text:         q.String("q", 200),
	}
	if err := q.Err(); err != nil {
		return f, err
	}
	if first != nil {
		return f, first
	}
	c := api.CallerFrom(r.Context())
	for _, w := range f.Ward {
		if !c.SeesWard(w) {
			return f, fmt.Errorf("ward %s is outside your wards: %w", w, api.ErrForbidden)
		}
	}
	f.Wards = c.WardFilter()
	return f, f.Validate()
}

// splitList reads a comma-separated list parameter; each value must be one
// of options (or pass known).
func splitList(q *api.Query, name string, options []string, known func(string) bool) ([]string, error) {
	s := q.String(name, 2048)
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxValues {
		return nil, &api.ParamError{Name: name, Problem: fmt.Sprintf("at most %d values", maxValues)}
	}
	var out []string
	for _, v := range parts {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return nil, &api.ParamError{Name: name, Problem: "an empty value in the list"}
		case known != nil && !known(v):
			return nil, &api.ParamError{Name: name, Code: "unknown_ward",
				Problem: fmt.Sprintf("%q is not a ward code (5 digits, see GET /api/v1/wards)", api.Clip(v))}
		case known == nil && !slices.Contains(options, v):
			return nil, &api.ParamError{Name: name, Problem: fmt.Sprintf("want one or more of %s (comma-separated), got %q", strings.Join(options, ", "), api.Clip(v))}
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// reader is the store history reads go through (HTTPOptions.ReadPool).
func (h *handlers) reader() *Store {
	if h.read != nil {
		return h.read
	}
	return h.e.store
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, slices.Concat(filterParams, []string{"limit", "cursor"})...)
	f, err := h.parseFilter(r, q)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	f.Limit = q.Int("limit", DefaultListLimit, 1, MaxListLimit)
	f.Cursor = q.String("cursor", 1024)
	if api.BadParam(w, q.Err()) {
		return
	}
	items, next, err := h.reader().List(r.Context(), f)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, api.List[*Incident]{Items: items, NextCursor: next})
}

// visible fetches the incident and hides it (not found) outside the
// caller's wards.
func (h *handlers) visible(r *http.Request, details bool) (*Incident, error) {
	return h.visibleID(r, r.PathValue("id"), details)
}

func (h *handlers) visibleID(r *http.Request, id string, details bool) (*Incident, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	x, err := h.e.store.get(r.Context(), h.e.pool, id, details)
	if err != nil {
		return nil, err
	}
	ward := ""
	if x.Ward != nil {
		ward = x.Ward.Code
	}
	if c := api.CallerFrom(r.Context()); c.Scoped() && !c.SeesWard(ward) {
		return nil, ErrNotFound
	}
	return x, nil
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	// Go's mux patterns cannot end a wildcard with a suffix: the CAP
	// document of /incidents/{id}.cap arrives here.
	if id, ok := strings.CutSuffix(r.PathValue("id"), ".cap"); ok {
		h.cap(w, r, id)
		return
	}
	x, err := h.visible(r, true)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.SetETag(w, x.Version)
	api.JSON(w, http.StatusOK, x)
}

// evidence and timeline page through what an incident's own answer only
// begins.
func (h *handlers) evidence(w http.ResponseWriter, r *http.Request) {
	h.page(w, r, func(id string, limit int, cursor string) (any, error) {
		items, next, err := h.e.store.EvidencePage(r.Context(), id, limit, cursor)
		return api.List[Evidence]{Items: items, NextCursor: next}, err
	})
}

func (h *handlers) timeline(w http.ResponseWriter, r *http.Request) {
	h.page(w, r, func(id string, limit int, cursor string) (any, error) {
		items, next, err := h.e.store.TimelinePage(r.Context(), id, limit, cursor)
		return api.List[TimelineEntry]{Items: items, NextCursor: next}, err
	})
}

func (h *handlers) page(w http.ResponseWriter, r *http.Request, read func(id string, limit int, cursor string) (any, error)) {
	q := api.NewQuery(r, "limit", "cursor")
	limit := q.Int("limit", detailPage, 1, 1000)
	cursor := q.String("cursor", 1024)
	if api.BadParam(w, q.Err()) {
		return
	}
	x, err := h.visible(r, false)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	out, err := read(x.ID, limit, cursor)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, out)
}

func (h *handlers) nearest(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "kind", "limit")
	kind := q.Enum("kind", "police", "fire", "ambulance", "rescue", "traffic_police")
	limit := q.Int("limit", 5, 1, 50)
	if api.BadParam(w, q.Err()) {
		return
	}
	x, err := h.visible(r, false)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	if h.opts.NearestUnits == nil {
		api.JSON(w, http.StatusOK, api.List[any]{Items: []any{}})
		return
	}
	h.opts.NearestUnits(w, r, x.Location.Coordinates[0], x.Location.Coordinates[1], kind, limit, x.Units)
}

func (h *handlers) act(action, auditAction string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		x, err := h.change(r, action, auditAction)
		if err != nil {
			api.Fail(w, r, err)
			return
		}
		api.SetETag(w, x.Version)
		api.JSON(w, http.StatusOK, x)
	}
}

// change parses and applies a person's action on an incident.
func (h *handlers) change(r *http.Request, action, auditAction string) (*Incident, error) {
	if err := api.NewQuery(r).Err(); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if !validID(id) {
		return nil, ErrNotFound
	}
	var body struct {
		UnitIDs    []string `json:"unit_ids"`
		Resolution string   `json:"resolution"`
		Note       string   `json:"note"`
		Text       string   `json:"text"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	version, err := api.IfMatch(r)
	if err != nil {
		return nil, err
	}
	if version == 0 && action != "comment" {
		return nil, errIfMatchRequired
	}
	c := api.CallerFrom(r.Context())
	ch := Change{Action: action, Actor: c.Name, IfVersion: version, Visible: func(ward string) bool {
		return !c.Scoped() || (ward != "" && c.SeesWard(ward))
	}}
	switch action {
	case "dispatch":
		if len(body.UnitIDs) == 0 || len(body.UnitIDs) > 50 {
			return nil, bodyProblem("unit_ids", "want 1 to 50 unit ids")
		}
		for _, u := range body.UnitIDs {
			if !validID(u) {
				return nil, bodyProblem("unit_ids", fmt.Sprintf("%q is not a unit id", api.Clip(u)))
			}
			if h.opts.UnitVisible != nil && !h.opts.UnitVisible(api.CallerFrom(r.Context()), u) {
				return nil, api.Problemf(http.StatusUnprocessableEntity, "unknown_unit", "no unit %q has reported in your wards", api.Clip(u))
			}
		}
		ch.UnitIDs = body.UnitIDs
	case "resolve":
		if !slices.Contains(resolutions, body.Resolution) {
			return nil, bodyProblem("resolution", "want one of "+strings.Join(resolutions, ", "))
		}
		if len(body.Note) > 2000 || !utf8.ValidString(body.Note) {
			return nil, bodyProblem("note", "at most 2000 bytes of UTF-8")
		}
		ch.Resolution, ch.Note = body.Resolution, body.Note
	case "comment":
		if strings.TrimSpace(body.Text) == "" || len(body.Text) > 4000 || !utf8.ValidString(body.Text) {
			return nil, bodyProblem("text", "want 1 to 4000 bytes of UTF-8")
		}
		ch.Text = body.Text
	}
	if (action == "ack" || action == "reopen") && (body.UnitIDs != nil || body.Resolution != "" || body.Text != "") {
		return nil, bodyProblem("body", "this action takes no fields")
	}
	ch.Audit = func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error {
		return h.e.audit.RecordTx(ctx, tx, auth.EntryFrom(r, auditAction, "incident/"+id, detail))
	}
	return h.e.store.Act(r.Context(), id, ch)
}

func (h *handlers) open(w http.ResponseWriter, r *http.Request) {
	x, err := h.openIncident(r)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/incidents/"+x.ID)
	api.SetETag(w, x.Version)
	api.JSON(w, http.StatusCreated, x)
}

func (h *handlers) openIncident(r *http.Request) (*Incident, error) {
	if err := api.NewQuery(r).Err(); err != nil {
		return nil, err
	}
	var body struct {
		Kind     string `json:"kind"`
		Severity string `json:"severity"`
		Title    string `json:"title"`
		Note     string `json:"note"`
		Location *Point `json:"location"`
		// Ward, optional, names the ward when the location is outside
		// every ward's outline; else it must be the location's.
		Ward string `json:"ward"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	kinds := h.e.rules.Load().kinds
	switch {
	case !slices.Contains(kinds, body.Kind):
		return nil, bodyProblem("kind", fmt.Sprintf("want one of %s, got %q", strings.Join(kinds, ", "), api.Clip(body.Kind)))
	case sevRank(body.Severity) < 0:
		return nil, bodyProblem("severity", "want one of "+strings.Join(severities, ", "))
	case body.Location == nil || body.Location.Type != "Point":
		return nil, bodyProblem("location", `want a GeoJSON Point {"type":"Point","coordinates":[lon,lat]}`)
	case len(body.Title) > 200 || !utf8.ValidString(body.Title):
		return nil, bodyProblem("title", "at most 200 bytes of UTF-8")
	case len(body.Note) > 2000 || !utf8.ValidString(body.Note):
		return nil, bodyProblem("note", "at most 2000 bytes of UTF-8")
	case body.Ward != "" && !h.knownWard(body.Ward):
		return nil, &api.ParamError{Name: "ward", Code: "unknown_ward",
			Problem: fmt.Sprintf("%q is not a ward code (5 digits, see GET /api/v1/wards)", api.Clip(body.Ward))}
	}
	lon, lat := body.Location.Coordinates[0], body.Location.Coordinates[1]
	if math.IsNaN(lon) || math.IsNaN(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90 || (lon == 0 && lat == 0) {
		return nil, bodyProblem("location", "coordinates out of range")
	}
	m := Manual{Kind: body.Kind, Severity: body.Severity, Title: body.Title, Note: body.Note, Lon: lon, Lat: lat}
	if h.e.cfg.Geo != nil {
		m.Ward, _ = h.e.cfg.Geo.Ward(lon, lat)
	}
	switch {
	case body.Ward != "" && m.Ward != "" && body.Ward != m.Ward:
		return nil, bodyProblem("ward", fmt.Sprintf("the location is in ward %s, not %s", m.Ward, body.Ward))
	case body.Ward != "":
		m.Ward = body.Ward
	}
	c := api.CallerFrom(r.Context())
	if c.Scoped() && (m.Ward == "" || !c.SeesWard(m.Ward)) {
		return nil, fmt.Errorf("the location is outside your wards: %w", api.ErrForbidden)
	}
	return h.e.store.Open(r.Context(), m, c.Name, func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error {
		return h.e.audit.RecordTx(ctx, tx, auth.EntryFrom(r, auth.ActIncidentsOpen, "incident/"+id, detail))
	})
}

func (h *handlers) getRules(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	raw, version := h.e.RulesDocument()
	if api.CallerFrom(r.Context()).Role != auth.RoleAdmin {
		raw = redactWebhook(raw)
	}
	api.SetETag(w, version)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// redactWebhook hides the secret parts of the rule set's notify.webhook_url
// (credentials, path, query: webhook tokens live there) from those who
// may not change it: they see the scheme and host only.
func redactWebhook(raw json.RawMessage) json.RawMessage {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil || doc["notify"] == nil {
		return raw
	}
	var notify map[string]json.RawMessage
	if json.Unmarshal(doc["notify"], &notify) != nil || notify["webhook_url"] == nil {
		return raw
	}
	var s string
	json.Unmarshal(notify["webhook_url"], &s)
	if s == "" {
		return raw
	}
	shown := "(redacted)"
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		shown = u.Scheme + "://" + u.Host + "/(redacted)"
	}
	notify["webhook_url"], _ = json.Marshal(shown)
	doc["notify"], _ = json.Marshal(notify)
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}

func (h *handlers) putRules(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRulesBytes+1))
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	version, err := api.IfMatch(r)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	v, err := h.e.SetRules(r.Context(), b, version, api.CallerFrom(r.Context()).Name, func(ctx context.Context, tx pgx.Tx, v int64) error {
		return h.e.audit.RecordTx(ctx, tx, auth.EntryFrom(r, auth.ActRulesWrite, "rules", map[string]any{"version": v, "bytes": len(b)}))
	})
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		var body struct {
			api.ErrorBody
			Problems []RuleError `json:"problems"`
		}
		body.Error.Code = "invalid_rules"
		body.Error.Message = "rule set refused, the running set stays: " + ve.Error()
		body.Problems = ve.Problems
		api.JSON(w, http.StatusUnprocessableEntity, body)
		return
	case err != nil:
		api.Fail(w, r, err)
		return
	}
	raw, _ := h.e.RulesDocument()
	api.SetETag(w, v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// History routes: exports, CAP, statistics.

// exportWriteWindow bounds each page's write to the client, and
// exportPageTimeout each page's query: an export of a year outlives the
// request deadline page by page, while a stalled client or a stuck query
// costs one window.
const (
	exportWriteWindow = 30 * time.Second
	exportPageTimeout = 30 * time.Second
)

func (h *handlers) export(format func() ExportFormat, ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := api.NewQuery(r, filterParams...)
		f, err := h.parseFilter(r, q)
		if err != nil {
			api.Fail(w, r, err)
			return
		}
		entry := auth.EntryFrom(r, auth.ActExportRead, "incidents."+ext, map[string]any{"query": api.ClipN(r.URL.RawQuery, 2048)})
		if err := h.e.audit.Record(r.Context(), entry); err != nil {
			api.Fail(w, r, fmt.Errorf("export: %w", err))
			return
		}
		// Pages run without the request's deadline but stop when the
		// client goes away.
		base, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		defer cancel()
		stop := context.AfterFunc(r.Context(), func() {
			if !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
				cancel()
			}
		})
		defer stop()
		pageCtx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(base, exportPageTimeout) }

		fm := format()
		rc := http.NewResponseController(w)
		started := false
		n, err := h.reader().Export(pageCtx, f, func(items []*Incident) error {
			if !started {
				started = true
				w.Header().Set("Content-Type", fm.ContentType())
				w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="incidents-%s.%s"`,
					time.Now().In(hanoi).Format("20060102-1504"), ext))
				w.WriteHeader(http.StatusOK)
				if err := fm.Begin(w); err != nil {
					return err
				}
			}
			if err := rc.SetWriteDeadline(time.Now().Add(exportWriteWindow)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			if err := fm.Page(w, items); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			return nil
		})
		if err == nil {
			err = fm.End(w)
		}
		if err != nil {
			if !started {
				api.Fail(w, r, err)
				return
			}
			// Half an export is sent: end the response without its
			// closing chunk, so the client sees it broken, not short.
			h.e.log.Warn("export cut", "format", ext, "rows", n, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

func (h *handlers) capSender() CAPSender {
	if h.opts.CAP.Sender != "" {
		return h.opts.CAP
	}
	return DefaultCAPSender
}

// cap answers one incident as CAP 1.2 XML.
func (h *handlers) cap(w http.ResponseWriter, r *http.Request, id string) {
	if c := api.CallerFrom(r.Context()); !(auth.Policy{}).Allow(c, auth.ActExportRead) {
		api.Fail(w, r, fmt.Errorf("role %s may not %s: %w", c.Role, auth.ActExportRead, api.ErrForbidden))
		return
	}
	x, err := h.visibleID(r, id, false)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := WriteCAP(&buf, x, h.capSender()); err != nil {
		api.Fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/cap+xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// atom answers the Atom feed of current incidents (not resolved, newest
// first, at most MaxListLimit), each entry linking to its CAP message.
func (h *handlers) atom(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, filterParams...)
	f, err := h.parseFilter(r, q)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	f.Active, f.Limit = true, MaxListLimit
	items, _, err := h.reader().List(r.Context(), f)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := WriteCAPFeed(&buf, items, h.capSender(), requestBase(r)+"/api/v1", h.e.store.now()); err != nil {
		api.Fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// requestBase is scheme://host of the request, for absolute links.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *handlers) stats(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, slices.Concat(filterParams, []string{"group_by"})...)
	by := q.Enum("group_by", StatsGroups...)
	f, err := h.parseFilter(r, q)
	if err == nil && by == "" {
		err = &api.ParamError{Name: "group_by", Problem: "required: one of " + strings.Join(StatsGroups, ", ")}
	}
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	out, err := h.reader().IncidentStats(r.Context(), f, by)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, out)
}

func (h *handlers) responseTimes(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, slices.Concat(filterParams, []string{"by"})...)
	by := q.Enum("by", "ward", "kind")
	f, err := h.parseFilter(r, q)
	if err == nil && by == "" {
		by = "ward"
	}
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	out, err := h.reader().ResponseTimes(r.Context(), f, by, h.opts.Targets)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, out)
}
