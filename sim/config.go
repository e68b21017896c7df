package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"

	"ioc/geo"
)

// Rate values with a special meaning.
const (
	// RateNatural publishes on the devices' own schedule (a sensor every
	// interval_s of simulated time, and so on).
	RateNatural = -1
	// RateMax publishes as fast as the broker acknowledges.
	RateMax = 0
)

// Config is everything a run needs. Zero values are filled by
// (*Config).setDefaults, the only place defaults live.
type Config struct {
	Broker   string // tcp://host:port; user and password may be in the URL
	Prefix   string // topic prefix, "city" by default
	ClientID string // prefix of the MQTT client ids; "iocsim-<pid>" by default
	Conns    int    // MQTT connections; 0 picks 1, or 4 for fast rates
	Window   int    // unacknowledged publishes per connection (default 1000)

	Seed uint64 // same seed, same devices, same messages
	// Rate in messages per second: RateNatural (<0) follows the devices'
	// schedules, RateMax (0) is as fast as possible.
	Rate     float64
	Duration time.Duration // 0: until the context ends
	Count    int64         // stop after this many publishes; 0: no limit

	Sensors int // traffic sensors (default 3000)
	Cameras int // cameras (default 300)
	Sources int // emergency sources besides the three call centres (default 60)
	Units   int // responder units (default 120)

	SensorInterval time.Duration // traffic reporting interval (default 60 s)
	UnitInterval   time.Duration // unit position interval (default 5 s)

	BadRatio  float64   // fraction of background messages replaced by malformed ones
	Scenarios string    // "", "all", or "congestion@2m,accident@5m,fire@8m"
	Truth     io.Writer // ground truth, one JSON object per line; nil: not written
	// ClockSpeed compresses simulated time (default 1). With ClockSpeed > 1
	// and a Duration, simulated time starts in the past so that it ends at
	// the wall clock: ingest rejects timestamps more than 5 min ahead.
	ClockSpeed float64
	Start      time.Time // simulated start; zero: see ClockSpeed
	Batch      int       // >1: traffic sensors publish arrays of this many readings
	RunID      string    // prefix of message ids; default derived from the start time

	WardsPath     string     // ../shared/data/hanoi/wards.geojson by default
	HospitalsPath string     // ambulance bases; hospitals.geojson next to the wards by default
	Wards         []geo.Ward // preloaded wards (tests); WardsPath is then ignored

	Progress      io.Writer     // progress lines; nil: none
	ProgressEvery time.Duration // default 2 s
	DrainTimeout  time.Duration // how long to wait for acks at the end (default 15 s)
	Logger        *slog.Logger

	// Observe, if set, is called from the acknowledgement goroutines for every
	// publish the broker acknowledged. Tests use it; it must be fast.
	Observe func(Message)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// DefaultWardsPath is relative to the repository root, where the data lives
// beside the project rather than inside it.
const DefaultWardsPath = "../shared/data/hanoi/wards.geojson"

func (c *Config) setDefaults() {
	if c.Broker == "" {
		c.Broker = "tcp://127.0.0.1:1883"
	}
	if c.Prefix == "" {
		c.Prefix = "city"
	}
	if c.ClientID == "" {
		c.ClientID = fmt.Sprintf("iocsim-%d", os.Getpid())
	}
	if c.Conns <= 0 {
		c.Conns = 1
		if c.Rate == RateMax || c.Rate > 2000 {
			c.Conns = 4
		}
	}
	if c.Window <= 0 {
		c.Window = 1000
	}
	if c.Sensors == 0 {
		c.Sensors = 3000
	}
	if c.Cameras == 0 {
		c.Cameras = 300
	}
	if c.Sources == 0 {
		c.Sources = 60
	}
	if c.Units == 0 {
		c.Units = 120
	}
	if c.SensorInterval <= 0 {
		c.SensorInterval = 60 * time.Second
	}
	if c.UnitInterval <= 0 {
		c.UnitInterval = 5 * time.Second
	}
	if c.ClockSpeed <= 0 {
		c.ClockSpeed = 1
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.WardsPath == "" {
		c.WardsPath = DefaultWardsPath
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Rate < 0 && c.Rate != RateNatural {
		c.Rate = RateNatural
	}
	if c.BadRatio < 0 || c.BadRatio > 1 {
		errs = append(errs, fmt.Errorf("bad ratio %v not in [0,1]", c.BadRatio))
	}
	if c.Sensors < 0 || c.Cameras < 0 || c.Sources < 0 || c.Units < 0 {
		errs = append(errs, errors.New("device counts must not be negative"))
	}
	if c.Sensors+c.Cameras+c.Sources+c.Units == 0 {
		errs = append(errs, errors.New("no devices"))
	}
	if c.Batch > MaxBatch {
		errs = append(errs, fmt.Errorf("batch %d over the contract's limit of %d", c.Batch, MaxBatch))
	}
	if c.Count < 0 || c.Duration < 0 {
		errs = append(errs, errors.New("count and duration must not be negative"))
	}
	if !topicPrefixOK(c.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q: no wildcards, no leading or trailing slash", c.Prefix))
	}
	return errors.Join(errs...)
}

func topicPrefixOK(p string) bool {
	if p == "" || p[0] == '/' || p[len(p)-1] == '/' {
		return false
	}
	for _, r := range p {
		if r == '+' || r == '#' || r == 0 {
			return false
		}
	}
	return true
}
