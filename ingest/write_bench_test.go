package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"ioc/db/dbtest"
)

// BenchmarkWriteBatch measures one writer storing batches of 100 and of
// 2000 traffic readings (prepare + one transaction), per observation. It
// says where a writer's time goes without the broker in the way (under
// load.sh's saturation batches are a few hundred rows).
func BenchmarkWriteBatch(b *testing.B) {
	for _, per := range []int{100, 2000} {
		b.Run(fmt.Sprintf("rows=%d", per), func(b *testing.B) { benchmarkWriteBatch(b, per) })
	}
}

func benchmarkWriteBatch(b *testing.B, per int) {
	pool, _ := dbtest.New(b)
	cache := newDeviceCache(0, 0, false)
	now := time.Now()
	batch := func(n int) []*envelope {
		envs := make([]*envelope, per)
		for i := range envs {
			envs[i] = &envelope{topic: "city/traffic/S", received: now, obs: []Observation{{
				Kind: KindTraffic, DeviceID: fmt.Sprintf("S-%d", i%2000), TS: now.Add(-time.Duration(n*per+i) * time.Millisecond),
				MsgID: fmt.Sprint(n*per + i), HasPos: true, Lon: 105.8 + float64(i%2000)*1e-4, Lat: 21.0, Ward: "00004",
				SpeedKmh: 30, Volume: 10, Occupancy: 0.3, IntervalS: 60,
			}}}
		}
		return envs
	}
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		envs := batch(n)
		b.StartTimer()
		p := prepare(envs, cache, 15*time.Second, now)
		if _, _, err := write(ctx, conn.Conn(), p, now, nil); err != nil {
			b.Fatal(err)
		}
		cache.committed(p.devices, p.statuses, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/observation")
}
