package ingest_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/deploy/brokertest"
)

// TestMeasurePipeline measures broker -> subscriber -> database
// throughput: N small readings published as fast as the broker takes
// them, timed until the last is acknowledged. It reports, never asserts,
// and runs only with IOC_MEASURE_PIPELINE=N (e.g. 30000).
func TestMeasurePipeline(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IOC_MEASURE_PIPELINE"))
	if n <= 0 {
		t.Skip("set IOC_MEASURE_PIPELINE=N to measure")
	}
	b := brokertest.Start(t)
	h := start(t, b.URL)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(fmt.Sprintf("measure-pub-%d", os.Getpid())))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	at := ts()
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"ts":%q,"lat":21.03,"lon":105.85,"speed_kmh":40,"volume":5,"occupancy":0.2,"id":"p%d"}`, at, i))
	}
	m := h.ing.Metrics()
	begin := time.Now()
	toks := make([]mqtt.Token, 0, 1000)
	for i, p := range payloads {
		toks = append(toks, pub.Publish(fmt.Sprintf("city/traffic/P-%d", i%500), 1, false, p))
		if len(toks) == cap(toks) {
			for _, tok := range toks {
				tok.Wait()
			}
			toks = toks[:0]
		}
	}
	for _, tok := range toks {
		tok.Wait()
	}
	published := time.Since(begin)
	for testutil.ToFloat64(m.Acked) < float64(n) {
		if time.Since(begin) > 3*time.Minute {
			t.Fatalf("only %v of %d acknowledged", testutil.ToFloat64(m.Acked), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(begin)
	t.Logf("%d readings: published in %v, all committed and acknowledged in %v: %.0f msgs/s", n, published.Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds())
}
