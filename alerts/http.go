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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"ioc/api"
	"ioc/auth"
)

// HTTPOptions connects the routes to the rest of the service.
type HTTPOptions struct {
	// NearestUnits answers GET /incidents/{id}/nearest-units for a point
	// (geo.Service.WriteNearestUnits).
	NearestUnits func(w http.ResponseWriter, r *http.Request, lon, lat float64, kind string, limit int)
	// UnitVisible, if set, refuses dispatching units nobody has heard of
	// or that are outside the caller's wards (geo.Service.UnitVisible).
	UnitVisible func(c api.Caller, id string) bool
}

// Register adds the incident and rule routes:
//
//	GET  /api/v1/incidents                      incidents:read   ?status=&kind=&severity=&ward=&bbox=&from=&to=&q=&limit=&cursor=
//	POST /api/v1/incidents                      incidents:open
//	GET  /api/v1/incidents/{id}                 incidents:read   with evidence and timeline
//	POST /api/v1/incidents/{id}/ack             incidents:ack       If-Match
//	POST /api/v1/incidents/{id}/dispatch        incidents:dispatch  If-Match {unit_ids}
//	POST /api/v1/incidents/{id}/resolve         incidents:resolve   If-Match {resolution, note}
//	POST /api/v1/incidents/{id}/reopen          incidents:reopen    If-Match
//	POST /api/v1/incidents/{id}/comments        incidents:comment   {text}; If-Match optional
//	GET  /api/v1/incidents/{id}/nearest-units   incidents:read   ?kind=&limit=
//	GET  /api/v1/rules                          rules:read
//	PUT  /api/v1/rules                          rules:write      If-Match optional
func (e *Engine) Register(srv *api.Server, opts HTTPOptions) {
	h := &handlers{e: e, opts: opts}
	srv.Handle("GET", "/api/v1/incidents", auth.ActIncidentsRead, h.list)
	srv.Handle("POST", "/api/v1/incidents", auth.ActIncidentsOpen, h.open)
	srv.Handle("GET", "/api/v1/incidents/{id}", auth.ActIncidentsRead, h.get)
	srv.Handle("POST", "/api/v1/incidents/{id}/ack", auth.ActIncidentsAck, h.act("ack", auth.ActIncidentsAck))
	srv.Handle("POST", "/api/v1/incidents/{id}/dispatch", auth.ActIncidentsDispatch, h.act("dispatch", auth.ActIncidentsDispatch))
	srv.Handle("POST", "/api/v1/incidents/{id}/resolve", auth.ActIncidentsResolve, h.act("resolve", auth.ActIncidentsResolve))
	srv.Handle("POST", "/api/v1/incidents/{id}/reopen", auth.ActIncidentsReopen, h.act("reopen", auth.ActIncidentsReopen))
	srv.Handle("POST", "/api/v1/incidents/{id}/comments", auth.ActIncidentsComment, h.act("comment", auth.ActIncidentsComment))
	srv.Handle("GET", "/api/v1/incidents/{id}/nearest-units", auth.ActIncidentsRead, h.nearest)
	srv.Handle("GET", "/api/v1/rules", auth.ActRulesRead, h.getRules)
	srv.Handle("PUT", "/api/v1/rules", auth.ActRulesWrite, h.putRules)
}

type handlers struct {
	e    *Engine
	opts HTTPOptions
}

var statuses = []string{StatusNew, StatusAcknowledged, StatusDispatched, StatusResolved}

type listCursor struct {
	T time.Time `json:"t"`
	I string    `json:"i"`
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "status", "kind", "severity", "ward", "bbox", "from", "to", "q", "limit", "cursor")
	status := q.Enum("status", statuses...)
	kind := q.String("kind", 40)
	sev := q.Enum("severity", severities...)
	ward := q.String("ward", 16)
	bbox := q.BBox("bbox")
	from, to := q.Time("from"), q.Time("to")
	text := q.String("q", 200)
	limit := q.Int("limit", 100, 1, 1000)
	var cur listCursor
	hasCur := q.Cursor("cursor", &cur)
	if api.BadParam(w, q.Err()) {
		return
	}
	c := api.CallerFrom(r.Context())
	if api.ForbidWard(w, c, ward) {
		return
	}
	args := []any{c.WardFilter()}
	where := []string{`($1::text[] IS NULL OR i.ward_code = ANY($1))`}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if status != "" {
		add("i.status = ?", status)
	}
	if kind != "" {
		add("i.kind = ?", kind)
	}
	if sev != "" {
		add("i.severity = ?", sev)
	}
	if ward != "" {
		add("i.ward_code = ?", ward)
	}
	if bbox != nil {
		args = append(args, bbox[0], bbox[1], bbox[2], bbox[3])
		n := len(args)
		where = append(where, fmt.Sprintf("i.geom && ST_MakeEnvelope($%d, $%d, $%d, $%d, 4326)", n-3, n-2, n-1, n))
	}
	if !from.IsZero() {
		add("i.opened_at >= ?", from)
	}
	if !to.IsZero() {
		add("i.opened_at < ?", to)
	}
	if text != "" {
		add("(i.title ILIKE '%' || ? || '%' OR i.id = ? OR i.kind = ?)", text)
	}
	if hasCur {
		args = append(args, cur.T, cur.I)
		where = append(where, fmt.Sprintf("(i.opened_at, i.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, limit+1)
	sql := `SELECT ` + incidentCols + ` FROM incidents i WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY i.opened_at DESC, i.id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := h.e.pool.Query(r.Context(), sql, args...)
	if err != nil {
		api.Internal(w, h.e.log, r, err)
		return
	}
	out := api.List[*Incident]{Items: []*Incident{}}
	for rows.Next() {
		x, err := h.e.store.scanIncident(rows)
		if err != nil {
			rows.Close()
			api.Internal(w, h.e.log, r, err)
			return
		}
		out.Items = append(out.Items, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		api.Internal(w, h.e.log, r, err)
		return
	}
	if len(out.Items) > limit {
		out.Items = out.Items[:limit]
		last := out.Items[limit-1]
		out.NextCursor = api.EncodeCursor(listCursor{last.OpenedAt, last.ID})
	}
	api.JSON(w, http.StatusOK, out)
}

// visible fetches the incident and hides it (404) outside the caller's wards.
func (h *handlers) visible(w http.ResponseWriter, r *http.Request, details bool) *Incident {
	id := r.PathValue("id")
	if !validID(id) {
		api.NotFound(w, "incident")
		return nil
	}
	x, err := h.e.store.get(r.Context(), h.e.pool, id, details)
	if errors.Is(err, ErrNotFound) {
		api.NotFound(w, "incident")
		return nil
	}
	if err != nil {
		api.Internal(w, h.e.log, r, err)
		return nil
	}
	ward := ""
	if x.Ward != nil {
		ward = x.Ward.Code
	}
	if c := api.CallerFrom(r.Context()); c.Scoped() && !c.SeesWard(ward) {
		api.NotFound(w, "incident")
		return nil
	}
	return x
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	if x := h.visible(w, r, true); x != nil {
		w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(x.Version, 10)))
		api.JSON(w, http.StatusOK, x)
	}
}

func (h *handlers) nearest(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "kind", "limit")
	kind := q.Enum("kind", "police", "fire", "ambulance", "rescue", "traffic_police")
	limit := q.Int("limit", 5, 1, 50)
	if api.BadParam(w, q.Err()) {
		return
	}
	x := h.visible(w, r, false)
	if x == nil {
		return
	}
	if h.opts.NearestUnits == nil {
		api.JSON(w, http.StatusOK, api.List[any]{Items: []any{}})
		return
	}
	h.opts.NearestUnits(w, r, x.Location.Coordinates[0], x.Location.Coordinates[1], kind, limit)
}

// decodeBody reads a JSON object strictly; an empty body is {}.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	if dec.More() {
		return errors.New("body: trailing data after the JSON object")
	}
	return nil
}

// ifMatch parses If-Match: a version, quoted or not (W/ tolerated).
func ifMatch(r *http.Request) (int64, bool, error) {
	s := strings.TrimSpace(r.Header.Get("If-Match"))
	if s == "" {
		return 0, false, nil
	}
	s = strings.Trim(strings.TrimPrefix(s, "W/"), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, true, errors.New("If-Match: want the incident's version, a positive integer")
	}
	return v, true, nil
}

func (h *handlers) act(action, auditAction string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if api.BadParam(w, api.NewQuery(r).Err()) {
			return
		}
		id := r.PathValue("id")
		if !validID(id) {
			api.NotFound(w, "incident")
			return
		}
		var body struct {
			UnitIDs    []string `json:"unit_ids"`
			Resolution string   `json:"resolution"`
			Note       string   `json:"note"`
			Text       string   `json:"text"`
		}
		if err := decodeBody(r, &body); err != nil {
			api.Error(w, http.StatusBadRequest, "bad_body", err.Error())
			return
		}
		version, has, err := ifMatch(r)
		if err != nil {
			api.Error(w, http.StatusBadRequest, "bad_parameter", err.Error())
			return
		}
		if !has && action != "comment" {
			api.Error(w, http.StatusPreconditionRequired, "if_match_required", "send If-Match with the incident's version")
			return
		}
		c := api.CallerFrom(r.Context())
		ch := Change{Action: action, Actor: c.Name, IfVersion: version, Visible: func(ward string) bool {
			return !c.Scoped() || (ward != "" && c.SeesWard(ward))
		}}
		bad := func(field, problem string) {
			api.Error(w, http.StatusBadRequest, "bad_body", field+": "+problem)
		}
		switch action {
		case "dispatch":
			if len(body.UnitIDs) == 0 || len(body.UnitIDs) > 50 {
				bad("unit_ids", "want 1 to 50 unit ids")
				return
			}
			for _, u := range body.UnitIDs {
				if !validID(u) {
					bad("unit_ids", fmt.Sprintf("%q is not a unit id", clipStr(u)))
					return
				}
				if h.opts.UnitVisible != nil && !h.opts.UnitVisible(api.CallerFrom(r.Context()), u) {
					api.Error(w, http.StatusUnprocessableEntity, "unknown_unit", fmt.Sprintf("no unit %q has reported in your wards", clipStr(u)))
					return
				}
			}
			ch.UnitIDs = body.UnitIDs
		case "resolve":
			if !slices.Contains(resolutions, body.Resolution) {
				bad("resolution", "want one of "+strings.Join(resolutions, ", "))
				return
			}
			if len(body.Note) > 2000 || !utf8.ValidString(body.Note) {
				bad("note", "at most 2000 bytes of UTF-8")
				return
			}
			ch.Resolution, ch.Note = body.Resolution, body.Note
		case "comment":
			if strings.TrimSpace(body.Text) == "" || len(body.Text) > 4000 || !utf8.ValidString(body.Text) {
				bad("text", "want 1 to 4000 bytes of UTF-8")
				return
			}
			ch.Text = body.Text
		}
		if (action == "ack" || action == "reopen") && (body.UnitIDs != nil || body.Resolution != "" || body.Text != "") {
			bad("body", "this action takes no fields")
			return
		}
		ch.Audit = func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error {
			return h.e.audit.RecordTx(ctx, tx, auth.EntryFrom(r, auditAction, "incident/"+id, detail))
		}
		x, err := h.e.store.Act(r.Context(), id, ch)
		if h.changeError(w, r, err) {
			return
		}
		w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(x.Version, 10)))
		api.JSON(w, http.StatusOK, x)
	}
}

func (h *handlers) changeError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound):
		api.NotFound(w, "incident")
	case errors.Is(err, ErrVersionConflict):
		api.Error(w, http.StatusConflict, "version_conflict", err.Error())
	case errors.Is(err, ErrInvalidTransition):
		api.Error(w, http.StatusUnprocessableEntity, "invalid_transition", err.Error())
	default:
		api.Internal(w, h.e.log, r, err)
	}
	return true
}

func clipStr(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

func (h *handlers) open(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	var body struct {
		Kind     string `json:"kind"`
		Severity string `json:"severity"`
		Title    string `json:"title"`
		Note     string `json:"note"`
		Location *Point `json:"location"`
	}
	if err := decodeBody(r, &body); err != nil {
		api.Error(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	bad := func(problem string) { api.Error(w, http.StatusBadRequest, "bad_body", problem) }
	switch {
	case !kindRe.MatchString(body.Kind):
		bad("kind: want a lower-case incident kind such as accident")
		return
	case sevRank(body.Severity) < 0:
		bad("severity: want one of " + strings.Join(severities, ", "))
		return
	case body.Location == nil || body.Location.Type != "Point":
		bad(`location: want a GeoJSON Point {"type":"Point","coordinates":[lon,lat]}`)
		return
	case len(body.Title) > 200 || !utf8.ValidString(body.Title):
		bad("title: at most 200 bytes of UTF-8")
		return
	case len(body.Note) > 2000 || !utf8.ValidString(body.Note):
		bad("note: at most 2000 bytes of UTF-8")
		return
	}
	lon, lat := body.Location.Coordinates[0], body.Location.Coordinates[1]
	if math.IsNaN(lon) || math.IsNaN(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90 || (lon == 0 && lat == 0) {
		bad("location: coordinates out of range")
		return
	}
	m := Manual{Kind: body.Kind, Severity: body.Severity, Title: body.Title, Note: body.Note, Lon: lon, Lat: lat}
	if h.e.cfg.Geo != nil {
		m.Ward, _ = h.e.cfg.Geo.Ward(lon, lat)
	}
	c := api.CallerFrom(r.Context())
	if c.Scoped() && (m.Ward == "" || !c.SeesWard(m.Ward)) {
		api.Error(w, http.StatusForbidden, "forbidden", "the location is outside your wards")
		return
	}
	x, err := h.e.store.Open(r.Context(), m, c.Name, func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error {
		return h.e.audit.RecordTx(ctx, tx, auth.EntryFrom(r, auth.ActIncidentsOpen, "incident/"+id, detail))
	})
	if err != nil {
		api.Internal(w, h.e.log, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/incidents/"+x.ID)
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(x.Version, 10)))
	api.JSON(w, http.StatusCreated, x)
}

func (h *handlers) getRules(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	raw, version := h.e.RulesDocument()
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(version, 10)))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

func (h *handlers) putRules(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRulesBytes+1))
	if err != nil {
		api.Error(w, http.StatusBadRequest, "bad_body", "could not read the body")
		return
	}
	version, _, err := ifMatch(r)
	if err != nil {
		api.Error(w, http.StatusBadRequest, "bad_parameter", strings.Replace(err.Error(), "incident's", "rule set's", 1))
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
	case errors.Is(err, ErrVersionConflict):
		api.Error(w, http.StatusConflict, "version_conflict", "the rule set changed since that version")
		return
	case err != nil:
		api.Internal(w, h.e.log, r, err)
		return
	}
	raw, _ := h.e.RulesDocument()
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(v, 10)))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}
