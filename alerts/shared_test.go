package alerts

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"ioc/db"
	"ioc/db/dbtest"
	"ioc/ingest"
)

// instance is one iocd's engine, with its own pool, on a shared database.
type instance struct {
	e    *Engine
	stop func()
}

func startInstance(t *testing.T, url string, rdb *redis.Client) *instance {
	t.Helper()
	pool, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{Geo: fakeGeo{}, NoSignals: true, Tick: time.Hour,
		Redis: rdb, LeaderPoll: 100 * time.Millisecond}, pool, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	in := &instance{e: e}
	stopped := false
	in.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			pool.Close()
		}
	}
	t.Cleanup(in.stop)
	return in
}

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("IOC_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", u, err)
	}
	return rdb
}

// feedJam gives the instances, in turn (as a shared subscription deals
// them out), a jam on device at lon: a reading a minute for 7 minutes
// under 15 km/h at occupancy 0.8, more than the congestion rule's 5. Dealt
// among three, each instance sees a reading every 3 minutes: gaps that
// break a window (more than max(hold/2, 2 × interval)). Each reading is
// evaluated before the next is dealt, as a minute apart they would be.
func feedJam(t *testing.T, ins []*instance, device string, lon float64, base time.Time) {
	t.Helper()
	evaluated := func() (n int64) {
		for _, in := range ins {
			n += in.e.evaluated.Load()
		}
		return n
	}
	for i := range 8 {
		before := evaluated()
		o := &ingest.Observation{Kind: ingest.KindTraffic, DeviceID: device, MsgID: fmt.Sprint(i),
			TS: base.Add(time.Duration(i) * time.Minute), Lon: lon, Lat: 21.03,
			SpeedKmh: 8, HasSpeed: true, Occupancy: 0.8, Volume: 3, IntervalS: 60}
		ins[i%len(ins)].e.Observe([]*ingest.Observation{o})
		waitUntil(t, "the reading evaluated", func() bool { return evaluated() > before })
	}
}

func congestions(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM incidents WHERE kind = 'traffic_congestion'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func leader(ins ...*instance) *instance {
	for _, in := range ins {
		if in.e.leading.Load() {
			return in
		}
	}
	return nil
}

// Instances sharing the MQTT subscription each receive a part of a
// device's readings. Without Redis no instance sees the jam held for
// 5 minutes; with it, the one leading instance evaluates everything and
// opens exactly one incident. When the leader stops another takes over,
// and a jam dealt out across the instances still opens its incident.
func TestSharedSubscriptionWindowsHaveOneHome(t *testing.T) {
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)

	t.Run("without Redis the windows split", func(t *testing.T) {
		pool, url := dbtest.New(t)
		ins := []*instance{startInstance(t, url, nil), startInstance(t, url, nil), startInstance(t, url, nil)}
		feedJam(t, ins, "tfc-jam", 105.85, base)
		time.Sleep(200 * time.Millisecond) // a trigger would be written by now
		if n := congestions(t, pool); n != 0 {
			t.Fatalf("%d congestion incidents from split windows; the premise of this test is gone", n)
		}
	})

	rdb := testRedis(t)
	pool, url := dbtest.New(t)
	ins := []*instance{startInstance(t, url, rdb), startInstance(t, url, rdb), startInstance(t, url, rdb)}
	waitUntil(t, "a leader", func() bool { return leader(ins...) != nil })
	feedJam(t, ins, "tfc-jam-1", 105.85, base)
	waitUntil(t, "the jam's incident", func() bool { return congestions(t, pool) == 1 })
	leaders := 0
	for _, in := range ins {
		if in.e.leading.Load() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d instances lead", leaders)
	}

	// The leader goes; another takes over, replays, and evaluates a new
	// jam 10 km away dealt out among the two left and a fourth that joins.
	old := leader(ins...)
	old.stop()
	var rest []*instance
	for _, in := range ins {
		if in != old {
			rest = append(rest, in)
		}
	}
	waitUntil(t, "a new leader", func() bool { return leader(rest...) != nil })
	rest = append(rest, startInstance(t, url, rdb))
	feedJam(t, rest, "tfc-jam-2", 105.95, base)
	waitUntil(t, "the second jam's incident", func() bool { return congestions(t, pool) == 2 })
	time.Sleep(300 * time.Millisecond)
	if n := congestions(t, pool); n != 2 {
		t.Fatalf("%d congestion incidents, want 2 (the new leader's replay must add nothing)", n)
	}
	if rest[2].e.leading.Load() {
		t.Fatal("the joining instance leads beside the leader")
	}
}
