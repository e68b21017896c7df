package alerts

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"ioc/api"
)

// FuzzIncidentQuery: any query string becomes a filter and its SQL or a
// 400 (*api.ParamError), never a panic; outside text reaches the SQL only
// as arguments.
func FuzzIncidentQuery(f *testing.F) {
	for _, s := range []string{"status=new,resolved&kind=fire", "ward=00004,,00008", "bbox=105,21,106,22&from=1&to=2",
		"from=2026-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", "q=%27;DROP TABLE incidents;--", "status=" + strings.Repeat("new,", 300),
		"active=true&updated_since=1700000000000", "kind=fire%2C%20flooding"} {
		f.Add(s)
	}
	kinds := []string{"fire", "flooding", "accident"}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/x", nil)
		r.URL.RawQuery = raw
		q := api.NewQuery(r, filterParams...)
		var first error
		list := func(name string, opts []string, known func(string) bool) []string {
			vs, err := splitList(q, name, opts, known)
			if err != nil && first == nil {
				first = err
			}
			return vs
		}
		flt := IncidentFilter{
			Status: list("status", statuses, nil), Kind: list("kind", kinds, nil), Severity: list("severity", severities, nil),
			Ward: list("ward", nil, func(c string) bool { return c == "00004" || c == "00008" }),
			BBox: q.BBox("bbox"), From: q.Time("from"), To: q.Time("to"), UpdatedSince: q.Time("updated_since"),
			Text: q.String("q", 200), Active: q.Enum("active", "true", "false") == "true",
		}
		err := errors.Join(q.Err(), first)
		if err == nil {
			err = flt.Validate()
		}
		var pe *api.ParamError
		if err != nil {
			if !errors.As(err, &pe) {
				t.Fatalf("%q: %T %v, want a ParamError", raw, err, err)
			}
			return
		}
		var a sqlArgs
		sql, err := filterWhere(flt, &a)
		if err != nil {
			t.Fatalf("%q: valid filter refused: %v", raw, err)
		}
		// The statement is the same whatever the text searched.
		if flt.Text != "" {
			other := flt
			other.Text = "x"
			var b sqlArgs
			if sql2, _ := filterWhere(other, &b); sql2 != sql {
				t.Fatalf("%q: the text changed the SQL:\n%s\n%s", raw, sql, sql2)
			}
		}
	})
}
