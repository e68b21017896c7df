package streams

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"ioc/ingest"
)

// Update is the latest state of one device or unit, as it travels between
// instances.
type Update struct {
	Layer string          `json:"l"` // device, unit
	ID    string          `json:"id"`
	Ward  string          `json:"w,omitempty"`
	Lon   float64         `json:"x"`
	Lat   float64         `json:"y"`
	Body  json.RawMessage `json:"b"` // the object a client receives
}

// liveFlush is how often this instance's coalesced updates go out.
const liveFlush = 100 * time.Millisecond

// Live coalesces this instance's device and unit updates (latest per id)
// and hands them to the broker in batches; what the broker delivers (from
// every instance) goes to the gateway.
type Live struct {
	broker  Broker
	deliver func([]Update)
	log     *slog.Logger

	mu      sync.Mutex // guards pending
	pending map[string]Update
}

func newLive(b Broker, deliver func([]Update), log *slog.Logger) *Live {
	return &Live{broker: b, deliver: deliver, log: log, pending: map[string]Update{}}
}

// deviceState is a device frame's object: what the latest observation
// tells. Clients merge it into the device they hold (from the snapshot,
// GET /api/v1/devices) by id.
type deviceState struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind,omitempty"`
	Location *pointJSON `json:"location,omitempty"`
	Ward     *wardJSON  `json:"ward,omitempty"`
	Online   bool       `json:"online"`
	LastSeen time.Time  `json:"last_seen"`
	LastTS   time.Time  `json:"last_ts"`
	// The latest reading, by kind.
	SpeedKmh  *float64 `json:"speed_kmh,omitempty"`
	Volume    *int64   `json:"volume,omitempty"`
	Occupancy *float64 `json:"occupancy,omitempty"`
	Event     string   `json:"event,omitempty"`
	Type      string   `json:"type,omitempty"`
}

type pointJSON struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

type wardJSON struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// observe turns a committed batch into updates. It runs on an ingest
// writer: it only encodes and coalesces.
func (l *Live) observe(obs []*ingest.Observation, cfg Config) {
	now := time.Now().UTC()
	batch := make([]Update, 0, len(obs))
	for _, o := range obs {
		u := Update{ID: o.DeviceID, Ward: o.Ward, Lon: o.Lon, Lat: o.Lat}
		if o.Kind == ingest.KindUnit {
			un, ok := cfg.unit(o.DeviceID)
			if !ok {
				continue
			}
			raw, err := cfg.UnitJSON(un)
			if err != nil {
				continue
			}
			u.Layer, u.Body, u.Ward, u.Lon, u.Lat = "unit", raw, un.Ward, un.Lon, un.Lat
		} else {
			d := deviceState{ID: o.DeviceID, Online: true, LastSeen: now, LastTS: o.TS}
			if o.Kind != ingest.KindStatus {
				d.Kind = string(o.Kind)
			} else {
				d.Online = o.Online
			}
			if o.HasPos {
				d.Location = &pointJSON{"Point", [2]float64{o.Lon, o.Lat}}
			}
			if o.Ward != "" {
				d.Ward = &wardJSON{Code: o.Ward}
				if cfg.WardName != nil {
					d.Ward.Name = cfg.WardName(o.Ward)
				}
			}
			switch o.Kind {
			case ingest.KindTraffic:
				if o.HasSpeed {
					v := o.SpeedKmh
					d.SpeedKmh = &v
				}
				vol, occ := o.Volume, o.Occupancy
				d.Volume, d.Occupancy = &vol, &occ
			case ingest.KindCamera:
				d.Event = o.Event
			case ingest.KindEmergency:
				d.Type = o.Type
			}
			raw, err := json.Marshal(d)
			if err != nil {
				continue
			}
			u.Layer, u.Body = "device", raw
		}
		batch = append(batch, u)
	}
	l.mu.Lock()
	for _, u := range batch {
		l.pending[u.Layer+":"+u.ID] = u
	}
	l.mu.Unlock()
}

// run flushes the coalesced updates to the broker and delivers what the
// broker brings, until ctx ends.
func (l *Live) run(ctx context.Context) {
	go l.broker.Run(ctx, l.deliver)
	t := time.NewTicker(liveFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		if len(l.pending) == 0 {
			l.mu.Unlock()
			continue
		}
		batch := make([]Update, 0, len(l.pending))
		for _, u := range l.pending {
			batch = append(batch, u)
		}
		clear(l.pending)
		l.mu.Unlock()
		if err := l.broker.Publish(ctx, batch); err != nil {
			// Others miss these until the broker is back (they are
			// latest values: the next update heals them); this
			// instance's own clients still get them.
			metricFanoutErrors.Inc()
			l.deliver(batch)
		}
	}
}
