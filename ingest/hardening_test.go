package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/ingest"
)

// direct runs an ingester on pool with cfg's defaults filled, fed by
// Submit; acked counts acknowledgements.
type direct struct {
	ing   *ingest.Ingester
	pool  *pgxpool.Pool
	ctx   context.Context
	acked atomic.Int64
}

func baseConfig() ingest.Config {
	return ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: time.Hour, FutureSkew: time.Minute},
		BatchSize: 100, Buffer: 1000, Writers: 2, TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
	}
}

func runDirect(t *testing.T, pool *pgxpool.Pool, cfg ingest.Config) *direct {
	t.Helper()
	ing, err := ingest.New(cfg, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingester stopped with %v", err)
		}
	})
	return &direct{ing: ing, pool: pool, ctx: ctx}
}

func (d *direct) submit(t *testing.T, topic, payload string, dup bool) {
	t.Helper()
	if err := d.ing.Submit(d.ctx, topic, []byte(payload), dup, func() { d.acked.Add(1) }); err != nil {
		t.Fatal(err)
	}
}

func (d *direct) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return countRows(t, d.pool, sql, args...)
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// runSubscriber runs sub until the test ends.
func runSubscriber(t *testing.T, sub *ingest.Subscriber) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func reading(id string) string {
	return fmt.Sprintf(`{"ts":%q,"lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2,"id":%q}`,
		time.Now().UTC().Format(time.RFC3339Nano), id)
}

// Finding 7: a database that refuses every write for a reason of its own
// (here a column renamed away, as in a half-done upgrade; a revoked
// INSERT gives the same class 42) is a server fault, not bad data:
// nothing is acknowledged or rejected while it lasts, Healthy reports it,
// and once the schema is right everything is stored exactly once.
func TestServerFaultIsRetriedNotRejected(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE traffic_readings RENAME COLUMN volume TO volume_gone`); err != nil {
		t.Fatal(err)
	}
	d := runDirect(t, pool, baseConfig())
	const n = 40
	for i := range n {
		d.submit(t, fmt.Sprintf("city/traffic/S-%d", i%7), reading(fmt.Sprint("m", i)), false)
	}
	m := d.ing.Metrics()
	waitFor(t, "a server fault counted", func() bool {
		return testutil.ToFloat64(m.WriteErrors.WithLabelValues("server_fault")) >= 2
	})
	if d.ing.Healthy() == nil {
		t.Error("Healthy() = nil while every write fails")
	}
	if got := d.acked.Load(); got != 0 {
		t.Errorf("%d messages acknowledged while nothing could be stored", got)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects`); got != 0 {
		t.Errorf("%d rejections stored for a server fault", got)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE traffic_readings RENAME COLUMN volume_gone TO volume`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all acknowledged", func() bool { return d.acked.Load() == n })
	if got := d.count(t, `SELECT count(*) FROM traffic_readings`); got != n {
		t.Errorf("%d readings stored, want %d", got, n)
	}
	if got := d.count(t, `SELECT count(*) FROM (SELECT DISTINCT device_id, ts, msg_id FROM traffic_readings) x`); got != n {
		t.Errorf("%d distinct readings, want %d", got, n)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects`); got != 0 {
		t.Errorf("%d rejections stored", got)
	}
	if err := d.ing.Healthy(); err != nil {
		t.Errorf("Healthy() = %v after recovery", err)
	}
}

// Finding 8: a hook that panics on one device's signal does not kill the
// process; that message ends as an internal_error rejection (acknowledged
// once stored), the others of its batch are stored, and a redelivery of
// it does not loop.
func TestPanickingHookBecomesInternalError(t *testing.T) {
	pool, _ := dbtest.New(t)
	cfg := baseConfig()
	cfg.BatchWait = 50 * time.Millisecond // the signals share a batch
	cfg.InTx = func(ctx context.Context, tx pgx.Tx, obs []*ingest.Observation) (func(), error) {
		for _, o := range obs {
			if o.DeviceID == "C115-PANIC" {
				panic("hook bug on " + o.DeviceID)
			}
		}
		return nil, nil
	}
	d := runDirect(t, pool, cfg)
	bad := signal("p-1")
	for i, dev := range []string{"C115-A", "C115-B", "C115-PANIC", "C115-C", "C115-D"} {
		p := signal(fmt.Sprint("s", i))
		if dev == "C115-PANIC" {
			p = bad
		}
		d.submit(t, "city/emergency/"+dev, p, false)
	}
	waitFor(t, "5 acknowledged", func() bool { return d.acked.Load() == 5 })
	if got := d.count(t, `SELECT count(*) FROM emergency_signals WHERE device_id <> 'C115-PANIC'`); got != 4 {
		t.Errorf("%d good signals stored, want 4", got)
	}
	if got := d.count(t, `SELECT count(*) FROM emergency_signals WHERE device_id = 'C115-PANIC'`); got != 0 {
		t.Errorf("the panicking message's signal was stored %d times", got)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE device_id = 'C115-PANIC' AND reason = 'internal_error'`); got != 1 {
		t.Errorf("%d internal_error rejections, want 1", got)
	}
	// Redelivery (the broker resends it after a lost ack): acknowledged
	// again, the same one rejection.
	d.submit(t, "city/emergency/C115-PANIC", bad, true)
	waitFor(t, "redelivery acknowledged", func() bool { return d.acked.Load() == 6 })
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects`); got != 1 {
		t.Errorf("%d rejections after redelivery, want 1", got)
	}
	if got := testutil.ToFloat64(d.ing.Metrics().WriteErrors.WithLabelValues("panic")); got < 2 {
		t.Errorf("write_errors{class=panic} = %v, want >= 2", got)
	}
	// Still running: a plain reading goes through.
	d.submit(t, "city/traffic/S-1", reading("after"), false)
	waitFor(t, "reading after the panics", func() bool { return d.acked.Load() == 7 })
}

// A panic of an OnCommit consumer comes after the rows are stored: the
// messages are acknowledged, not rejected.
func TestPanickingOnCommitStillAcknowledges(t *testing.T) {
	pool, _ := dbtest.New(t)
	cfg := baseConfig()
	cfg.OnCommit = func([]*ingest.Observation) { panic("consumer bug") }
	d := runDirect(t, pool, cfg)
	d.submit(t, "city/traffic/S-1", reading("a"), false)
	waitFor(t, "acknowledged", func() bool { return d.acked.Load() == 1 })
	if got := d.count(t, `SELECT count(*) FROM traffic_readings`); got != 1 {
		t.Errorf("%d readings, want 1", got)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects`); got != 0 {
		t.Errorf("%d rejections, want 0", got)
	}
}

// Finding 10: with require_registered_devices, only devices an admin
// registered are stored; others are rejected as unknown_device, also
// their status messages; a registration made while running counts at once.
func TestRequireRegisteredDevices(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO devices (id, kind, first_seen, last_seen, registered_at)
		VALUES ('S-REG', 'traffic', now(), now(), now()), ('S-AUTO', 'traffic', now(), now(), NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.RequireRegistered = true
	d := runDirect(t, pool, cfg)
	d.submit(t, "city/traffic/S-REG", reading("1"), false)
	d.submit(t, "city/traffic/S-AUTO", reading("2"), false) // a row, but not registered
	d.submit(t, "city/traffic/S-INVENTED", reading("3"), false)
	d.submit(t, "city/status/S-INVENTED-2", `{"ts":"2026-01-01T00:00:00Z","online":true}`, false)
	waitFor(t, "4 acknowledged", func() bool { return d.acked.Load() == 4 })
	if got := d.count(t, `SELECT count(*) FROM traffic_readings`); got != 1 {
		t.Errorf("%d readings stored, want 1 (S-REG)", got)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE reason = 'unknown_device'`); got != 3 {
		t.Errorf("%d unknown_device rejections, want 3", got)
	}
	if got := d.count(t, `SELECT count(*) FROM devices WHERE id LIKE 'S-INVENTED%'`); got != 0 {
		t.Errorf("%d invented devices registered", got)
	}
	d.ing.Enroll("S-NEW", true, nil)
	d.submit(t, "city/traffic/S-NEW", reading("4"), false)
	waitFor(t, "5 acknowledged", func() bool { return d.acked.Load() == 5 })
	if got := d.count(t, `SELECT count(*) FROM traffic_readings WHERE device_id = 'S-NEW'`); got != 1 {
		t.Errorf("reading of a device registered at run time: %d rows, want 1", got)
	}
}

// Finding 10: ingest_rejects is pruned by age and by count, and the rows
// pruned are counted.
func TestPruneRejects(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO ingest_rejects (received_at, last_received_at, topic, reason, detail, payload, payload_size, digest)
		SELECT now() - i * interval '1 hour', now(), 'city/x/y', 'bad_json', 'x', '\x00', 1, sha256(i::text::bytea)
		FROM generate_series(0, 49) i`); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.RejectsMaxAge = 30*time.Hour + 30*time.Minute // keeps 0..30: 31 rows
	cfg.RejectsMaxRows = 10
	cfg.RejectsPruneEvery = time.Hour
	d := runDirect(t, pool, cfg)
	waitFor(t, "pruned at start", func() bool { return d.count(t, `SELECT count(*) FROM ingest_rejects`) == 10 })
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE received_at < now() - interval '9 hours 30 minutes'`); got != 0 {
		t.Errorf("%d old rows kept; the newest 10 should be", got)
	}
	if got := testutil.ToFloat64(d.ing.Metrics().RejectsPruned); got != 40 {
		t.Errorf("ioc_ingest_rejects_pruned_total = %v, want 40", got)
	}
}

// ownBroker is a Mosquitto with deploy/mosquitto.conf's settings plus
// extra lines, on a port the test may reuse after stopping it.
type ownBroker struct {
	url string
	cmd *exec.Cmd
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startOwnBroker(t *testing.T, port int, extra ...string) *ownBroker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	raw, err := os.ReadFile(brokertest.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "listener" {
			continue
		}
		lines = append(lines, line)
	}
	lines = append(lines, fmt.Sprintf("listener %d 127.0.0.1", port), "allow_anonymous true", "log_dest stderr")
	lines = append(lines, extra...)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	b := &ownBroker{url: fmt.Sprintf("tcp://127.0.0.1:%d", port), cmd: exec.Command(bin, "-c", conf)}
	if os.Getenv("IOC_TEST_LOG") == "1" {
		b.cmd.Stderr = os.Stderr
	}
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stop)
	waitFor(t, "broker listening", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return b
}

func (b *ownBroker) stop() {
	if b.cmd != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

// refusingSubscriptions is the broker configuration for a Mosquitto that
// answers every SUBSCRIBE with 0x80: its dynamic-security plugin with
// subscriptions denied by default. (Mosquitto 2.0's acl_file never
// refuses a subscription; it filters deliveries instead.)
func refusingSubscriptions(t *testing.T) []string {
	t.Helper()
	plugin := "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
	ctrl, err := exec.LookPath("mosquitto_ctrl")
	if _, serr := os.Stat(plugin); err != nil || serr != nil {
		t.Skip("mosquitto_ctrl or the dynamic-security plugin not installed")
	}
	dir := t.TempDir()
	// Started as root, the broker drops to the mosquitto user before it
	// reads its files: let it in.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	file := filepath.Join(dir, "dynsec.json")
	if out, err := exec.Command(ctrl, "dynsec", "init", file, "admin", "admin-test-password").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v %s", err, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	js["defaultACLAccess"] = map[string]bool{"publishClientSend": true, "publishClientReceive": true, "subscribe": false, "unsubscribe": true}
	raw, _ = json.Marshal(js)
	os.WriteFile(file, raw, 0o644)
	return []string{"plugin " + plugin, "plugin_opt_config_file " + file}
}

// Finding 7: a subscription the broker refuses (SUBACK 0x80) leaves the
// subscriber not ready (Connected false, Healthy an error) and is retried
// on the same connection; a broker that grants it gets telemetry flowing.
func TestRefusedSubscriptionIsRetried(t *testing.T) {
	port := freeTCPPort(t)
	b := startOwnBroker(t, port, refusingSubscriptions(t)...)
	pool, _ := dbtest.New(t)
	d := runDirect(t, pool, baseConfig())
	sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: b.url, ClientID: fmt.Sprintf("iocd-refused-%d", os.Getpid()), Prefix: "city",
		SubscribeTimeout: 2 * time.Second}, d.ing, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	runSubscriber(t, sub)
	m := d.ing.Metrics()
	waitFor(t, "two refused subscriptions", func() bool { return testutil.ToFloat64(m.SubscribeErrs) >= 2 })
	if got := testutil.ToFloat64(m.Reconnects); got != 1 {
		t.Errorf("%v connections: the retries should use the same one", got)
	}
	if sub.Connected() {
		t.Error("Connected() with the subscription refused")
	}
	if err := sub.Healthy(); err == nil || errors.Is(err, ingest.ErrNotConnected) {
		t.Errorf("Healthy() = %v, want a refused subscription", err)
	}
	// The same address, now a broker that grants subscriptions.
	b.stop()
	b = startOwnBroker(t, port)
	waitFor(t, "subscribed", sub.Connected)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url).SetClientID(fmt.Sprintf("pub-refused-%d", os.Getpid())))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	tok := pub.Publish("city/traffic/S-1", 1, false, reading("granted"))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "reading stored", func() bool { return d.count(t, `SELECT count(*) FROM traffic_readings`) == 1 })
	if err := sub.Healthy(); err != nil {
		t.Errorf("Healthy() = %v once subscribed", err)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Finding 5: with the database away and a broker that does not cap
// in-flight bytes, oversized and many large messages do not pile up in
// iocd: the held-bytes budget stops reading from the broker, and
// oversized payloads are cut to the 16 KiB a rejection keeps. When the
// database returns, every message is stored (here: as its rejection).
func TestLargeMessagesDoNotExhaustMemory(t *testing.T) {
	// The broker's own byte cap off, to show iocd's bound on its own.
	broker := brokertest.StartWith(t, brokertest.ConfigPath(), []string{"max_inflight_bytes 0"})
	pool, dbURL := dbtest.New(t)
	cc := pool.Config().ConnConfig
	target := fmt.Sprintf("%s:%d", cc.Host, cc.Port)
	px := dbtest.NewProxy(t, target)
	proxied, err := db.Open(context.Background(), strings.Replace(dbURL, target, px.Addr, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxied.Close)
	cfg := baseConfig()
	cfg.Buffer = 5000
	d := runDirect(t, proxied, cfg)
	const budget = 16 << 20
	sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: broker.URL, ClientID: fmt.Sprintf("iocd-mem-%d", os.Getpid()), Prefix: "city",
		MaxHeldBytes: budget}, d.ing, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	runSubscriber(t, sub)
	waitFor(t, "subscribed", sub.Connected)
	d.submit(t, "city/traffic/S-1", reading("warm-up"), false) // Run is past its start-up queries
	waitFor(t, "warm-up stored", func() bool { return d.acked.Load() == 1 })
	px.Down()

	oversized := []byte(`{"note":"` + strings.Repeat("x", 300<<10) + `"}`) // > 256 KiB: too_large
	large := []byte(`{"note":"` + strings.Repeat("y", 200<<10))            // under the limit, bad JSON
	const nOver, nLarge = 60, 400
	base := liveHeap()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(fmt.Sprintf("pub-mem-%d", os.Getpid())))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	for i := range nOver + nLarge {
		payload := large
		if i < nOver {
			payload = oversized
		}
		tok := pub.Publish(fmt.Sprintf("city/traffic/BIG-%d", i), 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	published := int64(nOver*len(oversized) + nLarge*len(large))
	var peak uint64
	for range 15 {
		peak = max(peak, liveHeap())
		time.Sleep(200 * time.Millisecond)
	}
	held := testutil.ToFloat64(d.ing.Metrics().HeldBytes)
	grown := int64(peak) - int64(base)
	t.Logf("published %d MB with the database away; heap %d MB -> peak %d MB (+%d MB); held %0.f MB (budget %d MB)",
		published>>20, base>>20, peak>>20, grown>>20, held/(1<<20), budget>>20)
	if held > budget {
		t.Errorf("held %v bytes, above the budget of %d", held, budget)
	}
	if grown > 3*budget {
		t.Errorf("heap grew by %d MB while %d MB were published: not bounded by the %d MB budget", grown>>20, published>>20, budget>>20)
	}
	px.Up(t)
	deadline := time.Now().Add(60 * time.Second)
	acked := func() int { return int(testutil.ToFloat64(d.ing.Metrics().Acked)) }
	for acked() != 1+nOver+nLarge && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := acked(); got != 1+nOver+nLarge {
		t.Fatalf("%d of %d acknowledged once the database is back; held %v bytes, buffer depth %v", got, 1+nOver+nLarge,
			testutil.ToFloat64(d.ing.Metrics().HeldBytes), testutil.ToFloat64(d.ing.Metrics().BufferDepth))
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE reason = 'too_large' AND length(payload) = 16384 AND payload_size = $1`, len(oversized)); got != nOver {
		t.Errorf("%d too_large rejections cut to 16 KiB with their full size, want %d", got, nOver)
	}
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE reason = 'bad_json'`); got != nLarge {
		t.Errorf("%d bad_json rejections, want %d", got, nLarge)
	}
}

// panickyWards stands in for a bug met while placing a message.
type panickyWards struct{}

func (panickyWards) Lookup(lon, lat float64) (string, bool) {
	if lon == 105.9 {
		panic("ward index bug")
	}
	return "00008", true
}

// Finding 8, before the writers: a panic while decoding or placing one
// message (outside input) costs that message, kept as internal_error,
// not the process.
func TestPanicWhileDecodingBecomesInternalError(t *testing.T) {
	pool, _ := dbtest.New(t)
	cfg := baseConfig()
	cfg.Wards = panickyWards{}
	d := runDirect(t, pool, cfg)
	d.submit(t, "city/traffic/S-BUG", strings.Replace(reading("bug"), "105.85", "105.9", 1), false)
	d.submit(t, "city/traffic/S-OK", reading("ok"), false)
	waitFor(t, "both acknowledged", func() bool { return d.acked.Load() == 2 })
	if got := d.count(t, `SELECT count(*) FROM ingest_rejects WHERE device_id = 'S-BUG' AND reason = 'internal_error'`); got != 1 {
		t.Errorf("%d internal_error rejections, want 1", got)
	}
	if got := d.count(t, `SELECT count(*) FROM traffic_readings WHERE device_id = 'S-OK' AND ward_code = '00008'`); got != 1 {
		t.Errorf("%d good readings, want 1", got)
	}
}
