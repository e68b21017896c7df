package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// sensor is a traffic detector at a fixed place.
type sensor struct {
	id         string
	pos        Point
	ward       *wardArea
	urban      bool
	busy       float64 // how loaded this road is relative to the ward's norm
	freeFlow   float64 // km/h at night
	lanes      int
	lane       int     // reported lane (0: detector covers the whole approach)
	heading    float64 // direction of travel; <0 when the detector does not say
	tsf        tsFormat
	congestion *congestion // a scenario drives its readings, nil otherwise
	pending    [][]byte    // readings buffered for a batch
}

// camera is a video-analytics box.
type camera struct {
	id    string
	pos   Point
	ward  *wardArea
	urban bool
	tsf   tsFormat
}

// source is an emergency source: a call centre (calls from anywhere, with
// the caller's position) or a fixed device (panic button, fire alarm, flood
// sensor).
type source struct {
	id      string
	channel string
	pos     Point // fixed devices
	ward    *wardArea
	fixed   bool
	mean    time.Duration // mean time between signals
	tsf     tsFormat
}

// devices is the invented city: everything publishing, built from the seed.
type devices struct {
	sensors []*sensor
	cameras []*camera
	sources []*source // call centres first
	units   []*unit
}

// callCentres are the city-wide intake points (and the citizen app).
var callCentres = []struct {
	id, channel string
	mean        time.Duration
}{
	{"cc113-hanoi", "call_113", 8 * time.Minute},
	{"cc114-hanoi", "call_114", 30 * time.Minute},
	{"cc115-hanoi", "call_115", 6 * time.Minute},
	{"app-sos-hanoi", "app", 20 * time.Minute},
}

// buildDevices places every device. It draws only from rng, in a fixed
// order, so a seed reproduces the same city.
func buildDevices(cfg *Config, c *city, bases []Point, rng *rand.Rand) *devices {
	d := &devices{}
	perWard := map[string]int{}
	nextID := func(prefix string, w *wardArea) string {
		k := prefix + w.Code
		perWard[k]++
		return fmt.Sprintf("%s-%s-%03d", prefix, w.Code, perWard[k])
	}
	for range cfg.Sensors {
		w := c.pick(rng)
		s := &sensor{
			pos: c.sample(w, rng), ward: w, urban: w.Urban,
			busy:  0.75 + rng.Float64()*0.3,
			lanes: 1 + rng.IntN(4),
		}
		s.id = nextID("tfc", w)
		if w.Urban {
			s.freeFlow = 35 + rng.Float64()*25
		} else {
			s.freeFlow = 50 + rng.Float64()*30
		}
		if rng.IntN(3) == 0 {
			s.lane = 1 + rng.IntN(s.lanes)
		}
		s.heading = -1
		if rng.IntN(2) == 0 {
			s.heading = math.Round(rng.Float64() * 359)
		}
		if rng.IntN(4) == 0 {
			s.tsf = tsEpochMS // one vendor in four sends epoch milliseconds
		}
		d.sensors = append(d.sensors, s)
	}
	for range cfg.Cameras {
		w := c.pick(rng)
		cam := &camera{pos: c.sample(w, rng), ward: w, urban: w.Urban}
		cam.id = nextID("cam", w)
		if rng.IntN(3) == 0 {
			cam.tsf = tsEpochMS
		}
		d.cameras = append(d.cameras, cam)
	}
	for _, cc := range callCentres {
		d.sources = append(d.sources, &source{id: cc.id, channel: cc.channel, mean: cc.mean})
	}
	for i := range cfg.Sources {
		w := c.pick(rng)
		s := &source{pos: c.sample(w, rng), ward: w, fixed: true, mean: 12 * time.Hour}
		switch {
		case i%5 < 2:
			s.channel, s.id = "panic_button", nextID("pb", w)
		case i%5 < 4:
			s.channel, s.id = "fire_alarm", nextID("fa", w)
		default:
			s.channel, s.id = "sensor", nextID("fl", w)
			s.mean = 24 * time.Hour
		}
		d.sources = append(d.sources, s)
	}
	d.units = buildUnits(cfg.Units, c, bases, rng)
	return d
}

// normal background readings and events --------------------------------

// cameraEvent draws a background analytics event. The risky kinds
// (accident, fire, smoke, fight) appear only as low-confidence detections,
// as false positives do, so they stay apart from the scripted incidents.
func cameraEvent(rng *rand.Rand, cam *camera, ts time.Time) CameraFields {
	e := CameraFields{Count: -1}
	x := rng.Float64()
	switch {
	case x < 0.30:
		e.Event, e.Zone = "illegal_parking", "sidewalk"
		e.Count = 1 + rng.IntN(6)
	case x < 0.55:
		e.Event, e.Zone = "crowd", "junction"
		e.Count = 30 + rng.IntN(300)
	case x < 0.67:
		e.Event, e.Zone = "wrong_way", "lane-"+strconv1(1+rng.IntN(3))
	case x < 0.79:
		e.Event, e.Zone = "stalled_vehicle", "lane-"+strconv1(1+rng.IntN(3))
	case x < 0.85:
		e.Event = "intrusion"
	case x < 0.88:
		e.Event = "camera_tamper"
	case x < 0.91:
		e.Event = "flooding"
	default:
		e.Event = []string{"accident", "fire", "smoke", "fight"}[rng.IntN(4)]
		e.Confidence = 0.30 + rng.Float64()*0.30
	}
	if e.Confidence == 0 {
		e.Confidence = 0.55 + rng.Float64()*0.44
	}
	e.Confidence = math.Round(e.Confidence*100) / 100
	if rng.IntN(2) == 0 {
		e.SnapshotURL = fmt.Sprintf("https://vms.hanoi.example/snap/%s/%d.jpg", cam.id, ts.UnixMilli())
	}
	return e
}

func strconv1(i int) string { return fmt.Sprint(i) }

var (
	notes113 = []string{"Đánh nhau trước quán karaoke", "Trộm xe máy", "Gây rối trật tự", "Cướp giật điện thoại"}
	notes114 = []string{"Cháy nhà dân, khói đen", "Chập điện cột điện", "Cháy xe máy trong hầm để xe", "Người mắc kẹt trong thang máy"}
	notes115 = []string{"Người già khó thở", "Ngã xe máy, chảy máu đầu", "Đau ngực dữ dội", "Trẻ em sốt cao co giật", "Ngất xỉu tại chợ"}
)

// emergencySignal draws a background signal from a source; for a call
// centre the position is the caller's (population-weighted).
func emergencySignal(rng *rand.Rand, c *city, s *source, seq uint64) (EmergencyFields, Point) {
	e := EmergencyFields{Channel: s.channel}
	pos := s.pos
	if !s.fixed {
		pos = c.randomPoint(rng)
		e.CallerRef = fmt.Sprintf("%s-%06d", s.id[:5], seq%1_000_000)
	}
	switch s.channel {
	case "call_113":
		e.Type, e.Priority = "police", 2+rng.IntN(3)
		e.Note = notes113[rng.IntN(len(notes113))]
	case "call_114":
		e.Type, e.Priority = []string{"fire", "fire", "rescue", "hazmat"}[rng.IntN(4)], 1+rng.IntN(3)
		e.Note = notes114[rng.IntN(len(notes114))]
	case "call_115":
		e.Type, e.Priority = "medical", 1+rng.IntN(4)
		e.Note = notes115[rng.IntN(len(notes115))]
	case "app":
		e.Type, e.Priority = []string{"other", "panic", "medical"}[rng.IntN(3)], 3+rng.IntN(3)
	case "panic_button":
		e.Type, e.Priority = "panic", 2
	case "fire_alarm":
		e.Type, e.Priority = "fire", 2
	default:
		e.Type, e.Priority = "flood", 3
		e.Note = "Mực nước vượt ngưỡng 30 cm"
	}
	return e, pos
}

// expDuration draws an exponential interval with the given mean.
func expDuration(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(rng.ExpFloat64() * float64(mean))
}
