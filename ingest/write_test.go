package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

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
