package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type denyAll struct{}

func (denyAll) Authenticate(r *http.Request) (Caller, error) {
	switch r.Header.Get("Authorization") {
	case "":
		return Caller{}, ErrUnauthenticated
	case "Bearer db-down":
		return Caller{}, errors.New("dial tcp 127.0.0.1:5432: connection refused")
	}
	return Caller{Name: "u", Role: "analyst"}, nil
}
func (denyAll) Allow(c Caller, action string) bool { return action == "x:read" }

func TestGuard(t *testing.T) {
	s := New(":0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetAuth(denyAll{}, denyAll{})
	s.Handle("GET", "/r", "x:read", func(w http.ResponseWriter, r *http.Request) {
		JSON(w, 200, CallerFrom(r.Context()))
	})
	s.Handle("POST", "/w", "x:write", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	s.Handle("GET", "/panic", "x:read", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	h := s.Handler()
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/r", "", 401},
		{"GET", "/r", "Bearer t", 200},
		{"POST", "/w", "Bearer t", 403},
		{"GET", "/panic", "Bearer t", 500},
		// Credentials that cannot be checked are not bad credentials.
		{"GET", "/r", "Bearer db-down", 503},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, rec.Code, c.want)
		}
		if c.want >= 400 {
			var b ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code == "" {
				t.Errorf("%s %s: error body %q not in the contract's shape", c.method, c.path, rec.Body.String())
			}
		}
	}
}

func TestQuery(t *testing.T) {
	parse := func(qs string) (*Query, int, time.Time, []float64) {
		r := httptest.NewRequest("GET", "/x?"+qs, nil)
		q := NewQuery(r, "limit", "from", "bbox", "kind")
		n := q.Int("limit", 100, 1, 1000)
		from := q.Time("from")
		b := q.BBox("bbox")
		q.Enum("kind", "traffic", "camera")
		return q, n, from, b
	}
	q, n, from, b := parse("limit=5&from=2026-01-02T03:04:05%2B07:00&bbox=105.7,20.9,105.9,21.1&kind=camera")
	if q.Err() != nil || n != 5 || from.IsZero() || len(b) != 4 {
		t.Fatalf("good query: err=%v n=%d from=%v bbox=%v", q.Err(), n, from, b)
	}
	for _, bad := range []string{
		"limit=0", "limit=99999999999999999999", "limit=abc", "from=yesterday", "from=99999999999999999",
		"bbox=1,2,3", "bbox=NaN,1,2,3", "bbox=106,21,105,20", "kind=drone", "limt=5", "limit=1&limit=2",
		"kind=" + strings.Repeat("x", 5000),
	} {
		q, _, _, _ := parse(bad)
		if q.Err() == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	type key struct {
		TS time.Time `json:"t"`
		ID string    `json:"i"`
	}
	in := key{time.UnixMilli(1700000000123).UTC(), "cam-1"}
	var out key
	if err := DecodeCursor(EncodeCursor(in), &out); err != nil || out != in {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	if err := DecodeCursor("!!!", &out); err == nil {
		t.Fatal("garbage cursor accepted")
	}
}
