package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"ioc/db/dbtest"
)

// Both write paths, INSERT for small batches and COPY for large ones,
// store every kind with its position, and written again (a redelivery)
// store nothing twice and count the duplicates.
func TestWritePathsStoreOnceAndCountDuplicates(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	now := time.Now().Truncate(time.Microsecond)
	kinds := []Observation{
		{Kind: KindTraffic, SpeedKmh: 30, Volume: 10, Occupancy: 0.3, IntervalS: 60},
		{Kind: KindCamera, Event: "crowd", Confidence: 0.9, Count: 40, HasCount: true},
		{Kind: KindEmergency, Type: "medical", Priority: 2, Channel: "call_115"},
		{Kind: KindUnit, UnitKind: "ambulance", Status: "available"},
	}
	total := 0
	for _, n := range []int{smallBatch / 2, smallBatch * 3} {
		total += n
		var envs []*envelope
		for i := range n {
			o := kinds[i%len(kinds)]
			o.DeviceID, o.TS, o.MsgID = fmt.Sprintf("D-%d-%d", n, i), now.Add(-time.Duration(i)*time.Second), fmt.Sprint(i)
			o.HasPos, o.Lon, o.Lat, o.Ward = true, 105.8+float64(i)*1e-3, 21.0+float64(i)*1e-3, "00004"
			envs = append(envs, &envelope{topic: "city/x/" + o.DeviceID, received: now, obs: []Observation{o}})
		}
		for round, wantDups := range []int64{0, int64(n)} {
			p := prepare(envs, newDeviceCache(0, 0, false), time.Second, now)
			dups, _, err := write(ctx, conn.Conn(), p, now, nil)
			if err != nil || dups != wantDups {
				t.Fatalf("batch of %d, write %d: %d duplicates, %v; want %d", n, round+1, dups, err, wantDups)
			}
		}
		// Stored and new rows in one batch: the new ones are stored, the
		// others counted, in one write.
		fresh := make([]*envelope, 0, 2*n)
		for _, e := range envs {
			o := e.obs[0]
			o.MsgID += "-new"
			fresh = append(fresh, e, &envelope{topic: e.topic, received: now, obs: []Observation{o}})
		}
		total += n
		p := prepare(fresh, newDeviceCache(0, 0, false), time.Second, now)
		if dups, _, err := write(ctx, conn.Conn(), p, now, nil); err != nil || dups != int64(n) {
			t.Fatalf("batch of %d stored and %d new: %d duplicates, %v; want %d", n, n, dups, err, n)
		}
		var stored, placed int
		if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE abs(ST_Y(geom) - (21.0 + split_part(msg_id, '-', 1)::int * 1e-3)) < 1e-9)
			FROM (SELECT msg_id, geom FROM traffic_readings UNION ALL SELECT msg_id, geom FROM camera_events
			      UNION ALL SELECT msg_id, geom FROM emergency_signals UNION ALL SELECT msg_id, geom FROM unit_positions) x
			`).Scan(&stored, &placed); err != nil {
			t.Fatal(err)
		}
		if stored != total || placed != total {
			t.Fatalf("after the batch of %d: %d rows stored, %d in place; want %d", n, stored, placed, total)
		}
	}
}

// Two write transactions whose batches cross, one touching device A and
// giving B's status, the other the reverse, both complete, whether the
// devices are stored already or seen for the first time: the registry
// takes the rows of both upserts in one id order before either upsert.
// Run statement by statement, the second transaction started once the
// first has run its touch upsert: the order that made PostgreSQL abort
// one of them (deadlock detected) when each upsert took its own sorted
// run (stored devices), and when only stored rows were locked first (new
// ones).
func TestCrossingRegistryUpsertsDoNotDeadlock(t *testing.T) {
	for _, stored := range []bool{true, false} {
		t.Run(map[bool]string{true: "stored", false: "new"}[stored], func(t *testing.T) { crossingRegistryUpserts(t, stored) })
	}
}

func crossingRegistryUpserts(t *testing.T, stored bool) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	if stored {
		if _, err := pool.Exec(ctx, `INSERT INTO devices (id, kind, first_seen, last_seen) VALUES ('A', 'traffic', $1, $1), ('B', 'traffic', $1, $1)`, now); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(touch, status string) []*pgx.QueuedQuery {
		var b pgx.Batch
		queueRegistry(&b, &prepared{
			devices:  []deviceRow{{id: touch, kind: KindTraffic, ts: now}},
			statuses: []statusRow{{id: status, ts: now, online: false}},
		}, now)
		return b.QueuedQueries
	}
	q1, q2 := batch("B", "A"), batch("A", "B")
	touch := slices.IndexFunc(q1, func(q *pgx.QueuedQuery) bool { return strings.Contains(q.SQL, "interval_s") })
	if touch < 0 {
		t.Fatal("no touch upsert among the registry's statements")
	}

	begin := func() (pgx.Tx, int32) {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Release)
		var pid int32
		if err := c.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback(ctx) })
		return tx, pid
	}
	exec := func(tx pgx.Tx, qs []*pgx.QueuedQuery) error {
		for _, q := range qs {
			if _, err := tx.Exec(ctx, q.SQL, q.Arguments...); err != nil {
				return err
			}
		}
		return nil
	}
	tx1, _ := begin()
	tx2, pid2 := begin()
	if err := exec(tx1, q1[:touch+1]); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		err := exec(tx2, q2)
		if err == nil {
			err = tx2.Commit(ctx)
		}
		second <- err
	}()
	// Wait until the second transaction waits for a lock of the first.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pid2).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second transaction never waited for the first")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := exec(tx1, q1[touch+1:])
	if err == nil {
		err = tx1.Commit(ctx)
	}
	if err != nil {
		t.Errorf("first transaction: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second transaction: %v", err)
	}
	// The first committed first (the second waited for it), so the
	// second's statements came last: A touched (online), B offline; A's
	// status from the first is kept in status_ts. New devices end as a
	// fresh insert would leave them: A a traffic sensor, B unknown.
	var got string
	if err := pool.QueryRow(ctx, `SELECT string_agg(id || '=' || online || '/' || (status_ts IS NOT NULL), ' ' ORDER BY id) FROM devices WHERE id IN ('A', 'B')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "A=true/true B=false/true"; got != want {
		t.Errorf("devices %s, want %s", got, want)
	}
	if !stored {
		var kinds string
		if err := pool.QueryRow(ctx, `SELECT string_agg(id || '=' || kind || '/' || (last_ts IS NOT NULL) || '/' || (first_seen = $1), ' ' ORDER BY id) FROM devices WHERE id IN ('A', 'B')`, now).Scan(&kinds); err != nil {
			t.Fatal(err)
		}
		if want := "A=traffic/true/true B=traffic/true/true"; kinds != want {
			t.Errorf("new devices %s, want %s", kinds, want)
		}
	}
}
