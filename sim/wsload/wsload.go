// Package wsload is the websocket load tool (iocsim ws): many clients with
// a mix of filters on iocd's /ws, emergency signals published over MQTT
// with their publish time kept, and the figures: delivered frames per
// second, publish-to-receipt latency of incident events (at every client
// that receives them) and of device updates, slow-consumer closes, and
// iocd's resident memory per idle connection.
package wsload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
)

// Config says what to run.
type Config struct {
	URL        string // iocd, http://host:port
	User, Pass string
	Broker     string // MQTT broker iocd ingests from
	Prefix     string
	Active     int           // clients subscribed and reading
	Idle       int           // clients connected with a subscribe to nothing new (incidents of a far bbox)
	Duration   time.Duration // publishing time
	SignalRate float64       // emergency signals per second
	Dialers    int           // connections opened at once (default 16)
	Settle     time.Duration // wait after the idle clients connected before reading iocd's memory (default 3 s)
	// Hold: Run leaves the idle clients connected and Report.Release
	// closes them (so that a second run measures the next connections on
	// top of them).
	Hold bool
	// Batch subscribes with "batch": true (device and unit updates as one
	// frame per round, as the dashboard does).
	Batch bool
}

// Report is what a run measured.
type Report struct {
	Active, Idle             int
	Mix                      map[string]int // active clients by view
	FramesPerSec             float64
	IncidentP50, IncidentP99 time.Duration // publish → receipt, over every receiving client
	IncidentSamples          int
	// The same split at the incident's opened_at (the alert engine's
	// clock, on the same machine): publish → opened (ingest and the
	// engine, once per incident) and opened → receipt (the commit, the
	// gateway and this tool, at every receiving client).
	OpenedP50, OpenedP99 time.Duration
	FanoutP50, FanoutP99 time.Duration
	// CityWideExpected is what the city-wide clients should have received
	// (each of them every incident opened); CityWideGot what they did.
	CityWideExpected, CityWideGot int
	DeviceP50, DeviceP99          time.Duration // reading ts → receipt
	DeviceSamples                 int
	SlowConsumerCloses            int
	OtherCloses                   int
	RSSBeforeIdle, RSSIdle        float64 // iocd's resident bytes
	BytesPerIdle                  float64
	Release                       func() `json:"-"` // with Config.Hold: closes the idle clients
}

// A view is one kind of screen in the mix.
type view struct {
	name     string
	share    int // of 10
	cityWide bool
	msg      func(i int) map[string]any
}

// mix is the screens of a control room at this scale: most are ward
// operators (their ward's incidents, devices and units), then street-level
// maps (a 2 km box in the inner city), city-zoom maps (incidents and the
// ward summaries) and city-wide dispatchers (incidents and every unit).
// Nobody watches every device of the city live: that is what the wards
// layer is for.
func mix(wards []string) []view {
	return []view{
		{name: "ward operator", share: 5, msg: func(i int) map[string]any {
			return map[string]any{"type": "subscribe", "layers": []string{"incidents", "devices", "units"}, "wards": []string{wards[i%len(wards)]}}
		}},
		{name: "street map (2 km box)", share: 2, msg: func(i int) map[string]any {
			x, y := 105.79+float64(i%8)*0.012, 20.99+float64((i/8)%6)*0.012
			return map[string]any{"type": "subscribe", "layers": []string{"incidents", "devices"}, "bbox": []float64{x, y, x + 0.02, y + 0.018}}
		}},
		{name: "city zoom", share: 2, cityWide: true, msg: func(int) map[string]any {
			return map[string]any{"type": "subscribe", "layers": []string{"incidents", "wards"}}
		}},
		{name: "dispatcher (city-wide units)", share: 1, cityWide: true, msg: func(int) map[string]any {
			return map[string]any{"type": "subscribe", "layers": []string{"incidents", "units"}}
		}},
	}
}

func pick(views []view, i int) view {
	n := i % 10
	for _, v := range views {
		if n < v.share {
			return v
		}
		n -= v.share
	}
	return views[0]
}

// Run runs the load and reports.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if cfg.Dialers <= 0 {
		cfg.Dialers = 16
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	token, err := login(cfg)
	if err != nil {
		return nil, err
	}
	wsURL := "ws" + strings.TrimPrefix(cfg.URL, "http") + "/ws"
	header := http.Header{"Authorization": {"Bearer " + token}}
	rep := &Report{Active: cfg.Active, Idle: cfg.Idle, Mix: map[string]int{}}
	var (
		mu        sync.Mutex
		incLat    []time.Duration
		fanLat    []time.Duration
		openLat   sync.Map // incident id → publish → opened_at
		devLat    []time.Duration
		frames    atomic.Int64
		published sync.Map // "lon,lat" → publish time
		opened    atomic.Int64
		cityGot   atomic.Int64
	)
	rssBefore, _ := rss(cfg, token)
	// dial opens n connections, cfg.Dialers at a time.
	dial := func(n int, what string, start func(i int, c *websocket.Conn)) ([]*websocket.Conn, error) {
		conns := make([]*websocket.Conn, n)
		var next atomic.Int64
		var firstErr error
		var errOnce sync.Once
		var wg sync.WaitGroup
		for range cfg.Dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					c, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, header)
					if err != nil {
						errOnce.Do(func() { firstErr = fmt.Errorf("%s client %d: %w", what, i, err) })
						return
					}
					conns[i] = c
					start(i, c)
					if i%1000 == 999 {
						fmt.Fprintf(progress, "%s clients: %d\n", what, i+1)
					}
				}
			}()
		}
		wg.Wait()
		return conns, firstErr
	}
	closeAll := func(cs []*websocket.Conn) {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}
	// Idle clients: connected and subscribed to a corner of the map with
	// nothing in it; they only get heartbeats.
	idle, err := dial(cfg.Idle, "idle", func(_ int, c *websocket.Conn) {
		c.WriteJSON(map[string]any{"type": "subscribe", "layers": []string{"incidents"}, "bbox": []float64{106.5, 21.5, 106.51, 21.51}})
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	})
	if err != nil || !cfg.Hold {
		defer closeAll(idle)
	} else {
		rep.Release = func() { closeAll(idle) } // the caller holds them
	}
	if err != nil {
		return nil, err
	}
	if cfg.Idle > 0 {
		time.Sleep(cfg.Settle)
		after, _ := rss(cfg, token)
		rep.RSSBeforeIdle, rep.RSSIdle = rssBefore, after
		rep.BytesPerIdle = (after - rssBefore) / float64(cfg.Idle)
	}
	if cfg.Active == 0 {
		return rep, nil
	}
	wards, err := wardCodes(ctx, wsURL, header)
	if err != nil {
		return nil, err
	}
	views := mix(wards)
	for i := range cfg.Active {
		rep.Mix[pick(views, i).name]++
	}
	var wg sync.WaitGroup
	var closes sync.Map
	var measuring atomic.Bool
	conns, err := dial(cfg.Active, "active", func(i int, c *websocket.Conn) {
		v := pick(views, i)
		m := v.msg(i)
		if cfg.Batch {
			m["batch"] = true
		}
		c.WriteJSON(m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Counted here and merged at the end: 5,000 readers sharing
			// a counter and a lock would measure the tool, not iocd.
			var n int64
			var dev []time.Duration
			defer func() {
				mu.Lock()
				devLat = append(devLat, dev...)
				mu.Unlock()
				frames.Add(n)
			}()
			for {
				_, raw, err := c.ReadMessage()
				now := time.Now()
				if err != nil {
					if ce, ok := err.(*websocket.CloseError); ok {
						n, _ := closes.LoadOrStore(ce.Code, new(atomic.Int64))
						n.(*atomic.Int64).Add(1)
					}
					return
				}
				if measuring.Load() {
					n++
				}
				switch {
				case bytes.HasPrefix(raw, []byte(`{"type":"incident"`)):
					var m struct {
						Op       string
						Incident struct {
							ID       string
							OpenedAt time.Time `json:"opened_at"`
							Location struct{ Coordinates [2]float64 }
						}
					}
					if json.Unmarshal(raw, &m) == nil && m.Op == "opened" {
						k := key(m.Incident.Location.Coordinates[0], m.Incident.Location.Coordinates[1])
						if t, ok := published.Load(k); ok {
							if v.cityWide {
								cityGot.Add(1)
							}
							pubAt := t.(time.Time)
							openLat.LoadOrStore(m.Incident.ID, m.Incident.OpenedAt.Sub(pubAt))
							mu.Lock()
							incLat = append(incLat, now.Sub(pubAt))
							fanLat = append(fanLat, now.Sub(m.Incident.OpenedAt))
							mu.Unlock()
						}
					}
				case measuring.Load() && bytes.HasPrefix(raw, []byte(`{"type":"device"`)):
					// The reading's time, without decoding the frame.
					if ts, ok := lastTS(raw); ok {
						dev = append(dev, now.Sub(ts))
					}
				case measuring.Load() && bytes.HasPrefix(raw, []byte(`{"type":"updates"`)):
					// Every device of the round (units carry no last_ts).
					for rest := raw; ; {
						ts, next, ok := nextLastTS(rest)
						if !ok {
							break
						}
						dev = append(dev, now.Sub(ts))
						rest = next
					}
				}
			}
		}()
	})
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "%d active clients connected\n", cfg.Active)
	time.Sleep(3 * time.Second) // snapshots
	measuring.Store(true)

	// Emergency signals at distinct places (1 km grid) so that each opens
	// its own incident; the place is the key to its publish time.
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(fmt.Sprintf("iocsim-ws-%d", time.Now().UnixNano()))
	pub := mqtt.NewClient(opts)
	if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("mqtt: %v", t.Error())
	}
	defer pub.Disconnect(100)
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.SignalRate))
	n := 0
	salt := float64(time.Now().Unix()%97) * 1e-6
	for time.Since(start) < cfg.Duration {
		<-tick.C
		lon := 105.76 + float64(n%14)*0.01 + salt
		lat := 20.96 + float64((n/14)%12)*0.01 + float64(n/168)*1e-4
		n++
		payload, _ := json.Marshal(map[string]any{"ts": time.Now().UTC().Format(time.RFC3339Nano), "lon": lon, "lat": lat,
			"type": "medical", "priority": 1, "channel": "call_115", "id": fmt.Sprintf("wsload-%d-%d", start.Unix(), n)})
		published.Store(key(lon, lat), time.Now())
		pub.Publish(cfg.Prefix+"/emergency/wsload-"+strconv.Itoa(n), 1, false, payload)
		opened.Add(1)
	}
	tick.Stop()
	time.Sleep(3 * time.Second) // the last deliveries
	elapsed := time.Since(start)
	measuring.Store(false)
	closeAll(conns)
	wg.Wait()
	rep.FramesPerSec = float64(frames.Load()) / elapsed.Seconds()
	closes.Range(func(k, v any) bool {
		if k.(int) == 4000 {
			rep.SlowConsumerCloses += int(v.(*atomic.Int64).Load())
		} else if k.(int) != websocket.CloseNormalClosure {
			rep.OtherCloses += int(v.(*atomic.Int64).Load())
		}
		return true
	})
	cityWide := 0
	for i := range cfg.Active {
		if pick(views, i).cityWide {
			cityWide++
		}
	}
	rep.CityWideExpected, rep.CityWideGot = cityWide*int(opened.Load()), int(cityGot.Load())
	rep.IncidentSamples, rep.DeviceSamples = len(incLat), len(devLat)
	rep.IncidentP50, rep.IncidentP99 = pct(incLat, 50), pct(incLat, 99)
	var opens []time.Duration
	openLat.Range(func(_, v any) bool { opens = append(opens, v.(time.Duration)); return true })
	rep.OpenedP50, rep.OpenedP99 = pct(opens, 50), pct(opens, 99)
	rep.FanoutP50, rep.FanoutP99 = pct(fanLat, 50), pct(fanLat, 99)
	rep.DeviceP50, rep.DeviceP99 = pct(devLat, 50), pct(devLat, 99)
	return rep, nil
}

// wardCodes asks the gateway for the wards (a snapshot of the wards layer).
func wardCodes(ctx context.Context, wsURL string, header http.Header) ([]string, error) {
	c, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, header)
	if err != nil {
		return nil, fmt.Errorf("wards: %w", err)
	}
	defer c.Close()
	c.WriteJSON(map[string]any{"type": "subscribe", "layers": []string{"wards"}})
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m struct {
			Type  string
			Wards []struct{ Code string }
		}
		if err := c.ReadJSON(&m); err != nil {
			return nil, fmt.Errorf("wards: %w", err)
		}
		if m.Type != "snapshot" {
			continue
		}
		var out []string
		for _, w := range m.Wards {
			out = append(out, w.Code)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("wards: the snapshot has none (no devices yet?)")
		}
		return out, nil
	}
}

// lastTS finds a device frame's "last_ts".
func lastTS(raw []byte) (time.Time, bool) {
	t, _, ok := nextLastTS(raw)
	return t, ok
}

// nextLastTS finds the first "last_ts" in raw and what follows it.
func nextLastTS(raw []byte) (time.Time, []byte, bool) {
	const k = `"last_ts":"`
	i := bytes.Index(raw, []byte(k))
	if i < 0 {
		return time.Time{}, nil, false
	}
	rest := raw[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, rest[j:], err == nil
}

func key(lon, lat float64) string {
	return strconv.FormatFloat(lon, 'f', 7, 64) + "," + strconv.FormatFloat(lat, 'f', 7, 64)
}

func pct(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, len(xs)*p/100)]
}

func login(cfg Config) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": cfg.User, "password": cfg.Pass})
	resp, err := http.Post(cfg.URL+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("login: status %d", resp.StatusCode)
	}
	return out.Token, nil
}

// rss reads iocd's process_resident_memory_bytes from /metrics.
func rss(cfg Config, token string) (float64, error) {
	req, _ := http.NewRequest("GET", cfg.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes")
}

// WriteText prints the report.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "clients: %d active, %d idle\n", r.Active, r.Idle)
	names := make([]string, 0, len(r.Mix))
	for k := range r.Mix {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %5d %s\n", r.Mix[k], k)
	}
	fmt.Fprintf(w, "delivered: %.0f frames/s to the active clients\n", r.FramesPerSec)
	fmt.Fprintf(w, "incident event, MQTT publish → websocket receipt: p50 %v, p99 %v (%d receipts)\n", r.IncidentP50.Round(time.Microsecond*100), r.IncidentP99.Round(time.Microsecond*100), r.IncidentSamples)
	fmt.Fprintf(w, "  of which publish → opened_at: p50 %v, p99 %v; opened_at → receipt: p50 %v, p99 %v\n",
		r.OpenedP50.Round(time.Microsecond*100), r.OpenedP99.Round(time.Microsecond*100), r.FanoutP50.Round(time.Microsecond*100), r.FanoutP99.Round(time.Microsecond*100))
	if r.CityWideExpected > 0 {
		fmt.Fprintf(w, "city-wide clients received %d of the %d incident openings they should see\n", r.CityWideGot, r.CityWideExpected)
	}
	fmt.Fprintf(w, "device update, reading ts → websocket receipt: p50 %v, p99 %v (%d receipts)\n", r.DeviceP50.Round(time.Millisecond), r.DeviceP99.Round(time.Millisecond), r.DeviceSamples)
	fmt.Fprintf(w, "slow-consumer closes: %d, other closes: %d\n", r.SlowConsumerCloses, r.OtherCloses)
	if r.Idle > 0 {
		fmt.Fprintf(w, "iocd resident memory: %.1f MiB before the idle clients, %.1f MiB with them: %.1f KB per idle connection\n",
			r.RSSBeforeIdle/(1<<20), r.RSSIdle/(1<<20), r.BytesPerIdle/1000)
	}
}
