package alerts

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/ingest"
)

// Emergency signals open or join their incidents inside the caller's
// transaction (ingest's): nothing is visible before its commit, the
// events reach this instance's subscribers as soon as the after func
// runs, and the evaluation loop does not act on the signals again.
func TestInTxOpensIncidentsInTheCallersTransaction(t *testing.T) {
	v := newEnv(t, nil)
	v.start(t)
	sub := v.subscribe(t)
	now := time.Now()
	call := func(id string, lon float64, typ string, prio int64) *ingest.Observation {
		return &ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "cc115-hanoi", MsgID: id, TS: now,
			Lon: lon, Lat: 21.03, Type: typ, Priority: prio, Channel: "call_115"}
	}
	obs := []*ingest.Observation{
		call("a", 105.850, "medical", 2),
		{Kind: ingest.KindTraffic, DeviceID: "tfc-1", TS: now, Lon: 105.85, Lat: 21.03, SpeedKmh: 40, Occupancy: 0.2, IntervalS: 60},
		call("b", 105.8502, "medical", 3), // 20 m from a: joins it
		call("c", 105.950, "fire", 1),     // 10 km away: its own
	}

	tx, err := v.pool.Begin(v.ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := v.e.InTx(v.ctx, tx, obs)
	if err != nil || after == nil {
		t.Fatalf("InTx: after %v, err %v", after != nil, err)
	}
	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 0 {
		t.Fatalf("%d incidents visible before the caller's commit", n)
	}
	if err := tx.Commit(v.ctx); err != nil {
		t.Fatal(err)
	}
	after()

	if n := v.count(t, `SELECT count(*) FROM incidents`); n != 2 {
		t.Fatalf("%d incidents, want 2 (a and b together, c apart)", n)
	}
	if n := v.count(t, `SELECT count(*) FROM incidents i JOIN incident_evidence e ON e.incident_id = i.id
		WHERE i.kind = 'medical' AND i.severity = 'severe' AND e.msg_id IN ('a', 'b')`); n != 2 {
		t.Fatalf("the medical incident has %d of the 2 calls as evidence (severity from the first call, priority 2)", n)
	}
	if n := v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'fire' AND severity = 'extreme'`); n != 1 {
		t.Fatal("no extreme fire incident for the priority-1 call")
	}
	if len(sub) != 3 {
		t.Fatalf("%d events at the subscriber when after returned, want 3 (opened, updated, opened) at once", len(sub))
	}
	var ops []string
	for range 3 {
		ops = append(ops, (<-sub).Op)
	}
	if ops[0] != "opened" || ops[1] != "updated" || ops[2] != "opened" {
		t.Fatalf("events %v", ops)
	}
	for _, o := range obs {
		if o.Settled != (o.Kind == ingest.KindEmergency) {
			t.Fatalf("%s %s: settled %v", o.Kind, o.MsgID, o.Settled)
		}
	}

	// The same batch through the evaluation loop: no trigger for the
	// settled signals, so not even a replayed one reaches the store.
	replayed := testutil.ToFloat64(metricReplayed)
	applied := v.e.applied.Load()
	v.e.Observe(obs)
	waitUntil(t, "evaluated", func() bool { return v.e.evaluated.Load() >= int64(len(obs)) })
	time.Sleep(100 * time.Millisecond) // a trigger, had there been one, would reach the writer now
	if testutil.ToFloat64(metricReplayed) != replayed || v.e.applied.Load() != applied {
		t.Fatal("the evaluation loop acted on signals settled in ingest's transaction")
	}
	select {
	case ev := <-sub:
		t.Fatalf("unexpected event %d %s", ev.Seq, ev.Op)
	default:
	}
}

// A rolled-back transaction leaves neither incident nor event, and the
// signal, not settled, is the evaluation loop's to act on.
func TestInTxRolledBackLeavesNothing(t *testing.T) {
	v := newEnv(t, nil)
	v.start(t)
	o := &ingest.Observation{Kind: ingest.KindEmergency, DeviceID: "panic-1", MsgID: "r1", TS: time.Now(),
		Lon: 105.85, Lat: 21.03, Type: "panic", Priority: 1, Channel: "panic_button"}
	err := pgx.BeginFunc(v.ctx, v.pool, func(tx pgx.Tx) error {
		if _, err := v.e.InTx(v.ctx, tx, []*ingest.Observation{o}); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatal(err)
	}
	if n := v.count(t, `SELECT count(*) FROM incidents`) + v.count(t, `SELECT count(*) FROM incident_events`); n != 0 || o.Settled {
		t.Fatalf("after rollback: %d incidents and events, settled %v", n, o.Settled)
	}
	v.e.Observe([]*ingest.Observation{o})
	waitUntil(t, "the signal's incident, by the evaluation loop", func() bool {
		return v.count(t, `SELECT count(*) FROM incidents`) == 1
	})
}

var errRollback = errors.New("roll back")
