package sim

import (
	"math/rand/v2"
	"time"
)

// LoadFactor is how busy Hanoi's roads are at t (0 empty to about 1), the
// rhythm the simulator's traffic follows. Exported for the seeder
// (sim/seed), which lays down a year of the same rhythm straight into the
// database.
func LoadFactor(t time.Time, urban bool) float64 { return loadFactor(t, urban) }

// Road is a traffic sensor's road, for the seeder: the same model as the
// simulator's sensors.
type Road struct {
	Urban    bool
	Busy     float64 // load relative to the ward's norm, about 0.75-1.05
	FreeFlow float64 // km/h at night
	Lanes    int
}

// Reading draws what a detector on r reports at t over interval.
func (r Road) Reading(t time.Time, interval time.Duration, rng *rand.Rand) (speedKmh float64, volume int, occupancy float64) {
	s := sensor{urban: r.Urban, busy: r.Busy, freeFlow: r.FreeFlow, lanes: r.Lanes}
	x := s.normalReading(t, interval, rng)
	return x.SpeedKmh, x.Volume, x.Occupancy
}
