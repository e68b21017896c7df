package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/alerts"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/streams"
)

// A client that reconnects with since and epoch gets exactly the events it
// missed; too old a since, or another epoch, gets a reset and a snapshot.
func TestStreamsResumeAndReset(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-r-%d", os.Getpid()))
	token := w.env.session(t, "ws-resume", "operator")
	w.open(t, pointHome, "minor")
	cl := dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe"})
	snap := cl.next("snapshot", 5*time.Second)
	since, epoch := seqOf(snap), snap["epoch"].(string)
	cl.conn.Close()

	var missed []string
	for i := 0; i < 5; i++ {
		missed = append(missed, w.open(t, pointHome, "moderate").ID)
	}
	cl = dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe", "since": since, "epoch": epoch})
	for i, id := range missed {
		m := cl.next("incident", 5*time.Second)
		if incidentID(m) != id || seqOf(m) != since+int64(i)+1 {
			t.Fatalf("resumed event %d: %v, want %s at seq %d", i, m, id, since+int64(i)+1)
		}
	}
	// Nothing else: no snapshot, no doubled event.
	select {
	case m := <-cl.frames:
		if m["type"] != "heartbeat" {
			t.Errorf("after the missed events: %v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}
	cl.conn.Close()

	// Another epoch.
	cl = dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe", "since": since, "epoch": "some-other-log"})
	if m := cl.next("reset", 5*time.Second); m["reason"] != "epoch_changed" {
		t.Errorf("reset: %v", m)
	}
	if ids := snapshotIDs(cl.next("snapshot", 5*time.Second)); len(ids) != 6 {
		t.Errorf("snapshot after reset: %d incidents, want 6", len(ids))
	}
	cl.conn.Close()

	// Too old: the events after since were trimmed.
	pool.Exec(context.Background(), `DELETE FROM incident_events WHERE seq <= $1`, since+2)
	cl = dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe", "since": since, "epoch": epoch})
	if m := cl.next("reset", 5*time.Second); m["reason"] != "too_old" {
		t.Errorf("reset: %v", m)
	}
	cl.next("snapshot", 5*time.Second)
}

// A client that does not read is closed as a slow consumer; another on
// the same instance gets every event.
func TestStreamsSlowConsumer(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-s-%d", os.Getpid()), func(c *config.Config) { c.WSQueueBytes = 6 << 20 })
	token := w.env.session(t, "ws-slow", "operator")
	x := w.open(t, pointHome, "minor")

	// The slow one: a tiny receive buffer and no reading.
	d := *websocketDialer()
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}
	slow, _, err := d.Dial(w.url, authHeader(token))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.WriteJSON(map[string]any{"type": "subscribe"})
	good := dialWS(t, w.url, token)
	good.send(map[string]any{"type": "subscribe"})
	start := seqOf(good.next("snapshot", 5*time.Second))

	// Rounds of 200 events of ~20 KB each (4 MB), appended to the real
	// log as another instance's engine would (the gateway reads them from
	// there): the reading client takes each round in its stride, the one
	// that does not read falls behind by more than its queue.
	ctx := context.Background()
	next := start
	for round := 0; round < 8 && w.app.streams.Stats().SlowConsumerCloses == 0; round++ {
		appendEvents(t, pool, x.ID, 200, 20000)
		pool.Exec(ctx, `SELECT pg_notify('ioc_incident_events', (SELECT seq FROM incident_seq)::text)`)
		for i := 0; i < 200; i++ {
			m := good.next("incident", 20*time.Second)
			if next++; seqOf(m) != next {
				t.Fatalf("good client: seq %d, want %d", seqOf(m), next)
			}
		}
	}
	// The slow one was closed (the close frame cannot reach a client
	// that does not read; a client that reads late sees 4000
	// slow_consumer or the connection's end); the good one still runs.
	deadline := time.Now().Add(20 * time.Second)
	for st := w.app.streams.Stats(); st.Clients != 1 || st.SlowConsumerCloses != 1; st = w.app.streams.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("gateway: %+v, want the slow client closed as a slow consumer and the good one open", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	good.send(map[string]any{"type": "subscribe"})
	good.next("snapshot", 5*time.Second)
}

// Logging out closes that session's sockets with session_ended.
func TestStreamsLogoutClosesSocket(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-l-%d", os.Getpid()))
	token := w.env.session(t, "ws-logout", "operator")
	other := w.env.session(t, "ws-stays", "operator")
	cl := dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe"})
	cl.next("snapshot", 5*time.Second)
	stays := dialWS(t, w.url, other)
	stays.send(map[string]any{"type": "subscribe"})
	stays.next("snapshot", 5*time.Second)
	if r := w.env.send("POST", "/api/v1/logout", token, ""); r.Code/100 != 2 {
		t.Fatalf("logout: %d %s", r.Code, r.Body)
	}
	select {
	case code := <-cl.closed:
		if code != streams.CloseSessionEnded {
			t.Errorf("closed with %d, want %d", code, streams.CloseSessionEnded)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("socket still open 5 s after logout")
	}
	select {
	case code := <-stays.closed:
		t.Errorf("another user's socket closed too (%d)", code)
	case <-time.After(500 * time.Millisecond):
	}
}

// The LISTEN connection killed: readiness says so, clients are told, and
// after it is back every client has every incident event exactly once.
func TestStreamsListenKilled(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-k-%d", os.Getpid()))
	token := w.env.session(t, "ws-kill", "operator")
	cl := dialWS(t, w.url, token)
	cl.send(map[string]any{"type": "subscribe"})
	start := seqOf(cl.next("snapshot", 5*time.Second))
	ctx := context.Background()
	var opened []string
	for round := 0; round < 2; round++ {
		for !w.app.alerts.Events().Listening() {
			time.Sleep(20 * time.Millisecond)
		}
		var killed int
		if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, alerts.ListenAppName).Scan(&killed); err != nil || killed == 0 {
			rows, _ := pool.Query(ctx, `SELECT datname, application_name, state, query FROM pg_stat_activity`)
			for rows.Next() {
				var a, b, c, d *string
				rows.Scan(&a, &b, &c, &d)
				t.Logf("%v %v %v %v", deref(a), deref(b), deref(c), deref(d))
			}
			t.Fatalf("killing the LISTEN backend: %v (%d killed)", err, killed)
		}
		// Events committed by another instance while this one's listener
		// is down: in the log, announced to no one here.
		x := w.open(t, pointHome, "moderate") // offered locally at once
		opened = append(opened, x.ID)
		appendEvents(t, pool, x.ID, 3, 0)
		for i := 0; i < 3; i++ {
			opened = append(opened, x.ID)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for w.app.streams.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the event source never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, id := range opened {
		m := cl.next("incident", 30*time.Second)
		if seqOf(m) != start+int64(i)+1 || incidentID(m) != id {
			t.Fatalf("event %d: seq %d of %s, want %d of %s", i, seqOf(m), incidentID(m), start+int64(i)+1, id)
		}
	}
	select {
	case m := <-cl.frames:
		if m["type"] == "incident" {
			t.Errorf("an event more than were committed: %v", m)
		}
	case <-time.After(1500 * time.Millisecond):
	}
}

// appendEvents appends n events of incident id to the log as another
// instance's engine would (seq taken under the same row lock), padding
// each by pad bytes. It announces nothing.
func appendEvents(t *testing.T, pool *pgxpool.Pool, id string, n, pad int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `WITH s AS (UPDATE incident_seq SET seq = seq + $1 RETURNING seq - $1 AS base)
		INSERT INTO incident_events (seq, at, incident_id, op, incident)
		SELECT base + g, now(), $2, 'updated', (SELECT incident FROM incident_events WHERE incident_id = $2 LIMIT 1)
			|| jsonb_build_object('title', repeat('x', $3)) FROM s, generate_series(1, $1) g`, n, id, pad)
	if err != nil {
		t.Fatal(err)
	}
}

func websocketDialer() *websocket.Dialer { d := *websocket.DefaultDialer; return &d }

func authHeader(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// startRedis runs a redis-server of the test's own on a free port, so the
// test can stop and start it.
func startRedis(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return nil
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
