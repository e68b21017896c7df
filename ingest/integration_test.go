package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/ingest"
)

var (
	clientSeq atomic.Int64
	started   = time.Now()
)

func testLogger() *slog.Logger {
	if os.Getenv("IOC_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type harness struct {
	pool *pgxpool.Pool
	ing  *ingest.Ingester
	sub  *ingest.Subscriber
	pub  mqtt.Client
}

// start runs an ingester and subscriber against a fresh database and the
// given broker, and a publisher client; adjust changes the subscriber's
// configuration.
func start(t *testing.T, brokerURL string, adjust ...func(*ingest.MQTTConfig)) *harness {
	t.Helper()
	pool, _ := dbtest.New(t)
	cfg := ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute},
		BatchSize: 500, BatchWait: 10 * time.Millisecond, Buffer: 5000, Writers: 2,
		TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
		// The corpus's time cases are relative to a fixed instant.
		Now: func() time.Time { return ingest.TestNow.Add(time.Since(started)) },
	}
	ing, err := ingest.New(cfg, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("iocd-test-%d-%d", os.Getpid(), clientSeq.Add(1))
	mcfg := ingest.MQTTConfig{URL: brokerURL, ClientID: id, Prefix: "city"}
	for _, o := range adjust {
		o(&mcfg)
	}
	sub, err := ingest.NewSubscriber(mcfg, ing, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { ing.Run(ctx); done <- struct{}{} }()
	go func() { sub.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	waitFor(t, "subscriber connected", func() bool { return sub.Connected() })
	time.Sleep(200 * time.Millisecond) // SUBACK

	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id + "-pub")
	pub := mqtt.NewClient(opts)
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })
	return &harness{pool: pool, ing: ing, sub: sub, pub: pub}
}

func (h *harness) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	tok := h.pub.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (h *harness) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return countRows(t, h.pool, sql, args...)
}

var waitFor = ingest.WaitFor

// written is how many telemetry-connection copies of emergency signals
// were written because their emergency twin came late (each is one more
// acknowledgement than the messages published).
func written(m *ingest.Metrics) float64 {
	return testutil.ToFloat64(m.Twins.WithLabelValues("written"))
}

// ts is a recent observation time on the test clock.
func ts() string {
	return ingest.TestNow.Add(time.Since(started) - time.Second).Format(time.RFC3339Nano)
}

func TestEachKindLandsOnce(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b.URL)
	msgs := []struct{ topic, payload, table string }{
		{"city/traffic/S-1", `{"ts":"%s","lat":21.0285,"lon":105.8542,"speed_kmh":32,"volume":12,"occupancy":0.4,"id":"t1"}`, "traffic_readings"},
		{"city/camera/CAM-1", `{"ts":"%s","lat":21.0301,"lon":105.8500,"event":"accident","confidence":0.92,"snapshot_url":"https://cams.example/1.jpg"}`, "camera_events"},
		{"city/emergency/C115-1", `{"ts":"%s","lat":21.0290,"lon":105.8510,"type":"medical","priority":2,"channel":"call_115","note":"Tai nạn xe máy"}`, "emergency_signals"},
		{"city/units/AMB-1", `{"ts":"%s","lat":21.0200,"lon":105.8400,"kind":"ambulance","status":"available","speed_kmh":0}`, "unit_positions"},
	}
	for _, m := range msgs {
		h.publish(t, m.topic, []byte(fmt.Sprintf(m.payload, ts())))
	}
	m := h.ing.Metrics()
	waitFor(t, "4 commits", func() bool { return testutil.ToFloat64(m.Committed) >= 4 })
	for _, msg := range msgs {
		dev := msg.topic[strings.LastIndexByte(msg.topic, '/')+1:]
		if n := h.count(t, "SELECT count(*) FROM "+msg.table+" WHERE device_id = $1 AND geom IS NOT NULL AND ST_SRID(geom) = 4326", dev); n != 1 {
			t.Errorf("%s: %d rows for %s, want 1", msg.table, n, dev)
		}
		if n := h.count(t, "SELECT count(*) FROM devices WHERE id = $1 AND online AND geom IS NOT NULL", dev); n != 1 {
			t.Errorf("device %s not registered", dev)
		}
	}
	var lon, lat float64
	h.pool.QueryRow(context.Background(), `SELECT ST_X(geom), ST_Y(geom) FROM camera_events`).Scan(&lon, &lat)
	if lon != 105.85 || lat != 21.0301 {
		t.Errorf("camera geometry = %v,%v", lon, lat)
	}
	var kind string
	h.pool.QueryRow(context.Background(), `SELECT kind FROM devices WHERE id = 'AMB-1'`).Scan(&kind)
	if kind != "unit" {
		t.Errorf("unit device kind = %q", kind)
	}

	// Status: a last will marks the device offline; its next reading brings it back.
	h.publish(t, "city/status/S-1", []byte(`{"ts":"2026-01-01T00:00:00Z","online":false}`))
	waitFor(t, "offline", func() bool { return h.count(t, "SELECT count(*) FROM devices WHERE id='S-1' AND NOT online") == 1 })
	h.publish(t, "city/traffic/S-1", []byte(fmt.Sprintf(`{"ts":"%s","lat":21.0285,"lon":105.8542,"speed_kmh":30,"volume":10,"occupancy":0.3}`, ts())))
	waitFor(t, "online again", func() bool { return h.count(t, "SELECT count(*) FROM devices WHERE id='S-1' AND online") == 1 })
	// An emergency signal's telemetry-connection copy is written (and
	// acknowledged) as well when its twin took more than a second, as on a
	// loaded machine: counted apart (ioc_ingest_emergency_twins_total).
	// The counter moves just after the commit the waits above saw.
	waitFor(t, "every message acknowledged", func() bool { return testutil.ToFloat64(m.Acked) >= 6+written(m) })
	if got, want := testutil.ToFloat64(m.Acked), 6+written(m); got != want {
		t.Errorf("acked %v messages, want %v", got, want)
	}
}

// Redelivered messages (same device and ts, or same id) make no second row,
// whether they arrive in one batch or later.
func TestRedeliveryIsIdempotent(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b.URL)
	at := ts()
	withID := fmt.Sprintf(`{"ts":"%s","lat":21.0285,"lon":105.8542,"speed_kmh":32,"volume":12,"occupancy":0.4,"id":"m-1"}`, at)
	noID := fmt.Sprintf(`{"ts":"%s","lat":21.0285,"lon":105.8542,"speed_kmh":32,"volume":12,"occupancy":0.4}`, at)
	for i := 0; i < 3; i++ {
		h.publish(t, "city/traffic/S-9", []byte(withID))
		h.publish(t, "city/traffic/S-9", []byte(noID))
	}
	m := h.ing.Metrics()
	waitFor(t, "6 acks", func() bool { return testutil.ToFloat64(m.Acked) == 6 })
	// Later, once the first copies are committed: the fallback path.
	h.publish(t, "city/traffic/S-9", []byte(withID))
	waitFor(t, "7 acks", func() bool { return testutil.ToFloat64(m.Acked) == 7 })
	if n := h.count(t, "SELECT count(*) FROM traffic_readings WHERE device_id = 'S-9'"); n != 2 {
		t.Fatalf("%d rows, want 2 (one with id m-1, one without)", n)
	}
	if got := testutil.ToFloat64(m.Committed) + testutil.ToFloat64(m.Duplicates); got != 7 {
		t.Fatalf("committed+duplicates = %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.Duplicates); got != 5 {
		t.Fatalf("duplicates = %v, want 5", got)
	}
}

// Every case of the hostile corpus, published over the real broker between
// valid messages, is stored as a rejection with its reason; the valid
// messages around them land untouched.
func TestBadInputOverMQTT(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b.URL)
	level := map[ingest.Kind]string{ingest.KindTraffic: "traffic", ingest.KindCamera: "camera",
		ingest.KindEmergency: "emergency", ingest.KindUnit: "units", ingest.KindStatus: "status"}
	good := `{"ts":"%s","lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2,"id":"g%d"}`
	var wants []want
	n := 0
	for i, c := range ingest.BadCases {
		topic := fmt.Sprintf("city/%s/BAD-%d", level[c.Kind], i)
		h.publish(t, topic, []byte(c.Payload))
		wants = append(wants, want{topic, c.Reason})
		h.publish(t, "city/traffic/GOOD", []byte(fmt.Sprintf(good, ts(), i)))
		n++
	}
	topics := map[string]string{
		"city/drones/D1":                          ingest.ReasonUnknownKind,
		"city/traffic/a/b":                        ingest.ReasonBadTopic,
		"city/traffic/" + strings.Repeat("x", 65): ingest.ReasonBadTopic,
		"city/traffic/bad$id":                     ingest.ReasonBadTopic,
		"city/weather":                            ingest.ReasonBadTopic,
	}
	for topic, reason := range topics {
		h.publish(t, topic, []byte(fmt.Sprintf(good, ts(), 999)))
		wants = append(wants, want{topic, reason})
	}
	total := len(wants) + n
	m := h.ing.Metrics()
	waitFor(t, "all acked", func() bool { return testutil.ToFloat64(m.Acked)-written(m) == float64(total) })

	for _, w := range wants {
		var reason, detail string
		err := h.pool.QueryRow(context.Background(),
			`SELECT reason, detail FROM ingest_rejects WHERE topic = $1`, w.topic).Scan(&reason, &detail)
		if err != nil {
			t.Errorf("%s: no rejection stored: %v", w.topic, err)
			continue
		}
		if reason != w.reason || detail == "" {
			t.Errorf("%s: stored %s (%s), want %s", w.topic, reason, detail, w.reason)
		}
	}
	if got := h.count(t, `SELECT count(*) FROM traffic_readings WHERE device_id = 'GOOD'`); got != n {
		t.Errorf("%d good readings stored, want %d", got, n)
	}
	// One row per refused message, except the array [1,2,3]: one per element.
	rows := len(wants) + 2
	if got := h.count(t, `SELECT count(*) FROM ingest_rejects`); got != rows {
		t.Errorf("%d rejections stored, want %d", got, rows)
	}
	// Large payloads are cut to 16 KiB, and their full size recorded.
	if got := h.count(t, `SELECT count(*) FROM ingest_rejects WHERE reason = 'too_large' AND length(payload) = 16384 AND payload_size > 256*1024`); got != 1 {
		t.Errorf("too_large payload not stored cut: %d", got)
	}
	var sum float64
	for _, reason := range reasons(wants) {
		sum += testutil.ToFloat64(m.Rejected.WithLabelValues(reason))
	}
	// A late twin written as well (all this test's emergency messages are
	// bad ones) is stored once but counted as a rejection again, as any
	// redelivery of a refused message is.
	if sum != float64(rows)+written(m) {
		t.Errorf("ioc_ingest_rejected_total sums to %v, want %d + %v late twins", sum, rows, written(m))
	}
}

type want struct{ topic, reason string }

func reasons(ws []want) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range ws {
		if !seen[w.reason] {
			seen[w.reason] = true
			out = append(out, w.reason)
		}
	}
	return out
}

// A message the database refuses (here: triggers raising a data exception,
// standing in for any value PostgreSQL will not take) must not block the
// messages around it: it is isolated, kept as an 'unstorable' rejection,
// or, if even that is refused, acknowledged and counted so ingest goes on.
func TestPoisonMessageDoesNotBlockIngest(t *testing.T) {
	b := brokertest.Start(t)
	h := start(t, b.URL)
	ctx := context.Background()
	for _, sql := range []string{
		`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF NEW.device_id LIKE 'POISON%' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22000'; END IF;
		   RETURN NEW;
		 END $$`,
		`CREATE TRIGGER refuse_poison BEFORE INSERT ON traffic_readings FOR EACH ROW EXECUTE FUNCTION refuse_poison()`,
		`CREATE FUNCTION refuse_poison_reject() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF NEW.device_id = 'POISON-2' OR NEW.topic LIKE '%POISON-3' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22000'; END IF;
		   RETURN NEW;
		 END $$`,
		`CREATE TRIGGER refuse_poison_reject BEFORE INSERT ON ingest_rejects FOR EACH ROW EXECUTE FUNCTION refuse_poison_reject()`,
	} {
		if _, err := h.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	h.pool.Reset() // drop cached plans made before the triggers
	good := `{"ts":"%s","lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2,"id":"%s"}`
	for i, dev := range []string{"OK-1", "POISON-1", "OK-2", "POISON-2", "OK-3", "POISON-3", "OK-4"} {
		h.publish(t, "city/traffic/"+dev, []byte(fmt.Sprintf(good, ts(), fmt.Sprint(i))))
	}
	m := h.ing.Metrics()
	waitFor(t, "all 7 acknowledged", func() bool { return testutil.ToFloat64(m.Acked) == 7 })
	if n := h.count(t, `SELECT count(*) FROM traffic_readings WHERE device_id LIKE 'OK-%'`); n != 4 {
		t.Errorf("%d good readings stored, want 4", n)
	}
	if n := h.count(t, `SELECT count(*) FROM ingest_rejects WHERE device_id = 'POISON-1' AND reason = 'unstorable'`); n != 1 {
		t.Errorf("POISON-1: %d unstorable rejections, want 1", n)
	}
	if n := h.count(t, `SELECT count(*) FROM ingest_rejects WHERE topic = 'city/traffic/POISON-2' AND device_id IS NULL AND reason = 'unstorable'`); n != 1 {
		t.Errorf("POISON-2: %d bare rejections, want 1", n)
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("dropped_unstorable")); got != 1 {
		t.Errorf("POISON-3: dropped_unstorable = %v, want 1", got)
	}
}
