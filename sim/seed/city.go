package seed

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"ioc/geo"
	"ioc/sim"
)

// Hanoi keeps UTC+7 all year.
var hanoi = time.FixedZone("ICT", 7*3600)

// ward is a ward prepared for sampling points inside it.
type ward struct {
	code                   string
	urban                  bool
	minX, minY, maxX, maxY float64
}

// city places things in the real wards: a ward drawn by population, a
// point in it by rejection in its bounding box, tested with geo.WardIndex
// (the answer ingest gives), as the simulator does.
type city struct {
	wards []ward
	cum   []float64
	ix    *geo.WardIndex
	urban map[string]bool
}

func newCity(ws []geo.Ward) (*city, error) {
	ws = append([]geo.Ward(nil), ws...)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Code < ws[j].Code })
	c := &city{ix: geo.NewWardIndex(ws), urban: map[string]bool{}}
	total := 0.0
	for _, w := range ws {
		if w.Geom == nil || len(w.Geom.FlatCoords()) == 0 {
			continue
		}
		a := ward{code: w.Code, urban: w.Kind == "ward", minX: math.Inf(1), minY: math.Inf(1), maxX: math.Inf(-1), maxY: math.Inf(-1)}
		flat, stride := w.Geom.FlatCoords(), w.Geom.Stride()
		for k := 0; k+1 < len(flat); k += stride {
			a.minX, a.maxX = math.Min(a.minX, flat[k]), math.Max(a.maxX, flat[k])
			a.minY, a.maxY = math.Min(a.minY, flat[k+1]), math.Max(a.maxY, flat[k+1])
		}
		weight := float64(w.Population)
		if weight <= 0 {
			weight = 20_000
		}
		total += weight
		c.wards = append(c.wards, a)
		c.cum = append(c.cum, total)
		c.urban[w.Code] = a.urban
	}
	if len(c.wards) == 0 {
		return nil, fmt.Errorf("seed: no ward has a polygon")
	}
	return c, nil
}

// place is a point with its ward.
type place struct {
	lon, lat float64
	ward     string
	urban    bool
	ewkb     []byte
}

func (c *city) random(rng *rand.Rand) place {
	x := rng.Float64() * c.cum[len(c.cum)-1]
	i := min(sort.SearchFloat64s(c.cum, x), len(c.wards)-1)
	a := &c.wards[i]
	for range 10_000 {
		lon, lat := a.minX+rng.Float64()*(a.maxX-a.minX), a.minY+rng.Float64()*(a.maxY-a.minY)
		if code, ok := c.ix.Lookup(lon, lat); ok && code == a.code {
			return place{lon, lat, a.code, a.urban, pointEWKB(lon, lat)}
		}
	}
	lon, lat := (a.minX+a.maxX)/2, (a.minY+a.maxY)/2
	return place{lon, lat, a.code, a.urban, pointEWKB(lon, lat)}
}

// at is the place of a point ("" ward outside the city).
func (c *city) at(lon, lat float64) place {
	code, _ := c.ix.Lookup(lon, lat)
	return place{lon, lat, code, c.urban[code], pointEWKB(lon, lat)}
}

// pointEWKB encodes a WGS 84 point as PostGIS's binary geometry (EWKB with
// SRID), what COPY takes for a geometry column.
func pointEWKB(lon, lat float64) []byte {
	b := make([]byte, 25)
	b[0] = 1
	binary.LittleEndian.PutUint32(b[1:], 0x20000001)
	binary.LittleEndian.PutUint32(b[5:], 4326)
	binary.LittleEndian.PutUint64(b[9:], math.Float64bits(lon))
	binary.LittleEndian.PutUint64(b[17:], math.Float64bits(lat))
	return b
}

// localHour is the hour of day in Hanoi, fractional.
func localHour(t time.Time) float64 {
	lt := t.In(hanoi)
	return float64(lt.Hour()) + float64(lt.Minute())/60
}

func gauss(x, mu, sigma float64) float64 {
	d := (x - mu) / sigma
	return math.Exp(-d * d / 2)
}

// hourDist is the distance between two hours of the day, around midnight.
func hourDist(a, b float64) float64 {
	d := math.Abs(a - b)
	return math.Min(d, 24-d)
}

// Rhythms, each in [0, 1]: how likely an event is at t relative to the
// busiest moment.
func rhythmTraffic(t time.Time) float64 { return 0.03 + 0.97*math.Pow(sim.LoadFactor(t, true), 1.5) }
func rhythmActivity(t time.Time) float64 {
	return 0.12 + 0.88*math.Min(1, sim.LoadFactor(t, true)*1.1)
}
func rhythmNight(t time.Time) float64 { return 0.15 + 0.85*gauss(hourDist(localHour(t), 23.5), 0, 2.6) }
func rhythmEvening(t time.Time) float64 {
	f := 0.15 + 0.85*gauss(localHour(t), 19.5, 2.8)
	if wd := t.In(hanoi).Weekday(); wd != time.Saturday && wd != time.Sunday {
		f *= 0.7
	}
	return f
}
func rhythmFlat(time.Time) float64 { return 1 }

// rhythmFlood: the rainy season (June to September) and afternoon storms.
func rhythmFlood(t time.Time) float64 {
	m := t.In(hanoi).Month()
	season := 0.12
	if m >= time.June && m <= time.September {
		season = 1
	} else if m == time.May || m == time.October {
		season = 0.4
	}
	return season * (0.3 + 0.7*gauss(localHour(t), 16.5, 3))
}

// drawTimes draws n times in [from, from+span) following rhythm, sorted.
func drawTimes(rng *rand.Rand, n int, from time.Time, span time.Duration, rhythm func(time.Time) float64) []time.Time {
	out := make([]time.Time, 0, n)
	for len(out) < n {
		t := from.Add(time.Duration(rng.Int64N(int64(span))).Truncate(time.Microsecond))
		if rng.Float64() < rhythm(t) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// lognormal draws a duration with the given median and spread.
func lognormal(rng *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(rng.NormFloat64()*sigma))
}

// share splits total into days parts: the size of part i.
func share(total int64, parts, i int) int {
	n := total / int64(parts)
	if int64(i) < total%int64(parts) {
		n++
	}
	return int(n)
}
