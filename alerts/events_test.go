package alerts

import (
	"encoding/json"
	"testing"
	"time"
)

// Offer delivers only the next event in order: one ahead of it waits for
// the listener (NOTIFY or the log), one already delivered is not sent
// twice.
func TestOfferKeepsOrder(t *testing.T) {
	e := NewEvents(nil, testLog())
	sub, cancel := e.Subscribe()
	defer cancel()
	if e.Offer(Event{Seq: 1}) {
		t.Fatal("delivered before the listener knew where the log stands")
	}
	e.last = 5
	steps := []struct {
		seq       int64
		delivered bool
	}{{7, false}, {6, true}, {6, true}, {5, true}, {7, true}, {9, false}}
	for _, s := range steps {
		if got := e.Offer(Event{Seq: s.seq}); got != s.delivered {
			t.Fatalf("Offer(%d) = %v, want %v", s.seq, got, s.delivered)
		}
	}
	close := func() []int64 {
		var got []int64
		for len(sub) > 0 {
			got = append(got, (<-sub).Seq)
		}
		return got
	}
	if got := close(); len(got) != 2 || got[0] != 6 || got[1] != 7 {
		t.Fatalf("subscriber got %v, want [6 7]", got)
	}
}

func TestParseNotification(t *testing.T) {
	body, _ := json.Marshal(Event{Op: "opened", At: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), Incident: json.RawMessage(`{"id":"X"}`)})
	ev, ok := parseNotification("42 " + string(body))
	if !ok || ev.Seq != 42 || ev.Op != "opened" || string(ev.Incident) != `{"id":"X"}` || ev.At.Hour() != 8 {
		t.Fatalf("parsed %+v %v", ev, ok)
	}
	for _, p := range []string{"42", "", "x " + string(body), "42 {", "-1 " + string(body), "0 {}"} {
		if _, ok := parseNotification(p); ok {
			t.Fatalf("%q parsed as an event", p)
		}
	}
}
