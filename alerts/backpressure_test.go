package alerts

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db/dbtest"
	"ioc/ingest"
)

// Issue 9, finding 7: a full evaluation queue skipped the batches without
// emergency signals, so a camera's fire committed then was seen only
// after a restart. Now the queue is flooded beyond its capacity while the
// evaluator is held up: the batch committed while it was full waits for
// room (its ingest writer held), nothing is dropped, and the fire becomes
// an incident once the evaluator catches up. Meanwhile a 115 call's batch
// does not wait behind the backlog: it has a lane of its own.
func TestFullQueueHoldsIngestAndSkipsNothing(t *testing.T) {
	pool, _ := dbtest.New(t)
	e, err := New(context.Background(), Config{Geo: fakeGeo{}, NoSignals: true, Tick: time.Hour, QueueSize: 2}, pool, testLog())
	if err != nil {
		t.Fatal(err)
	}
	v := &env{e: e, pool: pool, ctx: context.Background()}
	gate := make(chan struct{})
	var held atomic.Bool
	e.testHook = func(o *ingest.Observation) {
		if o.DeviceID == "S-slow" && held.CompareAndSwap(false, true) {
			<-gate // a slow evaluation: the queue fills behind it
		}
	}
	v.start(t)
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	now := time.Now()
	reading := func(dev string) []*ingest.Observation {
		return []*ingest.Observation{{Kind: ingest.KindTraffic, DeviceID: dev, TS: now, Lon: 105.8, Lat: 21.0, SpeedKmh: 40, Occupancy: 0.2, IntervalS: 60, HasSpeed: true}}
	}
	e.Observe(reading("S-slow"))
	waitUntil(t, "the evaluator held", held.Load)
	e.Observe(reading("S-1")) // the queue of two is full now
	e.Observe(reading("S-2"))
	full, dropped := testutil.ToFloat64(metricQueueFull), testutil.ToFloat64(metricDropped)

	fire := []*ingest.Observation{{Kind: ingest.KindCamera, DeviceID: "cam-fire", TS: now, Lon: 105.85, Lat: 21.03, Event: "fire", Confidence: 0.9}}
	queued := make(chan struct{})
	go func() { e.Observe(fire); close(queued) }()
	select {
	case <-queued:
		t.Fatal("Observe returned with the queue full: the fire's batch was dropped, not held")
	case <-time.After(300 * time.Millisecond):
	}
	if got := testutil.ToFloat64(metricQueueFull) - full; got != 1 {
		t.Errorf("ioc_alerts_queue_full_total rose by %v, want 1", got)
	}
	// The emergency lane is not behind the backlog.
	call := []*ingest.Observation{{Kind: ingest.KindEmergency, DeviceID: "cc115-hanoi", MsgID: "q1", TS: now,
		Lon: 105.95, Lat: 21.03, Type: "medical", Priority: 1, Channel: "call_115"}}
	done := make(chan struct{})
	go func() { e.Observe(call); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("an emergency batch waited behind the bulk backlog")
	}

	close(gate) // the evaluator catches up
	select {
	case <-queued:
	case <-time.After(10 * time.Second):
		t.Fatal("the held batch never got its place")
	}
	waitUntil(t, "the fire's incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'fire'`) == 1 })
	waitUntil(t, "the call's incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'medical'`) == 1 })
	if got := testutil.ToFloat64(metricDropped) - dropped; got != 0 {
		t.Fatalf("%v observations dropped", got)
	}
	if e.evaluated.Load() != 5 {
		t.Fatalf("%d observations evaluated, want all 5", e.evaluated.Load())
	}
}
