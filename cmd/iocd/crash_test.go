package main

// These tests run iocd as a child process against a real Mosquitto
// (deploy/mosquitto.conf) and PostgreSQL, and check the delivery promise
// of CONTRACT section 1 under the failures that matter: the service
// killed at any instant, and the database going away.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

var (
	buildOnce sync.Once
	iocdBin   string
	buildErr  error
)

// buildIocd compiles this command once per test binary.
func buildIocd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iocd-bin")
		if err != nil {
			buildErr = err
			return
		}
		iocdBin = filepath.Join(dir, "iocd")
		out, err := exec.Command("go", "build", "-o", iocdBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return iocdBin
}

// child is a running iocd.
type child struct {
	cmd         *exec.Cmd
	metricsAddr string
	stderr      *strings.Builder
	mu          sync.Mutex
}

func startIocd(t *testing.T, env []string, metricsAddr string) *child {
	t.Helper()
	c := &child{metricsAddr: metricsAddr, stderr: &strings.Builder{}}
	c.cmd = exec.Command(buildIocd(t), "serve")
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, _ := c.cmd.StderrPipe()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if os.Getenv("IOC_TEST_LOG") == "1" {
				fmt.Fprintln(os.Stderr, "iocd:", sc.Text())
			}
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.metric("ioc_mqtt_connected"); err == nil {
			if v, _ := c.metric("ioc_mqtt_connected"); v == 1 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.kill()
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("iocd did not become ready:\n%s", c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// metric reads one unlabelled series from iocd's metrics listener.
func (c *child) metric(name string) (float64, error) {
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// rssMB is the child's resident memory.
func (c *child) rssMB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// publisher sends n traffic readings with unique ids at about rate/s over
// QoS 1 and returns when the broker has acknowledged every one.
func publish(t *testing.T, brokerURL string, n, rate int, runID string, progress *atomic.Int64) error {
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("pub-" + runID).SetAutoReconnect(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return fmt.Errorf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	window := make(chan mqtt.Token, 500)
	errc := make(chan error, 1)
	go func() {
		for tok := range window {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				select {
				case errc <- fmt.Errorf("publish not acknowledged: %v", tok.Error()):
				default:
				}
			}
			progress.Add(1)
		}
		close(errc)
	}()
	tick := time.Second / time.Duration(rate)
	next := time.Now()
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("S-%03d", i%300)
		lon, lat := 105.80+float64(i%300)*0.0003, 21.00+float64(i%300)*0.0002
		payload := fmt.Sprintf(`{"ts":%d,"lat":%.6f,"lon":%.6f,"speed_kmh":%d,"volume":%d,"occupancy":0.3,"id":"%s-%d"}`,
			time.Now().UnixMilli(), lat, lon, 20+i%40, i%30, runID, i)
		window <- c.Publish("city/traffic/"+dev, 1, false, payload)
		next = next.Add(tick)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	close(window)
	return <-errc
}

func waitStored(t *testing.T, pool *pgxpool.Pool, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	var got int
	for time.Now().Before(deadline) {
		pool.QueryRow(context.Background(), `SELECT count(*) FROM traffic_readings`).Scan(&got)
		if got >= n {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	return got
}

func checkExactlyOnce(t *testing.T, pool *pgxpool.Pool, runID string, n int) {
	t.Helper()
	var rows, distinct, rejects int
	pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT msg_id) FROM traffic_readings`).Scan(&rows, &distinct)
	pool.QueryRow(context.Background(), `SELECT count(*) FROM ingest_rejects`).Scan(&rejects)
	if rows != n || distinct != n {
		t.Fatalf("stored %d rows with %d distinct ids, want exactly %d of each", rows, distinct, n)
	}
	if rejects != 0 {
		t.Fatalf("%d rejections for valid messages", rejects)
	}
	// Every published id is there (not just the right count).
	var missing int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM generate_series(0, $1 - 1) i
		WHERE NOT EXISTS (SELECT 1 FROM traffic_readings WHERE msg_id = $2 || '-' || i)`, n, runID).Scan(&missing)
	if missing != 0 {
		t.Fatalf("%d published messages missing", missing)
	}
}

func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts iocd as a child process")
	}
	broker := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	metrics := freeAddr(t)
	env := []string{
		"IOC_DATABASE_URL=" + dbURL, "IOC_MQTT_URL=" + broker.URL, "IOC_MQTT_CLIENT_ID=iocd-crash-test",
		"IOC_HTTP_ADDR=" + freeAddr(t), "IOC_METRICS_ADDR=" + metrics, "IOC_LOG_LEVEL=warn",
	}
	const n, rate = 15000, 3000
	runID := fmt.Sprintf("crash%d", time.Now().UnixNano())

	iocd := startIocd(t, env, metrics)
	var sent atomic.Int64
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(t, broker.URL, n, rate, runID, &sent) }()

	// Kill mid-stream twice, at different points, and restart each time.
	kills := 0
	for _, at := range []int64{n / 5, n / 2} {
		for sent.Load() < at {
			time.Sleep(5 * time.Millisecond)
		}
		committed, err := iocd.metric("ioc_ingest_committed_total")
		if err != nil {
			t.Logf("metrics: %v", err)
		}
		iocd.kill()
		kills++
		t.Logf("SIGKILL %d at %d published, %v committed by this process", kills, sent.Load(), committed)
		time.Sleep(300 * time.Millisecond)
		iocd = startIocd(t, env, metrics)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	got := waitStored(t, pool, n, 60*time.Second)
	iocd.kill()
	t.Logf("published %d, stored %d after %d kills", n, got, kills)
	checkExactlyOnce(t, pool, runID, n)
}

func TestDatabaseOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts iocd as a child process")
	}
	broker := brokertest.Start(t)
	pool, dbURL := dbtest.New(t)
	cfg := pool.Config().ConnConfig
	px := dbtest.NewProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxied := strings.Replace(dbURL, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), px.Addr, 1)
	metrics := freeAddr(t)
	env := []string{
		"IOC_DATABASE_URL=" + proxied, "IOC_MQTT_URL=" + broker.URL, "IOC_MQTT_CLIENT_ID=iocd-outage-test",
		"IOC_HTTP_ADDR=" + freeAddr(t), "IOC_METRICS_ADDR=" + metrics, "IOC_LOG_LEVEL=error",
		"IOC_INGEST_BUFFER=5000",
	}
	const n, rate = 40000, 2500 // 16 s of traffic; the database is away for 10 s of it
	runID := fmt.Sprintf("outage%d", time.Now().UnixNano())
	iocd := startIocd(t, env, metrics)
	defer iocd.kill()
	baseRSS := iocd.rssMB()

	var sent atomic.Int64
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(t, broker.URL, n, rate, runID, &sent) }()
	for sent.Load() < n/8 {
		time.Sleep(5 * time.Millisecond)
	}
	px.Down()
	t.Logf("database cut at %d published", sent.Load())
	var maxDepth, maxRSS float64
	outage := time.Now()
	for time.Since(outage) < 10*time.Second {
		if d, err := iocd.metric("ioc_ingest_buffer_depth"); err == nil {
			maxDepth = max(maxDepth, d)
		}
		maxRSS = max(maxRSS, iocd.rssMB())
		time.Sleep(100 * time.Millisecond)
	}
	stuck, _ := iocd.metric("ioc_ingest_committed_total")
	px.Up(t)
	t.Logf("database back at %d published; %v committed before; buffer depth peaked at %v; RSS %0.f MB -> peak %.0f MB",
		sent.Load(), stuck, maxDepth, baseRSS, maxRSS)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	got := waitStored(t, pool, n, 90*time.Second)
	t.Logf("published %d, stored %d", n, got)
	checkExactlyOnce(t, pool, runID, n)

	// Bounded memory: while the database was away iocd held no more
	// messages than the broker's in-flight window (deploy/mosquitto.conf:
	// max_inflight_messages 10000), however many the broker queued.
	if maxDepth > 10000 {
		t.Errorf("buffer depth reached %v, above the broker's in-flight window of 10000", maxDepth)
	}
	if maxDepth < 1000 {
		t.Errorf("buffer depth only reached %v: the outage did not hold messages back (test not exercising the outage)", maxDepth)
	}
	if maxRSS > baseRSS+150 {
		t.Errorf("RSS grew from %.0f to %.0f MB during the outage", baseRSS, maxRSS)
	}
}
