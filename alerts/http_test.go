package alerts

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ioc/api"
)

// newHTTP serves the engine's routes as iocd does, with open access (every
// caller an unscoped admin) and the test wards 00004 and 00008 known.
func newHTTP(t *testing.T, v *env) http.Handler {
	t.Helper()
	srv := api.New("127.0.0.1:0", testLog())
	v.e.Register(srv, HTTPOptions{KnownWard: func(code string) bool { return code == "00004" || code == "00008" }})
	return srv.Handler()
}

func call(t *testing.T, h http.Handler, method, path, ifMatch, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		r.Header.Set("If-Match", ifMatch)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w, out
}

// A burst of evidence joining an incident (20 camera events about one
// fire) does not move the version an operator's If-Match names: the ack
// sent with the version the operator saw succeeds, while a real change
// by someone else still answers 409. The evidence still reaches the
// websocket layer as "updated" events, and evidence and timeline are
// paged.
func TestEvidenceJoinsDoNotBlockOperators(t *testing.T) {
	v := newEnv(t, nil)
	h := newHTTP(t, v)
	detailPage = 8
	t.Cleanup(func() { detailPage = 100 })
	ev := compile(v.e.Rules(), fakeGeo{})
	now := v.clock.Now()
	first := camera("cam-0", 0, "fire", 0.9, 105.85, 21.03)
	first.TS = now
	id := v.apply(t, trig(ev, first)[0])

	w, x := call(t, h, "GET", "/api/v1/incidents/"+id, "", "")
	if w.Code != 200 || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s %v", w.Code, w.Header().Get("ETag"), x)
	}
	seen := w.Header().Get("ETag") // what the operator saw

	for i := 1; i <= 20; i++ {
		o := camera("cam-"+string(rune('a'+i)), 0, "fire", 0.9, 105.8501, 21.0301)
		o.TS = now.Add(time.Duration(i) * time.Second)
		if got := v.apply(t, trig(ev, o)[0]); got != id {
			t.Fatalf("evidence %d opened %s instead of joining %s", i, got, id)
		}
	}
	w, x = call(t, h, "GET", "/api/v1/incidents/"+id, "", "")
	if w.Code != 200 || x["evidence_count"].(float64) != 21 {
		t.Fatalf("after the joins: %d %v", w.Code, x)
	}
	if et := w.Header().Get("ETag"); et != seen {
		t.Errorf("ETag moved from %s to %s with evidence alone", seen, et)
	}
	if n := v.count(t, `SELECT count(*) FROM incident_events WHERE incident_id = $1 AND op = 'updated'`, id); n != 20 {
		t.Errorf("%d updated events for 20 joins, want 20 (the websocket layer shows each)", n)
	}

	// Paging: the incident's answer carries the first page and a cursor.
	if n := len(x["evidence"].([]any)); n != 8 || x["evidence_next_cursor"] == nil {
		t.Fatalf("first evidence page: %d items, cursor %v", n, x["evidence_next_cursor"])
	}
	if n := len(x["timeline"].([]any)); n != 8 || x["timeline_next_cursor"] == nil {
		t.Fatalf("first timeline page: %d items, cursor %v", n, x["timeline_next_cursor"])
	}
	pages := func(route string, limit int) (items []map[string]any, n int) {
		cursor := ""
		for {
			path := "/api/v1/incidents/" + id + "/" + route + "?limit=" + itoa(limit)
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			w, x := call(t, h, "GET", path, "", "")
			if w.Code != 200 {
				t.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
			for _, it := range x["items"].([]any) {
				items = append(items, it.(map[string]any))
			}
			n++
			c, _ := x["next_cursor"].(string)
			if c == "" {
				return items, n
			}
			cursor = c
		}
	}
	evs, n := pages("evidence", 5)
	keys := map[string]bool{}
	for _, e := range evs {
		keys[e["device_id"].(string)+"|"+e["observed_at"].(string)] = true
	}
	if len(evs) != 21 || len(keys) != 21 || n != 5 {
		t.Fatalf("evidence pages: %d items, %d distinct, %d pages", len(evs), len(keys), n)
	}
	if w, _ := call(t, h, "GET", "/api/v1/incidents/"+id+"/evidence?cursor=bm9wZQ", "", ""); w.Code != 400 {
		t.Errorf("bad cursor: %d", w.Code)
	}

	// The operator's ack with the version seen before the burst.
	w, x = call(t, h, "POST", "/api/v1/incidents/"+id+"/ack", seen, "")
	if w.Code != 200 || x["status"] != "acknowledged" || w.Header().Get("ETag") != `"2"` {
		t.Fatalf("ack with the version the operator saw, after 20 joins: %d %v", w.Code, x)
	}
	// Another dispatcher still holding version 1 did not see the ack: 409.
	w, x = call(t, h, "POST", "/api/v1/incidents/"+id+"/dispatch", seen, `{"unit_ids":["fire-1"]}`)
	if w.Code != 409 || x["error"].(map[string]any)["code"] != "version_conflict" {
		t.Fatalf("dispatch over a status change it did not see: %d %v", w.Code, x)
	}
	tl, _ := pages("timeline", 10)
	if len(tl) != 22 || tl[0]["action"] != "opened" || tl[21]["action"] != "acknowledged" {
		t.Fatalf("timeline pages: %d entries (%v ... %v)", len(tl), tl[0]["action"], tl[len(tl)-1]["action"])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
