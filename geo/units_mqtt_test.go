package geo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
	"ioc/geo"
	"ioc/ingest"
)

// TestNearestUnitsOverMQTT: responder units publish positions and status
// over a real Mosquitto; ingest stores them and hands each committed batch
// to Units.Observe (as iocd serve wires it); the nearest-unit ranking
// follows units moving and changing status, and units_latest holds them.
func TestNearestUnitsOverMQTT(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("IOC_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	pool, _ := dbtest.New(t)
	broker := brokertest.Start(t)
	wards, err := geo.LoadWards("../../shared/data/hanoi/wards.geojson")
	if err != nil {
		t.Fatal(err)
	}
	units := geo.NewUnits(pool, geo.NewWardIndex(wards), log)
	ing, err := ingest.New(ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute},
		BatchSize: 100, BatchWait: 10 * time.Millisecond, Buffer: 1000, Writers: 1,
		TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
		OnCommit: func(obs []*ingest.Observation) {
			for _, o := range obs {
				if o.Kind == ingest.KindUnit {
					units.Observe(geo.UnitPosition{ID: o.DeviceID, Kind: o.UnitKind, Status: o.Status, Lon: o.Lon, Lat: o.Lat, TS: o.TS})
				}
			}
		},
	}, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("geo-test-%d", os.Getpid())
	sub, err := ingest.NewSubscriber(ingest.MQTTConfig{URL: broker.URL, ClientID: id, Prefix: "city"}, ing, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { ing.Run(ctx); done <- struct{}{} }()
	go func() { sub.Run(ctx); done <- struct{}{} }()
	go func() { units.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done; <-done })
	wait(t, "subscriber", sub.Connected)
	time.Sleep(200 * time.Millisecond) // SUBACK

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(id + "-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })
	report := func(unit, kind, status string, lon, lat float64) {
		t.Helper()
		payload := fmt.Sprintf(`{"ts":%q,"lon":%v,"lat":%v,"kind":%q,"status":%q,"speed_kmh":20}`,
			time.Now().Format(time.RFC3339Nano), lon, lat, kind, status)
		if tok := pub.Publish("city/units/"+unit, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	lake := [2]float64{105.8524, 21.0287}
	nearest := func() string {
		n := units.NearestUnits(lake[0], lake[1], "ambulance", 1, nil, nil)
		if len(n) == 0 {
			return ""
		}
		return n[0].ID
	}

	report("AMB-1", "ambulance", "available", 105.8600, 21.0300)
	report("AMB-2", "ambulance", "available", 105.8300, 21.0400)
	wait(t, "AMB-1 nearest", func() bool { return nearest() == "AMB-1" })
	// AMB-2 drives to the lake.
	report("AMB-2", "ambulance", "available", 105.8530, 21.0292)
	wait(t, "AMB-2 nearest after moving", func() bool { return nearest() == "AMB-2" })
	// AMB-2 is dispatched: AMB-1 is the nearest available again.
	report("AMB-2", "ambulance", "dispatched", 105.8530, 21.0292)
	wait(t, "AMB-1 nearest after AMB-2 dispatched", func() bool { return nearest() == "AMB-1" })
	// AMB-1 goes out of service: none left.
	report("AMB-1", "ambulance", "out_of_service", 105.8600, 21.0300)
	wait(t, "no ambulance available", func() bool { return nearest() == "" })

	wait(t, "units_latest rows", func() bool {
		var n int
		pool.QueryRow(context.Background(), `SELECT count(*) FROM units_latest WHERE status IN ('dispatched', 'out_of_service')`).Scan(&n)
		return n == 2
	})
}

func wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
