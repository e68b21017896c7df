package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkPublishToIncidentUnderLoad is issue 4's latency figure: from the
// MQTT publish of an emergency signal to its incident event, while a
// background publisher loads the same broker with traffic readings at
// IOC_BENCH_LOAD_RATE messages/s (default 10,000). In the same run it
// measures the broker alone at the same rate: the same load into a prefix
// nothing ingests, and probes timed from publish to a bare subscriber.
// Reports p50/p99 of both, in ms.
//
//	go test ./alerts -run '^$' -bench UnderLoad -benchtime 400x -count 3
func BenchmarkPublishToIncidentUnderLoad(b *testing.B) {
	rate := 10000
	if v, err := strconv.Atoi(os.Getenv("IOC_BENCH_LOAD_RATE")); err == nil && v > 0 {
		rate = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := startE2E(b, ctx)

	// Phase 1: the broker alone. Load into bench/..., probes to a bare subscriber.
	bare := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.br.URL).SetClientID("e2e-bare"))
	if tok := bare.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer bare.Disconnect(100)
	got := make(chan struct{}, 1)
	bare.Subscribe("bench/probe", 1, func(mqtt.Client, mqtt.Message) { got <- struct{}{} }).Wait()
	bare.Subscribe("bench/traffic/#", 1, func(mqtt.Client, mqtt.Message) {}).Wait()
	stopLoad, sent := load(b, e.br.URL, "bench", rate)
	time.Sleep(time.Second)
	var brokerLat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e.pub.Publish("bench/probe", 1, false, []byte(`{}`))
		select {
		case <-got:
			brokerLat = append(brokerLat, time.Since(start))
		case <-time.After(10 * time.Second):
			b.Fatal("bare subscriber got no probe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	n1 := stopLoad()
	b.Logf("broker alone: %d background messages in the phase (%.0f/s)", n1, float64(n1)/b.Elapsed().Seconds())

	// Phase 2: the pipeline. Load into city/traffic/..., emergency probes.
	events, stop := e.eng.Events().Subscribe()
	defer stop()
	stopLoad, _ = load(b, e.br.URL, "city", rate)
	time.Sleep(time.Second)
	var lat []time.Duration
	probes := map[string][2]time.Time{} // msg id: published, event received
	t0 := time.Now()
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		lon, lat0 := 105.70+float64(i%30)*0.01, 20.90+float64(i/30%30)*0.01
		p, _ := json.Marshal(map[string]any{"ts": time.Now().Format(time.RFC3339Nano), "lon": lon, "lat": lat0,
			"type": "medical", "priority": 2, "channel": "call_115", "id": fmt.Sprintf("load-%d-%d", b.N, i)})
		start := time.Now()
		e.pub.Publish("city/emergency/cc115-bench", 1, false, p)
		select {
		case <-events:
			end := time.Now()
			lat = append(lat, end.Sub(start))
			probes[fmt.Sprintf("load-%d-%d", b.N, i)] = [2]time.Time{start, end}
		case <-time.After(10 * time.Second):
			b.Fatalf("no incident for signal %d", i)
		}
		if i%900 == 899 {
			e.pool.Exec(ctx, `UPDATE incidents SET status = 'resolved'`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	n2 := stopLoad()
	b.Logf("pipeline: %d background messages in the phase (%.0f/s); %d sent in all", n2, float64(n2)/time.Since(t0).Seconds(), sent.Load())
	// Where the time went, per stage, from the rows themselves (every
	// time below is this process's clock): publish -> ingest arrival ->
	// evidence written -> event taken -> event at the subscriber.
	rows, err := e.pool.Query(ctx, `SELECT s.msg_id, s.received_at, ev.added_at, x.at
		FROM emergency_signals s
		JOIN incident_evidence ev USING (device_id, ts, msg_id)
		JOIN LATERAL (SELECT min(at) at FROM incident_events WHERE incident_id = ev.incident_id) x ON true
		WHERE s.msg_id LIKE $1`, fmt.Sprintf("load-%d-%%", b.N))
	if err != nil {
		b.Fatal(err)
	}
	var stages [4][]time.Duration
	for rows.Next() {
		var id string
		var arrived, added, evAt time.Time
		if err := rows.Scan(&id, &arrived, &added, &evAt); err != nil {
			b.Fatal(err)
		}
		p, ok := probes[id]
		if !ok {
			continue
		}
		for i, d := range []time.Duration{arrived.Sub(p[0]), added.Sub(arrived), evAt.Sub(added), p[1].Sub(evAt)} {
			stages[i] = append(stages[i], d)
		}
	}
	rows.Close()
	if len(stages[0]) > 0 {
		msg := "stages p50/p99 ms:"
		for i, name := range []string{"publish->arrival", "arrival->evidence", "evidence->event", "event->subscriber"} {
			slices.Sort(stages[i])
			msg += fmt.Sprintf(" %s %.2f/%.2f", name, pct(stages[i], 50), pct(stages[i], 99))
		}
		b.Log(msg)
	}
	slices.Sort(brokerLat)
	slices.Sort(lat)
	b.ReportMetric(pct(lat, 50), "p50-ms")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(pct(brokerLat, 50), "broker-p50-ms")
	b.ReportMetric(pct(brokerLat, 99), "broker-p99-ms")
}

// load publishes traffic readings under prefix at about rate/s (QoS 1,
// up to 1000 unacknowledged) until stopped; stop returns how many it sent.
func load(b *testing.B, url, prefix string, rate int) (stop func() int64, sent *atomic.Int64) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("e2e-load-" + prefix))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	sent = new(atomic.Int64)
	var n atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	window := make(chan mqtt.Token, 1000)
	go func() {
		for tok := range window {
			tok.WaitTimeout(10 * time.Second)
		}
	}()
	go func() {
		defer close(finished)
		defer close(window)
		tick := time.Second / time.Duration(rate)
		next := time.Now()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			dev := fmt.Sprintf("L-%04d", i%2000)
			p := fmt.Sprintf(`{"ts":%d,"lat":%.5f,"lon":%.5f,"speed_kmh":45,"volume":12,"occupancy":0.2}`,
				time.Now().UnixMilli(), 21.0+float64(i%2000)*1e-4, 105.8+float64(i%2000)*1e-4)
			window <- c.Publish(prefix+"/traffic/"+dev, 1, false, p)
			n.Add(1)
			sent.Add(1)
			next = next.Add(tick)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		c.Disconnect(100)
		return n.Load()
	}, sent
}

func pct(d []time.Duration, q int) float64 { return float64(d[len(d)*q/100].Microseconds()) / 1000 }
