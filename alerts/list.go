package alerts

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"ioc/api"
)

type listCursor struct {
	T time.Time `json:"t"`
	I string    `json:"i"`
}

// Caps on what one incident query may ask for.
const (
	// MaxListLimit is the largest page GET /incidents serves (and the
	// OGC API declares); DefaultListLimit the page when none is asked.
	MaxListLimit     = 1000
	DefaultListLimit = 100
	// maxStoreLimit bounds a page asked of the store by the service
	// itself (exports, websocket snapshots).
	maxStoreLimit = SnapshotMax
	// MaxSpan is the longest from–to a query may name: a year and a day.
	MaxSpan = 366 * 24 * time.Hour
	// maxValues caps the values of one list filter (status=a,b,...).
	maxValues = 200
)

// IncidentFilter is THE incident query: GET /incidents, the exports, the
// statistics, the OGC API's items and the websocket snapshots select with
// it, so they select alike and the ward scope is applied in one place
// (filterWhere).
type IncidentFilter struct {
	// Status, Kind, Severity and Ward each match any of their values
	// (empty: any).
	Status, Kind, Severity, Ward []string
	// Active keeps incidents not resolved (the live queue, snapshots).
	Active bool
	BBox   []float64
	// From (inclusive) and To (exclusive) bound opened_at; at most
	// MaxSpan apart when both are set.
	From, To time.Time
	// UpdatedSince keeps incidents changed at or after it.
	UpdatedSince time.Time
	// Text matches the title (a substring, LIKE's wildcards taken
	// literally), the id or the kind.
	Text string
	// Wards limits the answer to these wards (nil: every ward): the
	// caller's scope, api.Caller.WardFilter.
	Wards []string
	// Where adds conditions written by another part (the OGC API's CQL2
	// filter), ANDed with the rest. Each writes SQL over the incidents
	// table aliased i, taking its values through arg.
	Where []Condition
	// Limit is the page size: 0 is DefaultListLimit; at most
	// MaxListLimit from outside.
	Limit int
	// Cursor is a previous page's next cursor ("" for the first page).
	Cursor string
}

// Condition is one extra condition of a query, as SQL. arg binds a value
// and returns its placeholder; a Condition never writes a value into the
// SQL text itself.
type Condition interface {
	SQL(arg func(any) string) (string, error)
}

// Validate checks what the store cannot serve: a span over MaxSpan or
// backwards, a page over the cap, too many values in a list. Its errors
// are *api.ParamError (400).
func (f IncidentFilter) Validate() error {
	if !f.From.IsZero() && !f.To.IsZero() {
		if !f.From.Before(f.To) {
			return &api.ParamError{Name: "to", Problem: "must be after from"}
		}
		if f.To.Sub(f.From) > MaxSpan {
			return &api.ParamError{Name: "to", Code: "span_too_long", Problem: "from–to may span at most 366 days"}
		}
	}
	if f.Limit < 0 || f.Limit > maxStoreLimit {
		return &api.ParamError{Name: "limit", Problem: fmt.Sprintf("want 1 to %d", MaxListLimit)}
	}
	for name, vs := range map[string][]string{"status": f.Status, "kind": f.Kind, "severity": f.Severity, "ward": f.Ward} {
		if len(vs) > maxValues {
			return &api.ParamError{Name: name, Problem: fmt.Sprintf("at most %d values", maxValues)}
		}
	}
	if f.BBox != nil && len(f.BBox) != 4 {
		return &api.ParamError{Name: "bbox", Problem: "want minLon,minLat,maxLon,maxLat"}
	}
	return nil
}

// likeEscape makes s match itself literally inside a LIKE pattern
// (ESCAPE '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// List returns the incidents matching f, newest first (opened_at, then
// id: a keyset order, so paging is stable while incidents are added), and
// the next page's cursor.
// A cursor no page made is ErrBadCursor. The list route, exports and
// snapshots call it, so they select alike.
func (s *Store) List(ctx context.Context, f IncidentFilter) ([]*Incident, string, error) {
	if f.Limit == 0 {
		f.Limit = DefaultListLimit
	}
	sql, args, err := listQuery(f)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	out := make([]*Incident, 0, min(f.Limit, 128))
	for rows.Next() {
		x, err := s.scanIncident(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[f.Limit-1]
		next = api.EncodeCursor(listCursor{last.OpenedAt, last.ID})
	}
	return out, next, nil
}

// sqlArgs collects a statement's arguments.
type sqlArgs []any

func (a *sqlArgs) arg(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// filterWhere is the WHERE clause of every incident query (List, the
// statistics): f's conditions over incidents aliased i, the ward scope
// first. The cursor is List's alone and not part of it.
func filterWhere(f IncidentFilter, a *sqlArgs) (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	// The scope is written only when there is one: "$1 IS NULL OR ..."
	// hides from the planner what it is, and a prepared statement's
	// generic plan then guesses. An empty scope (no ward) matches nothing.
	var where []string
	if f.Wards != nil {
		where = append(where, "i.ward_code = ANY("+a.arg(f.Wards)+"::text[])")
	}
	for _, c := range []struct {
		col string
		vs  []string
	}{{"status", f.Status}, {"kind", f.Kind}, {"severity", f.Severity}, {"ward_code", f.Ward}} {
		switch len(c.vs) {
		case 0:
		case 1:
			where = append(where, "i."+c.col+" = "+a.arg(c.vs[0]))
		default:
			where = append(where, "i."+c.col+" = ANY("+a.arg(c.vs)+"::text[])")
		}
	}
	if f.Active {
		where = append(where, "i.status <> 'resolved'")
	}
	if f.BBox != nil {
		where = append(where, fmt.Sprintf("i.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)", a.arg(f.BBox[0]), a.arg(f.BBox[1]), a.arg(f.BBox[2]), a.arg(f.BBox[3])))
	}
	if !f.From.IsZero() {
		where = append(where, "i.opened_at >= "+a.arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "i.opened_at < "+a.arg(f.To))
	}
	if !f.UpdatedSince.IsZero() {
		where = append(where, "i.updated_at >= "+a.arg(f.UpdatedSince))
	}
	if f.Text != "" {
		// Title by trigram index (incidents_title_trgm_idx), id and kind
		// by equality (primary key, incidents_kind_idx).
		p := a.arg("%" + likeEscape(f.Text) + "%")
		q := a.arg(f.Text)
		where = append(where, "(i.title ILIKE "+p+` ESCAPE '\' OR i.id = `+q+" OR i.kind = "+q+")")
	}
	for _, c := range f.Where {
		sql, err := c.SQL(a.arg)
		if err != nil {
			return "", err
		}
		where = append(where, "("+sql+")")
	}
	if len(where) == 0 {
		return "true", nil
	}
	return strings.Join(where, " AND "), nil
}

// listQuery is List's statement and its arguments.
func listQuery(f IncidentFilter) (string, []any, error) {
	var a sqlArgs
	where, err := filterWhere(f, &a)
	if err != nil {
		return "", nil, err
	}
	if f.Limit <= 0 {
		f.Limit = DefaultListLimit
	}
	if f.Cursor != "" {
		var c listCursor
		if err := api.DecodeCursor(f.Cursor, &c); err != nil || c.T.IsZero() {
			return "", nil, ErrBadCursor
		}
		where += fmt.Sprintf(" AND (i.opened_at, i.id) < (%s, %s)", a.arg(c.T), a.arg(c.I))
	}
	sql := `SELECT ` + incidentCols + ` FROM incidents i WHERE ` + where +
		` ORDER BY i.opened_at DESC, i.id DESC LIMIT ` + a.arg(f.Limit+1)
	return sql, a.customPlan(), nil
}

// customPlan is the statement's arguments for a query planned with its
// values each time it runs (pgx's QueryExecModeCacheDescribe: an unnamed
// statement). Which plan is best depends on the values: a bounding box
// over half the city is best read along opened_at, a street's box through
// the GiST index; a prepared statement's generic plan, which pgx's
// default statement cache gets after five runs, guesses one for all and
// read 430,000 GiST entries for a 24-hour box of 1,000 rows
// (docs/history.md). Planning costs about a millisecond.
func (a sqlArgs) customPlan() []any {
	return append([]any{pgx.QueryExecModeCacheDescribe}, a...)
}
