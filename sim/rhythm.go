package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// Hanoi keeps UTC+7 all year (no daylight saving), so a fixed zone is exact
// and needs no tzdata on the machine.
var hanoi = time.FixedZone("ICT", 7*3600)

func gauss(x, mu, sigma float64) float64 {
	d := (x - mu) / sigma
	return math.Exp(-d * d / 2)
}

// loadFactor is how busy the roads are at t, from 0 (empty) to about 1
// (gridlock), in Hanoi local time: a morning rush around 7–9, a longer and
// heavier evening rush around 17–19, a busy midday, light nights; weekends
// with flatter peaks. Communes (xã) carry less traffic than urban wards.
func loadFactor(t time.Time, urban bool) float64 {
	lt := t.In(hanoi)
	h := float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600
	am, pm, mid := 0.72, 0.80, 0.35
	if wd := lt.Weekday(); wd == time.Saturday || wd == time.Sunday {
		am, pm, mid = 0.35, 0.55, 0.45
	}
	c := 0.04 +
		am*gauss(h, 7.9, 0.75) +
		pm*gauss(h, 18.0, 0.95) +
		mid*gauss(h, 12.5, 2.6) +
		0.25*gauss(h, 21.0, 1.2) // evening outings
	if !urban {
		c *= 0.55
	}
	return math.Min(c, 0.97)
}

// trafficReading is one detector report, before encoding.
type trafficReading struct {
	SpeedKmh  float64
	Volume    int
	Occupancy float64
}

// normalReading draws a reading for a sensor at t: speed falls with load
// (quadratically, so the rush hours are markedly slow), occupancy rises,
// and volume follows the fundamental diagram (highest at medium load, lower
// in free flow and in a jam).
func (s *sensor) normalReading(t time.Time, interval time.Duration, rng *rand.Rand) trafficReading {
	// Capped below a standstill: the rush hours are slow (speeds can dip
	// under 15 km/h on the busiest roads) but occupancy stays under 0.6, so
	// a held jam over several sensors is the scripted congestion's alone.
	c := loadFactor(t, s.urban)*s.busy + rng.NormFloat64()*0.03
	c = clamp(c, 0, 0.86)
	r := s.readingAt(c, interval, rng)
	r.Occupancy = min(r.Occupancy, 0.58)
	return r
}

func (s *sensor) readingAt(c float64, interval time.Duration, rng *rand.Rand) trafficReading {
	speed := s.freeFlow*(1-0.85*c*c) + rng.NormFloat64()*2
	speed = clamp(speed, 2, 120)
	occ := clamp(0.02+0.65*math.Pow(c, 1.3)+rng.NormFloat64()*0.02, 0, 0.98)
	x := c / 1.2
	perLaneHour := 1800 * 4 * x * (1 - x)
	mean := float64(s.lanes) * perLaneHour * interval.Seconds() / 3600
	vol := int(math.Round(mean + rng.NormFloat64()*math.Sqrt(mean+1)))
	if vol < 0 {
		vol = 0
	}
	return trafficReading{SpeedKmh: round1(speed), Volume: vol, Occupancy: round3(occ)}
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
func round1(x float64) float64        { return math.Round(x*10) / 10 }
func round3(x float64) float64        { return math.Round(x*1000) / 1000 }
