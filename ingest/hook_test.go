package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ioc/db/dbtest"
	"ioc/ingest"
)

// hookRun starts an ingester with the given in-transaction hook and
// returns a function that submits one message and waits for its ack, and
// the batches OnCommit received.
func hookRun(t *testing.T, hook ingest.TxHook) (submit func(topic, payload string), ing *ingest.Ingester, committed func() [][]*ingest.Observation) {
	t.Helper()
	pool, _ := dbtest.New(t)
	var mu sync.Mutex
	var got [][]*ingest.Observation
	ing, err := ingest.New(ingest.Config{
		Limits: ingest.Limits{Prefix: "city", MaxPayloadBytes: 256 << 10, MaxBatchItems: 1000,
			LateWindow: time.Hour, FutureSkew: time.Minute},
		BatchSize: 100, Buffer: 1000, Writers: 1, TouchInterval: time.Second, Registerer: prometheus.NewRegistry(),
		InTx: hook,
		OnCommit: func(obs []*ingest.Observation) {
			mu.Lock()
			got = append(got, obs)
			mu.Unlock()
		},
	}, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ing.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	submit = func(topic, payload string) {
		t.Helper()
		acked := make(chan struct{})
		if err := ing.Submit(ctx, topic, []byte(payload), false, func() { close(acked) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-acked:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: not acknowledged", topic)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM emergency_signals) + (SELECT count(*) FROM traffic_readings)`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("acknowledged but nothing stored (%d, %v)", n, err)
		}
	}
	return submit, ing, func() [][]*ingest.Observation {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func signal(id string) string {
	return fmt.Sprintf(`{"ts":%q,"lon":105.85,"lat":21.03,"type":"medical","priority":2,"channel":"call_115","id":%q}`,
		time.Now().UTC().Format(time.RFC3339Nano), id)
}

// The hook runs inside the transaction of a batch with an emergency
// signal (its writes see the batch's rows), its after func runs after the
// commit and before OnCommit, and batches without a signal skip it.
func TestInTxHookRunsInTheBatchTransaction(t *testing.T) {
	var calls, afters int
	var sawRow bool
	hook := func(ctx context.Context, tx pgx.Tx, obs []*ingest.Observation) (func(), error) {
		calls++
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM emergency_signals WHERE msg_id = 'h1'`).Scan(&n); err != nil {
			return nil, err
		}
		sawRow = n == 1
		return func() {
			afters++
			for _, o := range obs {
				o.Settled = true
			}
		}, nil
	}
	submit, _, committed := hookRun(t, hook)
	submit("city/traffic/tfc-1", fmt.Sprintf(`{"ts":%d,"lon":105.8,"lat":21.0,"speed_kmh":40,"volume":3,"occupancy":0.2}`, time.Now().UnixMilli()))
	if calls != 0 {
		t.Fatalf("hook called %d times for a batch without an emergency signal", calls)
	}
	submit("city/emergency/cc115-hanoi", signal("h1"))
	if calls != 1 || afters != 1 || !sawRow {
		t.Fatalf("hook calls %d, afters %d, saw its batch's row %v; want 1, 1, true", calls, afters, sawRow)
	}
	batches := committed()
	last := batches[len(batches)-1]
	if len(last) != 1 || last[0].Kind != ingest.KindEmergency || !last[0].Settled {
		t.Fatalf("OnCommit got %+v, want the signal, settled by the hook's after func", last)
	}
}

// A failing hook never holds back the data: the batch is written again
// without it, acknowledged, and OnCommit consumers get the signal
// unsettled, to act on it themselves.
func TestFailingInTxHookStillStoresTheBatch(t *testing.T) {
	calls := 0
	hook := func(ctx context.Context, tx pgx.Tx, obs []*ingest.Observation) (func(), error) {
		calls++
		// Leave the transaction aborted, as a failed statement would.
		tx.Exec(ctx, `SELECT 1/0`)
		return nil, errors.New("rule store down")
	}
	submit, ing, committed := hookRun(t, hook)
	submit("city/emergency/cc115-hanoi", signal("f1"))
	if calls != 1 {
		t.Fatalf("hook called %d times, want 1 (then the batch goes without it)", calls)
	}
	if n := testutil.ToFloat64(ing.Metrics().WriteErrors.WithLabelValues("hook")); n != 1 {
		t.Fatalf("hook errors counted: %v, want 1", n)
	}
	batches := committed()
	if len(batches) != 1 || len(batches[0]) != 1 || batches[0][0].Settled {
		t.Fatalf("OnCommit got %v, want one batch with the unsettled signal", batches)
	}
}
