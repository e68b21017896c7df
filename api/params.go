package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ParamError is a bad query parameter; handlers answer it with 400.
type ParamError struct {
	Name, Problem string
	// Code is the error code sent; "" means bad_parameter.
	Code string
}

// ErrorCode is the contract code the error is answered with.
func (e *ParamError) ErrorCode() string {
	if e.Code == "" {
		return "bad_parameter"
	}
	return e.Code
}

func (e *ParamError) Error() string { return e.Name + ": " + e.Problem }

// BadParam answers a ParamError (or any error) with 400 bad_parameter and
// reports whether it did.
func BadParam(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var pe *ParamError
	if errors.As(err, &pe) {
		Error(w, http.StatusBadRequest, pe.ErrorCode(), pe.Error())
	} else {
		Error(w, http.StatusBadRequest, "bad_parameter", err.Error())
	}
	return true
}

// Query reads query parameters strictly: each parser records the first
// problem and later calls return zero values; Err returns it.
type Query struct {
	v   url.Values
	err error
}

// NewQuery parses r's query string. Unknown parameters are refused so a
// misspelt filter is an error, not an unfiltered answer.
func NewQuery(r *http.Request, allowed ...string) *Query {
	q := &Query{v: r.URL.Query()}
	if len(r.URL.RawQuery) > 4096 {
		q.err = &ParamError{Name: "query", Problem: "longer than 4096 bytes"}
		return q
	}
	for k, vs := range q.v {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
			}
		}
		if !known {
			q.fail(k, "unknown parameter (allowed: "+strings.Join(allowed, ", ")+")")
			continue
		}
		if len(vs) > 1 {
			q.fail(k, "given more than once")
		}
	}
	return q
}

func (q *Query) fail(name, problem string) {
	if q.err == nil {
		q.err = &ParamError{Name: name, Problem: problem}
	}
}

// Ward returns the parameter if it is a known ward code (known is the
// ward index's lookup), else records a 400 unknown_ward.
func (q *Query) Ward(name string, known func(code string) bool) string {
	s := q.v.Get(name)
	if s == "" {
		return ""
	}
	if known == nil || !known(s) {
		if q.err == nil {
			q.err = &ParamError{Name: name, Problem: fmt.Sprintf("%q is not a ward code (5 digits, see GET /api/v1/wards)", Clip(s)), Code: "unknown_ward"}
		}
		return ""
	}
	return s
}

// Err is the first problem found.
func (q *Query) Err() error { return q.err }

// String returns the parameter, at most max bytes of valid UTF-8.
func (q *Query) String(name string, max int) string {
	s := q.v.Get(name)
	if len(s) > max {
		q.fail(name, fmt.Sprintf("longer than %d bytes", max))
		return ""
	}
	if !utf8.ValidString(s) {
		q.fail(name, "not valid UTF-8")
		return ""
	}
	return s
}

// Int returns the parameter as an integer in [min, max], or def if absent.
func (q *Query) Int(name string, def, min, max int) int {
	s := q.v.Get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		q.fail(name, fmt.Sprintf("want an integer from %d to %d, got %q", min, max, Clip(s)))
		return def
	}
	return n
}

// Time returns the parameter as RFC 3339 with an offset or epoch
// milliseconds; the zero time if absent.
func (q *Query) Time(name string) time.Time {
	s := q.v.Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		q.fail(name, err.Error())
	}
	return t
}

// Duration returns a bucket-like duration such as 5m or 1h within [min, max].
func (q *Query) Duration(name string, min, max time.Duration) time.Duration {
	s := q.v.Get(name)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < min || d > max {
		q.fail(name, fmt.Sprintf("want a duration from %v to %v such as 5m, got %q", min, max, Clip(s)))
		return 0
	}
	return d
}

// Enum returns the parameter if it is one of options, else records a problem.
func (q *Query) Enum(name string, options ...string) string {
	s := q.v.Get(name)
	if s == "" {
		return ""
	}
	for _, o := range options {
		if s == o {
			return s
		}
	}
	q.fail(name, fmt.Sprintf("want one of %s, got %q", strings.Join(options, ", "), Clip(s)))
	return ""
}

// BBox returns minLon,minLat,maxLon,maxLat, or nil if absent.
func (q *Query) BBox(name string) []float64 {
	s := q.v.Get(name)
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		q.fail(name, "want minLon,minLat,maxLon,maxLat")
		return nil
	}
	b := make([]float64, 4)
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			q.fail(name, fmt.Sprintf("%q is not a number", Clip(p)))
			return nil
		}
		b[i] = f
	}
	if b[0] < -180 || b[2] > 180 || b[1] < -90 || b[3] > 90 || b[0] > b[2] || b[1] > b[3] {
		q.fail(name, "want -180<=minLon<=maxLon<=180 and -90<=minLat<=maxLat<=90")
		return nil
	}
	return b
}

// Cursor decodes an opaque keyset cursor made by EncodeCursor into v.
func (q *Query) Cursor(name string, v any) bool {
	s := q.v.Get(name)
	if s == "" {
		return false
	}
	if err := DecodeCursor(s, v); err != nil {
		q.fail(name, "not a cursor from a previous page")
		return false
	}
	return true
}

// ParseTime accepts RFC 3339 with an offset, or integer epoch milliseconds.
func ParseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 32503680000000 { // year 3000
			return time.Time{}, fmt.Errorf("epoch milliseconds out of range: %d", n)
		}
		return time.UnixMilli(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 with an offset or epoch milliseconds, got %q", Clip(s))
	}
	if t.Year() < 1970 || t.Year() > 2999 {
		return time.Time{}, fmt.Errorf("time out of range: %q", Clip(s))
	}
	return t, nil
}

// EncodeCursor makes an opaque cursor from the keys of the last row of a page.
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(s string, v any) error {
	if len(s) > 1024 {
		return errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
