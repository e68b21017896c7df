package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/alerts"
	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

// Two points in different Hanoi wards (Hoan Kiem lake, West Lake).
var (
	pointHome = [2]float64{105.8523, 21.0287}
	pointAway = [2]float64{105.8190, 21.0580}
)

// wsApp is a running iocd with its HTTP handler on a real port.
type wsApp struct {
	*runningApp
	url  string
	env  *routeEnv
	home string // ward codes of pointHome and pointAway
	away string
}

func startWS(t *testing.T, dbURL, brokerURL, clientID string, opts ...func(*config.Config)) *wsApp {
	t.Helper()
	ra := runApp(t, dbURL, brokerURL, clientID, opts...)
	ts := httptest.NewServer(ra.h)
	t.Cleanup(ts.Close)
	pool := ra.app.pool
	env := &routeEnv{app: ra.app, h: ra.h, store: authStore(pool), ctx: context.Background()}
	w := &wsApp{runningApp: ra, url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws", env: env}
	var ok1, ok2 bool
	w.home, ok1 = ra.app.geo.Wards().Lookup(pointHome[0], pointHome[1])
	w.away, ok2 = ra.app.geo.Wards().Lookup(pointAway[0], pointAway[1])
	if !ok1 || !ok2 || w.home == w.away {
		t.Fatal("test points are not in two wards")
	}
	deadline := time.Now().Add(10 * time.Second)
	for ra.app.streams.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("streams never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// open makes an incident by hand at p.
func (w *wsApp) open(t *testing.T, p [2]float64, sev string) *alerts.Incident {
	t.Helper()
	ward, _ := w.app.geo.Wards().Lookup(p[0], p[1])
	x, err := w.app.alerts.Store().Open(context.Background(), alerts.Manual{Kind: "accident", Severity: sev, Title: "test",
		Lon: p[0], Lat: p[1], Ward: ward}, "test", func(context.Context, pgx.Tx, string, map[string]any) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// wsClient is a test websocket client collecting frames.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan map[string]any
	closed chan int // the close code
}

func dialWS(t *testing.T, url, token string) *wsClient {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, code)
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan map[string]any, 100000), closed: make(chan int, 1)}
	go func() {
		for {
			_, raw, err := conn.ReadMessage()
			if err != nil {
				code := -1
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				c.closed <- code
				close(c.frames)
				return
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			c.frames <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame of the type (skipping heartbeats and
// others), failing after d.
func (c *wsClient) next(typ string, d time.Duration) map[string]any {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("socket closed waiting for %s", typ)
			}
			if m["type"] == typ {
				return m
			}
			if m["type"] == "error" {
				c.t.Fatalf("error frame waiting for %s: %v", typ, m)
			}
		case <-timeout:
			c.t.Fatalf("no %s frame within %v", typ, d)
		}
	}
}

// incidentIDs of a snapshot.
func snapshotIDs(m map[string]any) map[string]bool {
	out := map[string]bool{}
	xs, _ := m["incidents"].([]any)
	for _, x := range xs {
		out[x.(map[string]any)["id"].(string)] = true
	}
	return out
}

func seqOf(m map[string]any) int64 { f, _ := m["seq"].(float64); return int64(f) }

func incidentID(m map[string]any) string {
	x, _ := m["incident"].(map[string]any)
	id, _ := x["id"].(string)
	return id
}

func TestStreamsFiltersScopeAndDeltas(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-f-%d", os.Getpid()))
	homeMinor := w.open(t, pointHome, "minor")
	awaySevere := w.open(t, pointAway, "severe")

	city := w.env.session(t, "ws-city", "operator")
	scoped := w.env.session(t, "ws-scoped", "operator", w.home)

	cases := []struct {
		name  string
		token string
		sub   map[string]any
		want  []string
	}{
		{"city-wide", city, map[string]any{"type": "subscribe"}, []string{homeMinor.ID, awaySevere.ID}},
		{"one ward", city, map[string]any{"type": "subscribe", "wards": []string{w.away}}, []string{awaySevere.ID}},
		{"bbox", city, map[string]any{"type": "subscribe", "bbox": []float64{pointHome[0] - 0.005, pointHome[1] - 0.005, pointHome[0] + 0.005, pointHome[1] + 0.005}}, []string{homeMinor.ID}},
		{"min severity", city, map[string]any{"type": "subscribe", "min_severity": "severe"}, []string{awaySevere.ID}},
		{"ward scope", scoped, map[string]any{"type": "subscribe"}, []string{homeMinor.ID}},
		{"ward scope asks wider", scoped, map[string]any{"type": "subscribe", "wards": []string{w.home, w.away}}, []string{homeMinor.ID}},
	}
	clients := make([]*wsClient, len(cases))
	for i, c := range cases {
		cl := dialWS(t, w.url, c.token)
		cl.next("welcome", 5*time.Second)
		cl.send(c.sub)
		snap := cl.next("snapshot", 5*time.Second)
		got := snapshotIDs(snap)
		if len(got) != len(c.want) {
			t.Errorf("%s: snapshot %v, want %v", c.name, got, c.want)
		}
		for _, id := range c.want {
			if !got[id] {
				t.Errorf("%s: snapshot lacks %s", c.name, id)
			}
		}
		if snap["epoch"] == "" {
			t.Errorf("%s: snapshot without epoch", c.name)
		}
		clients[i] = cl
	}
	// Deltas follow the same filters.
	newHome := w.open(t, pointHome, "extreme")
	newAway := w.open(t, pointAway, "moderate")
	wantDelta := [][]string{{newHome.ID, newAway.ID}, {newAway.ID}, {newHome.ID}, {newHome.ID}, {newHome.ID}, {newHome.ID}}
	for i, cl := range clients {
		got := map[string]bool{}
		deadline := time.After(5 * time.Second)
		extra := time.After(time.Hour)
	collect:
		for {
			select {
			case m := <-cl.frames:
				if m["type"] == "incident" {
					got[incidentID(m)] = true
					if len(got) == len(wantDelta[i]) {
						extra = time.After(200 * time.Millisecond) // anything more is wrong
					}
				}
			case <-extra:
				break collect
			case <-deadline:
				break collect
			}
		}
		if len(got) != len(wantDelta[i]) {
			t.Errorf("%s: deltas %v, want %v", cases[i].name, got, wantDelta[i])
		}
		for _, id := range wantDelta[i] {
			if !got[id] {
				t.Errorf("%s: no delta for %s", cases[i].name, id)
			}
		}
	}
	// A new subscribe replaces the filter and sends the new view.
	cl := clients[1]
	cl.send(map[string]any{"type": "subscribe", "wards": []string{w.home}})
	snap := cl.next("snapshot", 5*time.Second)
	if ids := snapshotIDs(snap); !ids[homeMinor.ID] || !ids[newHome.ID] || ids[awaySevere.ID] {
		t.Errorf("after a new subscribe: %v", ids)
	}
	// Bad subscribes get a specific error and the socket stays open.
	for _, bad := range []string{`{"type":"subscribe","layers":["cats"]}`, `{"type":"subscribe","bbox":[1,2,3]}`,
		`{"type":"subscribe","min_severity":"huge"}`, `{"type":"subscribe","wards":["99999"]}`, `not json`, `{"type":"hello"}`} {
		cl.conn.WriteMessage(websocket.TextMessage, []byte(bad))
		m := cl.next("error", 3*time.Second)
		if m["code"] != "bad_request" || m["message"] == "" {
			t.Errorf("%s: %v", bad, m)
		}
	}
	clients[4].send(map[string]any{"type": "subscribe", "wards": []string{w.away}})
	if m := clients[4].next("error", 3*time.Second); m["code"] != "forbidden_ward" {
		t.Errorf("scoped user asking for another ward: %v", m)
	}
	// An unauthenticated handshake is refused before the upgrade.
	if _, resp, err := websocket.DefaultDialer.Dial(w.url, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("unauthenticated dial: %v %v", err, resp)
	}
}

// A client subscribing while incidents change gets each of them exactly
// once across snapshot and deltas, in seq order.
func TestStreamsSnapshotThenDeltasNoGap(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-g-%d", os.Getpid()))
	token := w.env.session(t, "ws-gap", "operator")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				w.open(t, pointHome, "moderate")
			}
		}
	}()
	type seen struct {
		snap   map[string]bool
		deltas []map[string]any
	}
	var mu sync.Mutex // guards results' deltas
	var results []seen
	for i := 0; i < 5; i++ {
		cl := dialWS(t, w.url, token)
		cl.send(map[string]any{"type": "subscribe"})
		snap := cl.next("snapshot", 5*time.Second)
		s := seen{snap: snapshotIDs(snap)}
		s.deltas = append(s.deltas, map[string]any{"seq": snap["seq"]})
		mu.Lock()
		results = append(results, s)
		mu.Unlock()
		go func(i int) {
			for m := range cl.frames {
				if m["type"] == "incident" {
					mu.Lock()
					results[i].deltas = append(results[i].deltas, m)
					mu.Unlock()
				}
			}
		}(i)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	var open int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM incidents`).Scan(&open)
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := range results {
		r := &results[i]
		ids := map[string]int{}
		for id := range r.snap {
			ids[id]++
		}
		prev := seqOf(r.deltas[0])
		for _, m := range r.deltas[1:] {
			if s := seqOf(m); s <= prev {
				t.Errorf("client %d: seq %d after %d", i, s, prev)
			} else {
				prev = s
			}
			ids[incidentID(m)]++
		}
		if len(ids) != open {
			t.Errorf("client %d: saw %d incidents, %d exist", i, len(ids), open)
		}
		for id, n := range ids {
			if n != 1 {
				t.Errorf("client %d: incident %s seen %d times", i, id, n)
			}
		}
	}
	if open < 10 {
		t.Errorf("only %d incidents opened during the test", open)
	}
}

func authStore(pool *pgxpool.Pool) *auth.Store {
	return auth.NewStore(pool, auth.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}, 2)
}
