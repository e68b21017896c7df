package ogc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"ioc/api"
)

// sqlOf compiles a filter over the incidents' queryables and returns its
// SQL with the bound values.
func sqlOf(filter string) (string, []any, error) {
	n, err := parseCQL2(filter)
	if err != nil {
		return "", nil, err
	}
	c, err := compile(n, incidentQueryables)
	if err != nil {
		return "", nil, err
	}
	var args []any
	sql, err := c.SQL(func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	})
	return sql, args, err
}

func TestCQL2Compiles(t *testing.T) {
	ts := time.Date(2026, 7, 1, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		filter, sql string
		args        []any
	}{
		{"status = 'new'", "i.status = $1::text", []any{"new"}},
		{`"status"='new'`, "i.status = $1::text", []any{"new"}},
		{"'new' = status", "i.status = $1::text", []any{"new"}},
		{"5 < escalation_level", "i.escalation_level > $1::float8", []any{5.0}},
		{"status <> 'resolved' AND severity IN ('severe','extreme')",
			"(i.status <> $1::text AND i.severity IN ($2::text, $3::text))", []any{"resolved", "severe", "extreme"}},
		{"kind = 'fire' or kind = 'flooding' and not ward = '00004'",
			"(i.kind = $1::text OR (i.kind = $2::text AND (NOT i.ward_code = $3::text)))", []any{"fire", "flooding", "00004"}},
		{"(kind = 'fire' OR kind = 'accident') AND ward IS NOT NULL",
			"((i.kind = $1::text OR i.kind = $2::text) AND i.ward_code IS NOT NULL)", []any{"fire", "accident"}},
		{"resolved_at IS NULL", "i.resolved_at IS NULL", nil},
		{"title LIKE 'Cháy%'", "i.title LIKE $1::text", []any{"Cháy%"}},
		{"title NOT LIKE '%O''Brien%'", "i.title NOT LIKE $1::text", []any{"%O'Brien%"}},
		{"opened_at >= TIMESTAMP('2026-07-01T08:00:00+07:00')", "i.opened_at >= $1::timestamptz", []any{ts}},
		{"opened_at < '2026-07-01T01:00:00Z'", "i.opened_at < $1::timestamptz", []any{ts}},
		{"opened_at > '2026/07/01 01:00:00'", "i.opened_at > $1::timestamptz", []any{ts}}, // as GDAL writes it
		{"escalation_level BETWEEN 1 AND 2.5", "i.escalation_level BETWEEN $1::float8 AND $2::float8", []any{1.0, 2.5}},
		{"auto_resolve = TRUE", "i.auto_resolve = $1::boolean", []any{true}},
		{"version NOT IN (1, 2)", "i.version NOT IN ($1::float8, $2::float8)", []any{1.0, 2.0}},
	} {
		sql, args, err := sqlOf(c.filter)
		if err != nil {
			t.Errorf("%q: %v", c.filter, err)
			continue
		}
		if sql != c.sql || fmt.Sprint(args) != fmt.Sprint(c.args) {
			if len(args) == 1 && len(c.args) == 1 {
				if at, ok := args[0].(time.Time); ok && at.Equal(c.args[0].(time.Time)) && sql == c.sql {
					continue
				}
			}
			t.Errorf("%q:\n got %s %v\nwant %s %v", c.filter, sql, args, c.sql, c.args)
		}
	}
}

func TestCQL2Refuses(t *testing.T) {
	deep := strings.Repeat("(", 30) + "status = 'new'" + strings.Repeat(")", 30)
	many := strings.TrimSuffix(strings.Repeat("status = 'new' OR ", 70), " OR ")
	for _, c := range []struct{ filter, want string }{
		{"", "ends"},
		{"status", "ends after"},
		{"status = ", "ends where a value"},
		{"status = 'new", "not closed"},
		{`"status = 'new'`, "not closed"},
		{"nope = 1", "not a queryable"},
		{"password = 'x'", "not a queryable"},
		{"status = 1", "is a string"},
		{"escalation_level = 'high'", "is a integer"},
		{"opened_at > 'yesterday'", "is a date-time"},
		{"auto_resolve > TRUE", "only = and <>"},
		{"escalation_level LIKE '1%'", "LIKE needs a string"},
		{"status = 'new' status = 'x'", "unexpected"},
		{"status == 'new'", "want a value"},
		{"status = 'new' AND", "ends"},
		{"1 = 1", "needs a property"},
		{"status IS 'x'", "want NULL"},
		{"status IN ()", "want a value"},
		{"status IN ('a' 'b')", "want , or )"},
		{"opened_at = TIMESTAMP('soon')", "not a valid instant"},
		{"status = 'new'; DROP TABLE incidents", "unexpected"},
		{"S_INTERSECTS(geometry, POINT(1 2))", "want an operator"},
		{deep, "nested deeper"},
		{many, "predicates"},
		{"escalation_level = 1e999", "not a number"},
		{"status = '\xff'", "UTF-8"},
	} {
		_, _, err := sqlOf(c.filter)
		var p *api.Problem
		if err == nil || !errors.As(err, &p) || p.Status != 400 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a 400 saying %q", c.filter, err, c.want)
		}
	}
}

// FuzzCQL2 feeds the parser and compiler anything: no panic, every error a
// 400, and what compiles carries no value inside its SQL text (no quote,
// only whitelisted columns and placeholders).
func FuzzCQL2(f *testing.F) {
	for _, s := range []string{"status = 'new'", "kind IN ('fire','accident') AND NOT ward IS NULL",
		"opened_at BETWEEN TIMESTAMP('2026-01-01T00:00:00Z') AND '2026-02-01'", `"title" NOT LIKE '%x''y%'`,
		"((a", "5 >= escalation_level OR version <> 3", "auto_resolve = FALSE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sql, args, err := sqlOf(s)
		if err != nil {
			var p *api.Problem
			if !errors.As(err, &p) || p.Status != 400 {
				t.Fatalf("%q: error %v is not a 400", s, err)
			}
			return
		}
		if strings.ContainsAny(sql, `'";`) {
			t.Fatalf("%q: a value reached the SQL: %s", s, sql)
		}
		if strings.Count(sql, "$") != len(args) {
			t.Fatalf("%q: %d placeholders for %d values: %s", s, strings.Count(sql, "$"), len(args), sql)
		}
	})
}

func TestBBoxAxisOrder(t *testing.T) {
	for _, c := range []struct {
		crs  crs
		in   []float64
		want string
		err  bool
	}{
		{crs84, []float64{105.8, 21.0, 105.9, 21.1}, "[105.8 21 105.9 21.1]", false},
		{epsg4326, []float64{21.0, 105.8, 21.1, 105.9}, "[105.8 21 105.9 21.1]", false},
		{epsg4326, []float64{105.8, 21.0, 105.9, 21.1}, "", true}, // lon first: latitude 105.8 is out of range
		{epsg3405, []float64{580000, 2320000, 600000, 2340000}, "[580000 2.32e+06 600000 2.34e+06]", false},
		{crs84, []float64{105.8, 21.0, 0, 105.9, 21.1, 100}, "[105.8 21 105.9 21.1]", false},
		{crs84, []float64{105.9, 21.0, 105.8, 21.1}, "", true},
		{crs84, []float64{1, 2, 3}, "", true},
	} {
		got, err := bboxIn(c.crs, c.in)
		if (err != nil) != c.err || (err == nil && fmt.Sprint(got) != c.want) {
			t.Errorf("%s %v: %v %v, want %s (error %v)", c.crs.uri, c.in, got, err, c.want, c.err)
		}
	}
}

func TestDatetime(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in       string
		from, to time.Time
		err      bool
	}{
		{"2026-07-01T08:00:00+07:00", t0, t0.Add(time.Microsecond), false},
		{"2026-07-01T01:00:00Z/..", t0, time.Time{}, false},
		{"../2026-07-01T01:00:00Z", time.Time{}, t0.Add(time.Microsecond), false},
		{"/2026-07-01T01:00:00Z", time.Time{}, t0.Add(time.Microsecond), false},
		{"2026-07-01", t0.Add(-time.Hour), t0.Add(23 * time.Hour), false},
		{"2026-07-01T01:00:00Z/2026-07-01T00:00:00Z", time.Time{}, time.Time{}, true},
		{"yesterday", time.Time{}, time.Time{}, true},
		{"a/b/c", time.Time{}, time.Time{}, true},
	} {
		from, to, err := parseDatetime(c.in)
		if (err != nil) != c.err || (err == nil && (!from.Equal(c.from) || !to.Equal(c.to))) {
			t.Errorf("%q: %v %v %v, want %v %v (error %v)", c.in, from, to, err, c.from, c.to, c.err)
		}
	}
}
