package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

// Issue 9 finding 6: however busy the API is, ingest keeps writing. The
// API reads through a pool of its own: with every API connection held (as
// a few slow analyst queries would hold them) and analysts looping over
// the heaviest routes, every published reading is still stored exactly
// once, and API requests that cannot get a connection answer 503 within
// their time limit instead of hanging.
func TestAnalystCannotStarveIngest(t *testing.T) {
	_, dbURL := dbtest.New(t)
	b := brokertest.Start(t)
	app := runApp(t, dbURL, b.URL, "starve-test", func(c *config.Config) {
		c.APIMaxConns = 2
		c.APIStatementTimeout = config.Duration(500 * time.Millisecond)
	})
	a := app.app
	a.srv.SetRequestTimeout(time.Second)
	env := &routeEnv{app: a, h: app.h, store: auth.NewStore(a.pool, auth.HashParams{Time: 1, MemoryKiB: 64, Threads: 1}, 2), ctx: context.Background()}
	analyst := env.session(t, "heavy-analyst", "analyst")

	// Phase 1: every API connection is taken.
	var held []*pgxpool.Conn
	for i := 0; i < int(a.apiPool.Config().MaxConns); i++ {
		c, err := a.apiPool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	var progress atomic.Int64
	const n = 3000
	errc := make(chan error, 1)
	go func() { errc <- publish(t, b.URL, n, 1500, "starve", &progress) }()

	var status sync.Map // status code -> count
	count := func(code int) {
		v, _ := status.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	heavy := []string{
		"/api/v1/devices?limit=1000",
		"/api/v1/incidents?q=ch%C3%A1y&limit=200",
		fmt.Sprintf("/api/v1/devices/S-001/telemetry?from=%s&to=%s&bucket=1h",
			time.Now().Add(-7*24*time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)),
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := httptest.NewRequest("GET", heavy[(g+i)%len(heavy)], nil)
				r.Header.Set("Authorization", "Bearer "+analyst)
				w := httptest.NewRecorder()
				start := time.Now()
				app.h.ServeHTTP(w, r)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("%s took %v with the API pool exhausted: it hangs instead of answering", r.URL, d)
				}
				count(w.Code)
			}
		}()
	}
	half := waitStored(t, a.pool, n/2, 60*time.Second)
	// Phase 2: the API pool is free again; the analysts go on looping.
	for _, c := range held {
		c.Release()
	}
	got := waitStored(t, a.pool, n, 60*time.Second)
	close(stop)
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, a.pool, "starve", got)
	codes := map[int]int64{}
	status.Range(func(k, v any) bool { codes[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("stored %d while the API pool was held, %d in all; API answers by status: %v", half, got, codes)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no API request answered 503 while its pool was exhausted: %v", codes)
	}
	if codes[http.StatusOK] == 0 {
		t.Errorf("no API request succeeded once the pool was free: %v", codes)
	}
	for code := range codes {
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Errorf("API answered %d: %v", code, codes)
		}
	}
}
