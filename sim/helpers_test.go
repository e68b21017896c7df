package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"ioc/geo"
)

// The data lives beside the repository: ../shared from the root.
const testWardsPath = "../../shared/data/hanoi/wards.geojson"

var (
	wardsOnce sync.Once
	wardsData []geo.Ward
	wardsErr  error
)

func testWards(t testing.TB) []geo.Ward {
	t.Helper()
	wardsOnce.Do(func() { wardsData, wardsErr = geo.LoadWards(testWardsPath) })
	if wardsErr != nil {
		t.Fatalf("wards: %v", wardsErr)
	}
	return wardsData
}

// fakeClock jumps instead of sleeping, so a simulated hour runs at once.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) bool {
	if d < time.Millisecond {
		d = time.Millisecond
	}
	c.t = c.t.Add(d)
	return ctx.Err() == nil
}

// monday7 is a weekday morning rush in Hanoi.
var monday7 = time.Date(2026, 3, 2, 7, 0, 0, 0, hanoi)

// smallConfig is a small city for the offline tests.
func smallConfig(t testing.TB) Config {
	return Config{
		Seed: 7, Start: monday7, Rate: RateNatural, Wards: testWards(t),
		Sensors: 200, Cameras: 40, Sources: 10, Units: 10,
	}
}

// generate runs the generator offline (no broker) for d of simulated time
// and returns every message in order.
func generate(t testing.TB, cfg Config, d time.Duration) ([]Message, *Simulator) {
	t.Helper()
	cfg.Duration = d
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.gen.clock = &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var out []Message
	s.gen.run(context.Background(), func(m Message) bool {
		out = append(out, m)
		return true
	})
	return out, s
}
