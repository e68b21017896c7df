package alerts

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/ingest"
)

// Issue 9, finding 8: a panic while evaluating an observation is
// recovered, logged and counted; the rest of its batch and every later
// batch are evaluated as before, and the engine keeps running.
func TestEvaluatorPanicIsRecovered(t *testing.T) {
	v := newEnv(t, nil)
	v.e.testHook = func(o *ingest.Observation) {
		if o.DeviceID == "cam-poison" {
			panic("injected: a rule that panics on this input")
		}
	}
	v.start(t)
	panics := testutil.ToFloat64(metricPanics.WithLabelValues("evaluate"))
	now := time.Now()
	fire := func(dev string, lon float64) *ingest.Observation {
		return &ingest.Observation{Kind: ingest.KindCamera, DeviceID: dev, TS: now, Lon: lon, Lat: 21.03, Event: "fire", Confidence: 0.9}
	}
	v.e.Observe([]*ingest.Observation{fire("cam-poison", 105.80), fire("cam-a", 105.85)})
	waitUntil(t, "the fire after the poisoned observation", func() bool {
		return v.count(t, `SELECT count(*) FROM incident_evidence WHERE device_id = 'cam-a'`) == 1
	})
	v.e.Observe([]*ingest.Observation{fire("cam-poison", 105.80)})
	v.e.Observe([]*ingest.Observation{fire("cam-b", 105.95)})
	waitUntil(t, "a later batch", func() bool {
		return v.count(t, `SELECT count(*) FROM incident_evidence WHERE device_id = 'cam-b'`) == 1
	})
	if got := testutil.ToFloat64(metricPanics.WithLabelValues("evaluate")) - panics; got != 2 {
		t.Fatalf("ioc_alerts_panics_total{op=evaluate} rose by %v, want 2", got)
	}
	if n := v.count(t, `SELECT count(*) FROM incident_evidence WHERE device_id = 'cam-poison'`); n != 0 {
		t.Fatalf("the poisoned observation left %d evidence", n)
	}
}

// A panic in the in-transaction hook (InTx, on ingest's emergency lane)
// never reaches ingest's goroutine: it comes back as an error, the
// caller's transaction rolls back with nothing of it stored, and the same
// panic on the queued path (the writer) is recovered too. Once the bug is
// gone the engine works as before.
func TestInTxPanicRollsBackAndReturnsError(t *testing.T) {
	v := newEnv(t, nil)
	var armed atomic.Bool
	armed.Store(true)
	v.e.store.testHook = func(t Trigger) {
		if armed.Load() {
			panic("injected: open-or-join panics")
		}
	}
	v.start(t)
	intx := testutil.ToFloat64(metricPanics.WithLabelValues("intx"))
	apply := testutil.ToFloat64(metricPanics.WithLabelValues("apply"))
	o := &ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc115-hanoi", MsgID: "p1", TS: time.Now(),
		Lon: 105.85, Lat: 21.03, Type: "fire", Priority: 1, Channel: "call_115"}
	var hookErr error
	err := pgx.BeginFunc(v.ctx, v.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(v.ctx, `CREATE TABLE intx_probe (x int)`); err != nil {
			return err
		}
		after, err := v.e.InTx(v.ctx, tx, []*ingest.Observation{o})
		if after != nil {
			t.Error("InTx returned an after func with its error")
		}
		hookErr = err
		return err
	})
	if !errors.Is(hookErr, errPanicked) || err == nil {
		t.Fatalf("InTx: %v, transaction: %v; want the panic as an error", hookErr, err)
	}
	if n := v.count(t, `SELECT count(*) FROM pg_tables WHERE tablename = 'intx_probe'`) + v.count(t, `SELECT count(*) FROM incidents`); n != 0 || o.Settled {
		t.Fatalf("after the panic: the transaction was not rolled back (%d rows), settled %v", n, o.Settled)
	}
	if got := testutil.ToFloat64(metricPanics.WithLabelValues("intx")) - intx; got != 1 {
		t.Fatalf("ioc_alerts_panics_total{op=intx} rose by %v", got)
	}
	// Ingest then hands the signal to the queued path: the writer
	// recovers the same panic and leaves the trigger.
	v.e.Observe([]*ingest.Observation{o})
	waitUntil(t, "the writer's recovery", func() bool {
		return testutil.ToFloat64(metricPanics.WithLabelValues("apply"))-apply == 1
	})
	armed.Store(false)
	o2 := *o
	o2.MsgID, o2.Settled = "p2", false
	if err := pgx.BeginFunc(v.ctx, v.pool, func(tx pgx.Tx) error {
		after, err := v.e.InTx(v.ctx, tx, []*ingest.Observation{&o2})
		if err == nil && after == nil {
			t.Error("no after func")
		}
		return err
	}); err != nil {
		t.Fatalf("InTx once the bug is gone: %v", err)
	}
	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 1 {
		t.Fatalf("%d incidents", n)
	}
}
