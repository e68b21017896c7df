package alerts

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ioc/api"
)

type listCursor struct {
	T time.Time `json:"t"`
	I string    `json:"i"`
}

// IncidentFilter is what GET /incidents selects.
type IncidentFilter struct {
	Status, Kind, Severity, Ward string
	BBox                         []float64
	From, To                     time.Time
	// Text matches the title (a substring, LIKE's wildcards taken
	// literally), the id or the kind.
	Text string
	// Wards limits the answer to these wards (nil: every ward).
	Wards []string
	// Active keeps only incidents not resolved (the queue, the live map).
	Active bool
	// Where adds conditions written by another part (the OGC API's CQL2
	// filter), ANDed with the rest. Each writes SQL over the incidents
	// table aliased i, taking its values through arg.
	Where []Condition
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

// likeEscape makes s match itself literally inside a LIKE pattern
// (ESCAPE '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// List returns the incidents matching f, newest first, and the next
// page's cursor.
// A cursor no page made is ErrBadCursor. The list route, exports and
// snapshots call it, so they select alike.
func (s *Store) List(ctx context.Context, f IncidentFilter) ([]*Incident, string, error) {
	sql, args, err := listQuery(f)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	out := []*Incident{}
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

// listQuery is List's statement and its arguments.
func listQuery(f IncidentFilter) (string, []any, error) {
	args := []any{f.Wards}
	where := []string{`($1::text[] IS NULL OR i.ward_code = ANY($1))`}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, c := range []struct{ col, v string }{{"status", f.Status}, {"kind", f.Kind}, {"severity", f.Severity}, {"ward_code", f.Ward}} {
		if c.v != "" {
			where = append(where, "i."+c.col+" = "+arg(c.v))
		}
	}
	if f.Active {
		where = append(where, "i.status <> 'resolved'")
	}
	if f.BBox != nil {
		where = append(where, fmt.Sprintf("i.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)", arg(f.BBox[0]), arg(f.BBox[1]), arg(f.BBox[2]), arg(f.BBox[3])))
	}
	if !f.From.IsZero() {
		where = append(where, "i.opened_at >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "i.opened_at < "+arg(f.To))
	}
	if f.Text != "" {
		// Title by trigram index (incidents_title_trgm_idx), id and kind
		// by equality (primary key, incidents_kind_idx).
		p := arg("%" + likeEscape(f.Text) + "%")
		q := arg(f.Text)
		where = append(where, "(i.title ILIKE "+p+` ESCAPE '\' OR i.id = `+q+" OR i.kind = "+q+")")
	}
	for _, c := range f.Where {
		sql, err := c.SQL(arg)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "("+sql+")")
	}
	if f.Cursor != "" {
		var c listCursor
		if err := api.DecodeCursor(f.Cursor, &c); err != nil {
			return "", nil, ErrBadCursor
		}
		where = append(where, fmt.Sprintf("(i.opened_at, i.id) < (%s, %s)", arg(c.T), arg(c.I)))
	}
	sql := `SELECT ` + incidentCols + ` FROM incidents i WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY i.opened_at DESC, i.id DESC LIMIT ` + arg(f.Limit+1)
	return sql, args, nil
}
