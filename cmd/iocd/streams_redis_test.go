package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

// Two instances share Redis and PostgreSQL, each ingesting its own topics:
// a client of one sees the incidents and unit moves of the other, and
// when Redis stops and comes back the fan-out recovers by itself.
func TestStreamsTwoInstancesOverRedis(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, dbURL := dbtest.New(t)
	port := freePort(t)
	redisProc := startRedis(t, port)
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	withPrefix := func(p string) func(*config.Config) {
		return func(c *config.Config) { c.RedisURL, c.MQTTTopicPrefix = redisURL, p }
	}
	a := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-a-%d", os.Getpid()), withPrefix("citya"))
	bb := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-b-%d", os.Getpid()), withPrefix("cityb"))
	token := bb.env.session(t, "ws-two", "operator")
	cl := dialWS(t, bb.url, token)
	cl.send(map[string]any{"type": "subscribe", "layers": []string{"incidents", "units"}})
	cl.next("snapshot", 5*time.Second)
	waitFanout(t, a)
	waitFanout(t, bb)

	pub := newPublisher(t, b.URL)
	moveUnit := func(id string, lon float64) {
		pub.send(t, "citya/units/"+id, map[string]any{"ts": rfc(time.Now()), "lon": lon, "lat": pointHome[1],
			"kind": "ambulance", "status": "available"})
	}
	waitUnit := func(id string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-cl.frames:
				if !ok {
					t.Fatal("socket closed")
				}
				if u, _ := m["unit"].(map[string]any); m["type"] == "unit" && u["id"] == id {
					return
				}
			case <-deadline:
				t.Fatalf("unit %s ingested by the other instance never arrived", id)
			}
		}
	}
	moveUnit("amb-a1", pointHome[0])
	waitUnit("amb-a1")
	x := a.open(t, pointHome, "severe")
	if m := cl.next("incident", 5*time.Second); incidentID(m) != x.ID {
		t.Errorf("incident from the other instance: %v", m)
	}

	// Redis stops: readiness says so, incidents still flow (PostgreSQL).
	redisProc.Process.Kill()
	redisProc.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for bb.app.streams.FanoutReady() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the lost Redis was never noticed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := httptest.NewRecorder()
	bb.app.ready(w, httptest.NewRequest("GET", "/readyz", nil))
	if body := w.Body.String(); !strings.Contains(body, `"streams_fanout":"redis_down"`) {
		t.Errorf("readyz while Redis is down: %s", body)
	}
	y := a.open(t, pointAway, "minor")
	if m := cl.next("incident", 5*time.Second); incidentID(m) != y.ID {
		t.Errorf("incident while Redis is down: %v", m)
	}
	// Redis back: the fan-out recovers by itself.
	startRedis(t, port)
	waitFanout(t, a)
	waitFanout(t, bb)
	time.Sleep(300 * time.Millisecond)
	moveUnit("amb-a2", pointHome[0]+0.001)
	waitUnit("amb-a2")
}

func waitFanout(t *testing.T, w *wsApp) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for w.app.streams.FanoutReady() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis fan-out never came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
