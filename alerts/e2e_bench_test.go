package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"ioc/alerts"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/ingest"
)

// BenchmarkPublishToIncident measures, end to end, the time from the MQTT
// publish of an emergency signal (QoS 1, real Mosquitto) to the incident's
// event reaching a subscriber (ingest commit, evaluation, the incident
// transaction, NOTIFY). Each signal is far from the others, so each opens
// an incident. No background load: this is the idle-system latency, not
// the figure under 10,000 messages/s.
// e2e is a running pipeline: a real broker, ingest, the engine.
type e2e struct {
	br   *brokertest.Broker
	pool *pgxpool.Pool
	eng  *alerts.Engine
	pub  mqtt.Client
}

func startE2E(b *testing.B, ctx context.Context) *e2e {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("IOC_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	br := brokertest.Start(b)
	pool, _ := dbtest.New(b)
	eng, err := alerts.New(ctx, alerts.Config{NoSignals: true}, pool, log)
	if err != nil {
		b.Fatal(err)
	}
	icfg := ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute},
		BatchSize: 500, BatchWait: config.Default().IngestBatchWait.Std(), // as iocd
		Buffer: 5000, Writers: 2, TouchInterval: time.Second,
		Registerer: prometheus.NewRegistry(), OnCommit: eng.Observe, InTx: eng.InTx,
	}
	if os.Getenv("IOC_BENCH_QUEUED") != "" {
		// The path before InTx, for comparison: the signal's incident
		// is made by the evaluation loop, after ingest's commit.
		icfg.InTx = nil
	}
	ing, err := ingest.New(icfg, pool, log)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: br.URL, ClientID: fmt.Sprintf("e2e-%d", os.Getpid()), Prefix: "city"}, ing, log)
	if err != nil {
		b.Fatal(err)
	}
	for _, run := range []func(context.Context) error{ing.Run, sub.Run, eng.Run} {
		go run(ctx)
	}
	for !sub.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL).SetClientID("e2e-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	b.Cleanup(func() { pub.Disconnect(100) })
	return &e2e{br: br, pool: pool, eng: eng, pub: pub}
}

func BenchmarkPublishToIncident(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := startE2E(b, ctx)
	pub, eng, pool := e.pub, e.eng, e.pool
	events, stop := eng.Events().Subscribe()
	defer stop()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// 1 km apart on a grid over the city, never joining each other.
		lon, lat0 := 105.70+float64(i%30)*0.01, 20.90+float64(i/30%30)*0.01
		p, _ := json.Marshal(map[string]any{"ts": time.Now().Format(time.RFC3339Nano), "lon": lon, "lat": lat0,
			"type": "medical", "priority": 2, "channel": "call_115", "id": fmt.Sprintf("e2e-%d-%d", b.N, i)})
		start := time.Now()
		pub.Publish("city/emergency/cc115-bench", 1, false, p)
		select {
		case <-events:
			lat = append(lat, time.Since(start))
		case <-time.After(10 * time.Second):
			b.Fatalf("no incident for signal %d", i)
		}
		if i%900 == 899 { // the grid is full: clear it
			pool.Exec(ctx, `UPDATE incidents SET status = 'resolved'`)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
