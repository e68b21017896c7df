package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db/dbtest"
	"ioc/ingest"
)

func testLog() *slog.Logger {
	if os.Getenv("IOC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	e     *Engine
	pool  *pgxpool.Pool
	clock *clock
	ctx   context.Context
}

func newEnv(t *testing.T, pool *pgxpool.Pool) *env {
	t.Helper()
	if pool == nil {
		pool, _ = dbtest.New(t)
	}
	c := &clock{t: time.Now().Truncate(time.Millisecond)}
	e, err := New(context.Background(), Config{Geo: fakeGeo{}, Now: c.Now, NoSignals: true, Tick: time.Hour}, pool, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return &env{e: e, pool: pool, clock: c, ctx: context.Background()}
}

// start runs the engine until the test ends.
func (v *env) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// subscribe follows the engine's events once its listener knows where
// the log stands (until the test ends).
func (v *env) subscribe(t *testing.T) <-chan Event {
	t.Helper()
	sub, cancel := v.e.events.Subscribe()
	t.Cleanup(cancel)
	waitUntil(t, "event listener", func() bool {
		v.e.events.mu.Lock()
		defer v.e.events.mu.Unlock()
		return v.e.events.last >= 0
	})
	return sub
}

func (v *env) apply(t *testing.T, tr Trigger) string {
	t.Helper()
	id, _, err := v.e.store.Apply(v.ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (v *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := v.pool.QueryRow(v.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func trig(ev *evaluator, o *ingest.Observation) []Trigger { return run(ev, o) }

// A camera accident, a 115 call 60 m away and a congestion on the same
// street are one incident with three pieces of evidence; the same
// observations again add nothing.
func TestCorrelationAcrossSources(t *testing.T) {
	v := newEnv(t, nil)
	ev := compile(v.e.Rules(), fakeGeo{})
	now := v.clock.Now()
	cam := camera("cam-1", 0, "accident", 0.9, 105.8500, 21.0300)
	cam.TS = now
	call := &ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc115-hanoi", TS: now.Add(40 * time.Second), MsgID: "m2",
		Lon: 105.8505, Lat: 21.0303, Type: "medical", Priority: 2, Channel: "call_115", Note: "Tai nạn"}
	var all []Trigger
	all = append(all, trig(ev, cam)...)
	all = append(all, trig(ev, call)...)
	for m := 0; m <= 5; m++ {
		o := traffic("tfc-1", 0, 8, 0.8)
		o.TS, o.Lon, o.Lat = now.Add(time.Duration(m)*time.Minute), 105.8510, 21.0301
		all = append(all, trig(ev, o)...)
	}
	if len(all) != 3 {
		t.Fatalf("%d triggers", len(all))
	}
	ids := map[string]bool{}
	for _, tr := range all {
		ids[v.apply(t, tr)] = true
	}
	for _, tr := range all { // replay
		ids[v.apply(t, tr)] = true
	}
	if len(ids) != 1 {
		t.Fatalf("%d incidents, want 1", len(ids))
	}
	var id string
	for id = range ids {
	}
	x, err := v.e.store.Get(v.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Kind != "accident" || x.Severity != "severe" || len(x.Evidence) != 3 || x.Ward == nil || x.Ward.Code != "00004" || x.AutoResolve {
		t.Fatalf("incident: %+v", x)
	}
	kinds := map[string]bool{}
	for _, e := range x.Evidence {
		kinds[e.Kind] = true
	}
	if !kinds["camera"] || !kinds["emergency"] || !kinds["traffic"] {
		t.Fatalf("evidence kinds %v", kinds)
	}
	if len(x.Timeline) != 3 || x.Timeline[0].Action != "opened" || x.Timeline[1].Action != "evidence_added" {
		t.Fatalf("timeline %+v", x.Timeline)
	}
	if n := v.count(t, `SELECT count(*) FROM incident_events`); n != 3 {
		t.Fatalf("%d events, want 3 (opened, 2 updates)", n)
	}
	// Far away (2 km): a new incident.
	far := camera("cam-2", 0, "accident", 0.9, 105.87, 21.03)
	far.TS = now
	if id2 := v.apply(t, trig(ev, far)[0]); id2 == id {
		t.Fatal("an accident 2 km away joined")
	}
	// A fire next door is not compatible with an accident.
	fire := camera("cam-3", 0, "fire", 0.9, 105.8501, 21.0300)
	fire.TS = now
	if id3 := v.apply(t, trig(ev, fire)[0]); id3 == id {
		t.Fatal("a fire joined an accident")
	}
}

func TestLifecycleAndConcurrentOperators(t *testing.T) {
	v := newEnv(t, nil)
	ev := compile(v.e.Rules(), fakeGeo{})
	o := camera("cam-1", 0, "accident", 0.9, 105.85, 21.03)
	o.TS = v.clock.Now()
	id := v.apply(t, trig(ev, o)[0])
	act := func(c Change) (*Incident, error) { c.Actor = "op1"; return v.e.store.Act(v.ctx, id, c) }

	if _, err := act(Change{Action: "reopen", IfVersion: 1}); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("reopen of a new incident: %v", err)
	}
	// Two operators acknowledge version 1 at once: one wins, one gets a conflict.
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := act(Change{Action: "ack", IfVersion: 1})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrVersionConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 7 {
		t.Fatalf("wins %d conflicts %d", wins.Load(), conflicts.Load())
	}
	x, err := act(Change{Action: "dispatch", IfVersion: 2, UnitIDs: []string{"amb-1"}})
	if err != nil || x.Status != StatusDispatched || len(x.Units) != 1 || x.DispatchedAt == nil {
		t.Fatalf("dispatch: %v %+v", err, x)
	}
	if _, err := act(Change{Action: "ack", IfVersion: 3}); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("ack of a dispatched incident: %v", err)
	}
	// A comment leaves the version: it changes nothing an If-Match protects.
	x, err = act(Change{Action: "comment", Text: "xe cứu thương đang đến"})
	if err != nil || x.Version != 3 {
		t.Fatalf("comment: %v %+v", err, x)
	}
	x, err = act(Change{Action: "resolve", IfVersion: 3, Resolution: "handled", Note: "ok"})
	if err != nil || x.Status != StatusResolved || *x.Resolution != "handled" {
		t.Fatalf("resolve: %v %+v", err, x)
	}
	x, err = act(Change{Action: "reopen", IfVersion: 4})
	if err != nil || x.Status != StatusAcknowledged || x.Resolution != nil {
		t.Fatalf("reopen: %v %+v", err, x)
	}
	actions := []string{}
	for _, e := range x.Timeline {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	want := "[rule:camera-accident:opened op1:acknowledged op1:dispatched op1:commented op1:resolved op1:reopened]"
	if got := fmtSlice(actions); got != want {
		t.Fatalf("timeline %s, want %s", got, want)
	}
	if _, err := v.e.store.Act(v.ctx, "NOPE", Change{Action: "ack", IfVersion: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// Events: strictly increasing seq, one per change.
	evs, err := v.e.events.Since(v.ctx, 0, 0)
	if err != nil || len(evs) != 6 {
		t.Fatalf("events: %v %d", err, len(evs))
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if evs[0].Op != "opened" || evs[4].Op != "resolved" {
		t.Fatalf("ops %s %s", evs[0].Op, evs[4].Op)
	}
}

func fmtSlice(xs []string) string {
	b, _ := json.Marshal(xs)
	s := string(b)
	out := "["
	for i, x := range xs {
		if i > 0 {
			out += " "
		}
		out += x
	}
	_ = s
	return out + "]"
}

// Escalation with a controlled clock: an extreme incident nobody
// acknowledges escalates after 1 minute (and queues a notification); a
// severe one raised to extreme escalates again after another minute, up to
// max_steps; an acknowledged one never does.
func TestEscalation(t *testing.T) {
	v := newEnv(t, nil)
	ev := compile(v.e.Rules(), fakeGeo{})
	o := camera("cam-1", 0, "accident", 0.9, 105.85, 21.03) // severe
	o.TS = v.clock.Now()
	id := v.apply(t, trig(ev, o)[0])
	o2 := camera("cam-2", 0, "accident", 0.9, 105.95, 21.03)
	o2.TS = v.clock.Now()
	acked := v.apply(t, trig(ev, o2)[0])
	if _, err := v.e.store.Act(v.ctx, acked, Change{Action: "ack", Actor: "op", IfVersion: 1}); err != nil {
		t.Fatal(err)
	}
	outbox0 := v.count(t, `SELECT count(*) FROM alert_outbox`)
	v.clock.Add(2 * time.Minute)
	if n, err := v.e.store.Escalate(v.ctx); err != nil || n != 0 {
		t.Fatalf("escalated before 3 min: %d %v", n, err)
	}
	v.clock.Add(90 * time.Second)
	if n, err := v.e.store.Escalate(v.ctx); err != nil || n != 1 {
		t.Fatalf("escalate after 3.5 min: %d %v", n, err)
	}
	x, _ := v.e.store.Get(v.ctx, id)
	if x.Severity != "extreme" || x.EscalationLevel != 1 || x.Timeline[len(x.Timeline)-1].Action != "escalated" {
		t.Fatalf("after escalation: %+v", x)
	}
	if n := v.count(t, `SELECT count(*) FROM alert_outbox WHERE reason = 'escalated' AND incident_id = $1`, id); n != 1 {
		t.Fatalf("%d escalation notifications", n)
	}
	if n, _ := v.e.store.Escalate(v.ctx); n != 0 {
		t.Fatal("escalated twice at once")
	}
	v.clock.Add(61 * time.Second)
	if n, _ := v.e.store.Escalate(v.ctx); n != 1 {
		t.Fatal("second step (extreme, 1 min) missing")
	}
	v.clock.Add(time.Hour)
	if n, _ := v.e.store.Escalate(v.ctx); n != 0 {
		t.Fatal("escalated beyond max_steps")
	}
	if v.count(t, `SELECT count(*) FROM alert_outbox`)-outbox0 != 2 {
		t.Fatal("notifications")
	}
	if x, _ := v.e.store.Get(v.ctx, acked); x.EscalationLevel != 0 {
		t.Fatal("an acknowledged incident escalated")
	}
}

// A congestion resolves itself once its condition has cleared for
// clear_for; a people-joined one does not.
func TestConditionResolvesItself(t *testing.T) {
	v := newEnv(t, nil)
	ev := compile(v.e.Rules(), fakeGeo{})
	base := v.clock.Now().Add(-10 * time.Minute)
	var id string
	for m := 0; m <= 6; m++ {
		o := traffic("tfc-1", 0, 8, 0.8)
		o.TS = base.Add(time.Duration(m) * time.Minute)
		for _, tr := range trig(ev, o) {
			id = v.apply(t, tr)
		}
	}
	if id == "" {
		t.Fatal("no congestion")
	}
	if n, _ := v.e.store.ResolveCleared(v.ctx); n != 0 {
		t.Fatal("resolved while the condition holds")
	}
	o := traffic("tfc-1", 0, 45, 0.2)
	o.TS = base.Add(7 * time.Minute)
	for _, tr := range trig(ev, o) {
		v.apply(t, tr)
	}
	// clear_for is 3 min from the clearing reading (observation time).
	v.clock.t = o.TS.Add(2 * time.Minute)
	if n, _ := v.e.store.ResolveCleared(v.ctx); n != 0 {
		t.Fatal("resolved before clear_for")
	}
	v.clock.t = o.TS.Add(3*time.Minute + time.Second)
	if n, err := v.e.store.ResolveCleared(v.ctx); n != 1 || err != nil {
		t.Fatalf("not resolved after clear_for: %d %v", n, err)
	}
	x, _ := v.e.store.Get(v.ctx, id)
	if x.Status != StatusResolved || *x.Resolution != "handled" || x.Timeline[len(x.Timeline)-1].Actor != "rule:congestion" {
		t.Fatalf("%+v", x)
	}
}

// The notifier retries while the receiver is down and delivers everything
// once it is back; a receiver that never recovers dead-letters.
func TestNotifierRetriesThenDelivers(t *testing.T) {
	v := newEnv(t, nil)
	var fail atomic.Bool
	fail.Store(true)
	var got sync.Map
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if fail.Load() {
			http.Error(w, "down", 503)
			return
		}
		var p map[string]any
		json.NewDecoder(r.Body).Decode(&p)
		got.Store(r.Header.Get("Idempotency-Key"), p)
	}))
	defer srv.Close()
	v.e.cfg.WebhookURL = srv.URL
	n := v.e.notify
	n.Backoff, n.MaxBackoff, n.Poll = 10*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
	n.now = time.Now
	ev := compile(v.e.Rules(), fakeGeo{})
	for i := range 5 {
		o := camera("cam-"+string(rune('a'+i)), 0, "fire", 0.9, 105.80+float64(i)*0.02, 21.03)
		o.TS = v.clock.Now()
		v.apply(t, trig(ev, o)[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "retries", func() bool { return calls.Load() >= 10 })
	if k := v.count(t, `SELECT count(*) FROM alert_outbox WHERE state = 'pending' AND attempts >= 2`); k != 5 {
		t.Fatalf("%d pending with retries", k)
	}
	fail.Store(false)
	waitUntil(t, "delivery", func() bool { return v.count(t, `SELECT count(*) FROM alert_outbox WHERE state = 'sent'`) == 5 })
	k := 0
	got.Range(func(_, _ any) bool { k++; return true })
	if k != 5 {
		t.Fatalf("receiver got %d distinct notifications", k)
	}
	// Dead letter: a receiver that never recovers.
	fail.Store(true)
	o := camera("cam-z", 0, "fire", 0.9, 105.70, 21.03)
	o.TS = v.clock.Now()
	v.apply(t, trig(ev, o)[0])
	waitUntil(t, "dead letter", func() bool {
		var s string
		var a int
		v.pool.QueryRow(v.ctx, `SELECT state, attempts FROM alert_outbox ORDER BY id DESC LIMIT 1`).Scan(&s, &a)
		return s == "dead"
	})
}

// Through the engine's goroutines: observations handed to Observe become
// incidents, and subscribers see their events in order.
func TestEngineRunAndEvents(t *testing.T) {
	v := newEnv(t, nil)
	v.start(t)
	sub := v.subscribe(t)
	now := time.Now()
	var obs []*ingest.Observation
	for i := range 20 {
		obs = append(obs, &ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc115-hanoi", MsgID: "m" + string(rune('a'+i)),
			TS: now, Lon: 105.70 + float64(i)*0.01, Lat: 21.0, Type: "medical", Priority: 3, Channel: "call_115"})
	}
	v.e.Observe(obs)
	waitUntil(t, "20 incidents", func() bool { return v.count(t, `SELECT count(*) FROM incidents`) == 20 })
	var last int64
	for range 20 {
		select {
		case e := <-sub:
			if e.Seq <= last {
				t.Fatalf("seq %d after %d", e.Seq, last)
			}
			last = e.Seq
		case <-time.After(10 * time.Second):
			t.Fatal("events missing")
		}
	}
	v.e.Observe(obs) // redelivered
	waitUntil(t, "evaluated", func() bool { return v.e.applied.Load() >= 40 })
	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 20 {
		t.Fatalf("%d incidents after redelivery", n)
	}
}

// Silence: a device quiet for 5 intervals gets a device_offline incident
// (once), which resolves itself 2 min after it reports again.
func TestSilenceOpensAndResolves(t *testing.T) {
	v := newEnv(t, nil)
	now := v.clock.Now()
	v.e.started = now.Add(-time.Hour) // past the grace period
	if _, err := v.pool.Exec(v.ctx, `INSERT INTO devices (id, kind, geom, ward_code, first_seen, last_seen, interval_s)
		VALUES ('tfc-quiet', 'traffic', ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), '00004', $1, $1, 60),
		       ('tfc-fine', 'traffic', ST_SetSRID(ST_MakePoint(105.86, 21.03), 4326), '00004', $2, $2, 60)`,
		now.Add(-6*time.Minute), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := v.e.silence(v.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'device_offline'`); n != 1 {
		t.Fatalf("%d device_offline incidents, want 1", n)
	}
	v.pool.Exec(v.ctx, `UPDATE devices SET last_seen = $1 WHERE id = 'tfc-quiet'`, now)
	if err := v.e.silence(v.ctx); err != nil {
		t.Fatal(err)
	}
	v.clock.Add(time.Minute)
	if n, _ := v.e.store.ResolveCleared(v.ctx); n != 0 {
		t.Fatal("resolved before clear_for")
	}
	v.clock.Add(70 * time.Second)
	if n, err := v.e.store.ResolveCleared(v.ctx); n != 1 || err != nil {
		t.Fatalf("resolve: %d %v", n, err)
	}
}
