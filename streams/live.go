package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

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
//
// observe, on an ingest writer, only keeps the latest observation per id;
// the bodies are encoded when they go out, so a device that reports
// several times per flush is encoded once (at 12,500 msgs/s from 2,000
// sensors, most observations were encoded only to be overwritten).
type Live struct {
	broker  Broker
	deliver func([]Update)
	// wanted, if set, tells whether anyone could receive an update now:
	// with the in-process broker only this instance's clients can, and
	// with none of them on the device or unit layers a flush is dropped
	// instead of encoded (under load it was 6-11 % of iocd's CPU). A
	// client that subscribes later starts from its snapshot.
	wanted func() bool
	log    *slog.Logger
	cfg    Config

	mu      sync.Mutex // guards pending
	pending map[liveKey]liveState
	spare   map[liveKey]liveState // take's, swapped with pending
}

// liveKey is one device's or one unit's entry in Live.pending.
type liveKey struct {
	unit bool
	id   string
}

// liveState is what an update is encoded from: for a device, what its
// latest observation told when it was committed; a unit's body is the
// unit registry's latest state at the flush.
type liveState struct {
	seen             time.Time // when the observation was committed
	ts               time.Time
	kind             ingest.Kind
	online, pos      bool
	hasSpeed         bool
	lon, lat         float64
	speed, occupancy float64
	volume           int64
	ward, event, typ string
}

func newLive(b Broker, deliver func([]Update), log *slog.Logger, cfg Config) *Live {
	return &Live{broker: b, deliver: deliver, log: log, cfg: cfg, pending: map[liveKey]liveState{}, spare: map[liveKey]liveState{}}
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

// appendJSON appends d as json.Marshal encodes it (TestDeviceStateJSON):
// by hand, because it runs for every committed observation on an ingest
// writer, where reflection cost more than the rest of the fan-out.
func (d *deviceState) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, d.ID)
	if d.Kind != "" {
		b = append(b, `,"kind":`...)
		b = appendString(b, d.Kind)
	}
	if d.Location != nil {
		b = append(b, `,"location":{"type":`...)
		b = appendString(b, d.Location.Type)
		b = append(b, `,"coordinates":[`...)
		b = appendFloat(b, d.Location.Coordinates[0])
		b = append(b, ',')
		b = appendFloat(b, d.Location.Coordinates[1])
		b = append(b, "]}"...)
	}
	if d.Ward != nil {
		b = append(b, `,"ward":{"code":`...)
		b = appendString(b, d.Ward.Code)
		b = append(b, `,"name":`...)
		b = appendString(b, d.Ward.Name)
		b = append(b, '}')
	}
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, d.Online)
	b = append(b, `,"last_seen":"`...)
	b = d.LastSeen.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","last_ts":"`...)
	b = d.LastTS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if d.SpeedKmh != nil {
		b = append(b, `,"speed_kmh":`...)
		b = appendFloat(b, *d.SpeedKmh)
	}
	if d.Volume != nil {
		b = append(b, `,"volume":`...)
		b = strconv.AppendInt(b, *d.Volume, 10)
	}
	if d.Occupancy != nil {
		b = append(b, `,"occupancy":`...)
		b = appendFloat(b, *d.Occupancy)
	}
	if d.Event != "" {
		b = append(b, `,"event":`...)
		b = appendString(b, d.Event)
	}
	if d.Type != "" {
		b = append(b, `,"type":`...)
		b = appendString(b, d.Type)
	}
	return append(b, '}')
}

// appendString quotes s as encoding/json does (HTML-safe, U+2028 and
// U+2029 escaped).
func appendString(b []byte, s string) []byte {
	start := len(b)
	b, _ = jsontext.AppendQuote(b, s) // ingest checked the text is UTF-8
	if !strings.ContainsAny(s, "<>&\u2028\u2029") {
		return b
	}
	out := append([]byte(nil), b[start:]...)
	b = b[:start]
	for _, r := range string(out) {
		switch r {
		case '<', '>', '&', '\u2028', '\u2029':
			b = append(b, `\u`...)
			b = append(b, fmt.Sprintf("%04x", r)...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// appendFloat formats a float64 as encoding/json does (ES6 number
// formatting; NaN and infinities, which it refuses, never reach here:
// ingest validated the ranges).
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

type pointJSON struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

type wardJSON struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// observe keeps the latest state per id of a committed batch. It runs on
// an ingest writer: it only copies and coalesces.
func (l *Live) observe(obs []*ingest.Observation) {
	now := time.Now().UTC()
	l.mu.Lock()
	for _, o := range obs {
		if o.Kind == ingest.KindUnit {
			l.pending[liveKey{unit: true, id: o.DeviceID}] = liveState{}
			continue
		}
		l.pending[liveKey{id: o.DeviceID}] = liveState{
			seen: now, ts: o.TS, kind: o.Kind, online: o.Kind != ingest.KindStatus || o.Online,
			pos: o.HasPos, lon: o.Lon, lat: o.Lat, ward: o.Ward, hasSpeed: o.HasSpeed, speed: o.SpeedKmh,
			occupancy: o.Occupancy, volume: o.Volume, event: o.Event, typ: o.Type,
		}
	}
	l.mu.Unlock()
}

// discard drops the pending updates (no one to deliver them to).
func (l *Live) discard() {
	l.mu.Lock()
	clear(l.pending)
	l.mu.Unlock()
}

// take empties the pending updates and encodes them, outside the lock
// (observe waits only for the swap). Only run calls it.
func (l *Live) take() []Update {
	l.mu.Lock()
	taken := l.pending
	l.pending, l.spare = l.spare, taken
	l.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	defer clear(taken)
	batch := make([]Update, 0, len(taken))
	// One buffer holds every device body (each a capped slice of it; a
	// buffer outgrown stays behind its slices).
	buf := make([]byte, 0, 256*len(taken))
	for k, st := range taken {
		if k.unit {
			un, ok := l.cfg.unit(k.id)
			if !ok {
				continue
			}
			raw, err := l.cfg.UnitJSON(un)
			if err != nil {
				continue
			}
			batch = append(batch, Update{Layer: "unit", ID: k.id, Ward: un.Ward, Lon: un.Lon, Lat: un.Lat, Body: raw})
			continue
		}
		start := len(buf)
		buf = l.deviceState(k.id, &st).appendJSON(buf)
		batch = append(batch, Update{Layer: "device", ID: k.id, Ward: st.ward, Lon: st.lon, Lat: st.lat,
			Body: buf[start:len(buf):len(buf)]})
	}
	return batch
}

// deviceState is the device frame's object for st.
func (l *Live) deviceState(id string, st *liveState) *deviceState {
	d := &deviceState{ID: id, Online: st.online, LastSeen: st.seen, LastTS: st.ts}
	if st.kind != ingest.KindStatus {
		d.Kind = string(st.kind)
	}
	if st.pos {
		d.Location = &pointJSON{"Point", [2]float64{st.lon, st.lat}}
	}
	if st.ward != "" {
		d.Ward = &wardJSON{Code: st.ward}
		if l.cfg.WardName != nil {
			d.Ward.Name = l.cfg.WardName(st.ward)
		}
	}
	switch st.kind {
	case ingest.KindTraffic:
		if st.hasSpeed {
			v := st.speed
			d.SpeedKmh = &v
		}
		vol, occ := st.volume, st.occupancy
		d.Volume, d.Occupancy = &vol, &occ
	case ingest.KindCamera:
		d.Event = st.event
	case ingest.KindEmergency:
		d.Type = st.typ
	}
	return d
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
		if l.wanted != nil && !l.wanted() {
			l.discard()
			continue
		}
		batch := l.take()
		if len(batch) == 0 {
			continue
		}
		if err := l.broker.Publish(ctx, batch); err != nil {
			// Others miss these until the broker is back (they are
			// latest values: the next update heals them); this
			// instance's own clients still get them.
			metricFanoutErrors.Inc()
			l.deliver(batch)
		}
	}
}
