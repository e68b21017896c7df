package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name  string   `json:"name"`
		Units []string `json:"unit_ids"`
		N     int      `json:"n"`
	}
	for _, c := range []struct {
		ctype, in string
		status    int // 0: accepted
		msg       string
	}{
		{"application/json", `{"name":"a","n":2}`, 0, ""},
		{"application/json; charset=utf-8", `{"unit_ids":["u1"]}`, 0, ""},
		{"", ``, 0, ""},
		{"", `   `, 0, ""},
		{"text/plain", `{"name":"a"}`, 415, "Content-Type"},
		{"", `{"name":"a"}`, 415, "Content-Type"},
		{"application/json", `{"name":`, 400, "ends early"},
		{"application/json", `{"name":"a"} {}`, 400, "trailing"},
		{"application/json", `{"nme":"a"}`, 400, "unknown field"},
		{"application/json", `{"n":"two"}`, 400, "n: want an integer"},
		{"application/json", `{"unit_ids":"u1"}`, 400, "unit_ids: want an array"},
		{"application/json", `[1]`, 400, "want a JSON object"},
		{"application/json", `{"name":"a",}`, 400, "not valid JSON"},
	} {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(c.in))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		var b body
		err := DecodeJSON(r, &b)
		var p *Problem
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%q: refused: %v", c.in, err)
		case c.status != 0 && !errors.As(err, &p):
			t.Errorf("%q: want a %d problem, got %v", c.in, c.status, err)
		case c.status != 0 && (p.Status != c.status || !strings.Contains(err.Error(), c.msg)):
			t.Errorf("%q: got %d %q, want %d containing %q", c.in, p.Status, err, c.status, c.msg)
		}
	}
	r := httptest.NewRequest("POST", "/x", strings.NewReader(`{"name":"`+strings.Repeat("x", 100)+`"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 20)
	var b body
	if err := DecodeJSON(r, &b); !errors.As(err, new(*Problem)) || err.(*Problem).Status != 413 {
		t.Errorf("oversized body: %v, want 413", err)
	}
}

var errGone = fmt.Errorf("incident %w", ErrNotFound)

func TestFail(t *testing.T) {
	for _, c := range []struct {
		err        error
		status     int
		code, text string
	}{
		{errGone, 404, "not_found", "incident not found"},
		{fmt.Errorf("%w: now at version 4", ErrVersionConflict), 409, "version_conflict", "now at version 4"},
		{&ParamError{Name: "ward", Problem: "unknown ward"}, 400, "bad_parameter", "ward: unknown ward"},
		{ErrTooMany, 429, "too_many_requests", "retry"},
		{fmt.Errorf("insert: %w", errors.New("pq: password=secret")), 500, "internal", "internal error"},
		{sqlErr("57014"), 503, "query_timeout", "took too long"},
	} {
		rec := httptest.NewRecorder()
		Fail(rec, httptest.NewRequest("GET", "/x", nil), c.err)
		var b ErrorBody
		json.Unmarshal(rec.Body.Bytes(), &b)
		if rec.Code != c.status || b.Error.Code != c.code || !strings.Contains(b.Error.Message, c.text) {
			t.Errorf("%v: got %d %+v, want %d %s %q", c.err, rec.Code, b.Error, c.status, c.code, c.text)
		}
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%v: leaked internal text: %s", c.err, rec.Body)
		}
	}
	if !errors.Is(errGone, ErrNotFound) {
		t.Error("a wrapped domain error is not the common problem")
	}
}

type sqlErr string

func (e sqlErr) Error() string    { return "ERROR: canceling statement due to statement timeout" }
func (e sqlErr) SQLState() string { return string(e) }

func TestIfMatch(t *testing.T) {
	for h, want := range map[string]int64{"": 0, "3": 3, `"7"`: 7, `W/"9"`: 9} {
		r := httptest.NewRequest("POST", "/x", nil)
		r.Header.Set("If-Match", h)
		if v, err := IfMatch(r); err != nil || v != want {
			t.Errorf("If-Match %q: %d %v, want %d", h, v, err, want)
		}
	}
	for _, h := range []string{"abc", "0", "-1", `"x"`} {
		r := httptest.NewRequest("POST", "/x", nil)
		r.Header.Set("If-Match", h)
		if _, err := IfMatch(r); err == nil {
			t.Errorf("If-Match %q accepted", h)
		}
	}
}

func TestQueryWard(t *testing.T) {
	known := func(c string) bool { return c == "00004" }
	for qs, wantCode := range map[string]string{"ward=00004": "", "": "", "ward=../../etc": "unknown_ward", "ward=99999": "unknown_ward"} {
		q := NewQuery(httptest.NewRequest("GET", "/x?"+qs, nil), "ward")
		q.Ward("ward", known)
		var pe *ParamError
		switch {
		case wantCode == "" && q.Err() != nil:
			t.Errorf("%q: %v", qs, q.Err())
		case wantCode != "" && (!errors.As(q.Err(), &pe) || pe.ErrorCode() != wantCode):
			t.Errorf("%q: %v, want %s", qs, q.Err(), wantCode)
		}
	}
}

// A caller's heavy requests beyond its share get 429 at once, while another
// caller's still run.
func TestHeavyPerCaller(t *testing.T) {
	s := New(":0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetAuth(namedCaller{}, namedCaller{})
	s.SetHeavyLimit(2)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	s.HandleHeavy("GET", "/search", "x:read", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.WriteHeader(200)
	})
	h := s.Handler()
	do := func(who string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/search", nil)
		r.Header.Set("Authorization", "Bearer "+who)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { done <- do("ana").Code }()
		<-started
	}
	if rec := do("ana"); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third heavy request of one caller: %d (Retry-After %q), want 429", rec.Code, rec.Header().Get("Retry-After"))
	}
	go func() { done <- do("bao").Code }()
	<-started // another caller is not held back by ana's share
	close(release)
	for i := 0; i < 3; i++ {
		if c := <-done; c != 200 {
			t.Fatalf("request in its share: %d", c)
		}
	}
	if rec := do("ana"); rec.Code != 200 {
		t.Fatalf("after the share freed: %d", rec.Code)
	}
}

type namedCaller struct{}

func (namedCaller) Authenticate(r *http.Request) (Caller, error) {
	return Caller{Name: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), Role: "analyst"}, nil
}
func (namedCaller) Allow(Caller, string) bool { return true }
