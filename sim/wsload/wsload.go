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
}

// Report is what a run measured.
type Report struct {
	Active, Idle             int
	Connected                int
	FramesPerSec             float64
	IncidentP50, IncidentP99 time.Duration // publish → receipt, over every receiving client
	IncidentSamples          int
	DeviceP50, DeviceP99     time.Duration // reading ts → receipt
	DeviceSamples            int
	SlowConsumerCloses       int
	OtherCloses              int
	RSSBeforeIdle, RSSIdle   float64 // iocd's resident bytes
	BytesPerIdle             float64
}

// Run runs the load and reports.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	token, err := login(cfg)
	if err != nil {
		return nil, err
	}
	wsURL := "ws" + strings.TrimPrefix(cfg.URL, "http") + "/ws"
	rep := &Report{Active: cfg.Active, Idle: cfg.Idle}
	var (
		mu        sync.Mutex
		incLat    []time.Duration
		devLat    []time.Duration
		frames    atomic.Int64
		published sync.Map // "lon,lat" → publish time
	)
	rssBefore, _ := rss(cfg, token)
	// Idle clients: connected and subscribed to a corner of the map with
	// nothing in it; they only get heartbeats.
	var idle []*websocket.Conn
	for i := 0; i < cfg.Idle; i++ {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			return nil, fmt.Errorf("idle client %d: %w", i, err)
		}
		c.WriteJSON(map[string]any{"type": "subscribe", "layers": []string{"incidents"}, "bbox": []float64{106.5, 21.5, 106.51, 21.51}})
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		idle = append(idle, c)
		if i%1000 == 999 {
			fmt.Fprintf(progress, "idle clients: %d\n", i+1)
		}
	}
	if cfg.Idle > 0 {
		time.Sleep(3 * time.Second)
		after, _ := rss(cfg, token)
		rep.RSSBeforeIdle, rep.RSSIdle = rssBefore, after
		rep.BytesPerIdle = (after - rssBefore) / float64(cfg.Idle)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// Active clients, a mix of views.
	views := []map[string]any{
		{"type": "subscribe", "layers": []string{"incidents", "devices", "units"}},                                         // city-wide
		{"type": "subscribe", "layers": []string{"incidents", "devices"}, "bbox": []float64{105.83, 21.01, 105.87, 21.05}}, // the old quarter
		{"type": "subscribe", "layers": []string{"incidents", "wards"}},                                                    // city zoom
	}
	var wg sync.WaitGroup
	var closes sync.Map
	var conns []*websocket.Conn
	for i := 0; i < cfg.Active; i++ {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		conns = append(conns, c)
		c.WriteJSON(views[i%len(views)])
		wg.Add(1)
		go func() {
			defer wg.Done()
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
				frames.Add(1)
				switch {
				case bytes.HasPrefix(raw, []byte(`{"type":"incident"`)):
					var m struct {
						Op       string
						Incident struct {
							Location struct{ Coordinates [2]float64 }
						}
					}
					if json.Unmarshal(raw, &m) == nil && m.Op == "opened" {
						k := key(m.Incident.Location.Coordinates[0], m.Incident.Location.Coordinates[1])
						if t, ok := published.Load(k); ok {
							mu.Lock()
							incLat = append(incLat, now.Sub(t.(time.Time)))
							mu.Unlock()
						}
					}
				case bytes.HasPrefix(raw, []byte(`{"device"`)), bytes.Contains(raw[:min(len(raw), 20)], []byte(`"device"`)):
					var m struct {
						Device struct {
							LastTS time.Time `json:"last_ts"`
						}
					}
					if json.Unmarshal(raw, &m) == nil && !m.Device.LastTS.IsZero() {
						mu.Lock()
						devLat = append(devLat, now.Sub(m.Device.LastTS))
						mu.Unlock()
					}
				}
			}
		}()
	}
	fmt.Fprintf(progress, "%d active clients connected\n", cfg.Active)
	time.Sleep(2 * time.Second) // snapshots
	frames.Store(0)
	mu.Lock()
	devLat = devLat[:0]
	mu.Unlock()

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
	}
	tick.Stop()
	time.Sleep(3 * time.Second) // the last deliveries
	elapsed := time.Since(start)
	rep.FramesPerSec = float64(frames.Load()) / elapsed.Seconds()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	closes.Range(func(k, v any) bool {
		if k.(int) == 4000 {
			rep.SlowConsumerCloses += int(v.(*atomic.Int64).Load())
		} else if k.(int) != websocket.CloseNormalClosure {
			rep.OtherCloses += int(v.(*atomic.Int64).Load())
		}
		return true
	})
	rep.Connected = cfg.Active + cfg.Idle
	rep.IncidentSamples, rep.DeviceSamples = len(incLat), len(devLat)
	rep.IncidentP50, rep.IncidentP99 = pct(incLat, 50), pct(incLat, 99)
	rep.DeviceP50, rep.DeviceP99 = pct(devLat, 50), pct(devLat, 99)
	return rep, nil
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
	fmt.Fprintf(w, "delivered: %.0f frames/s to the active clients\n", r.FramesPerSec)
	fmt.Fprintf(w, "incident event, MQTT publish → websocket receipt: p50 %v, p99 %v (%d receipts)\n", r.IncidentP50.Round(time.Microsecond*100), r.IncidentP99.Round(time.Microsecond*100), r.IncidentSamples)
	fmt.Fprintf(w, "device update, reading ts → websocket receipt: p50 %v, p99 %v (%d receipts)\n", r.DeviceP50.Round(time.Millisecond), r.DeviceP99.Round(time.Millisecond), r.DeviceSamples)
	fmt.Fprintf(w, "slow-consumer closes: %d, other closes: %d\n", r.SlowConsumerCloses, r.OtherCloses)
	if r.Idle > 0 {
		fmt.Fprintf(w, "iocd resident memory: %.1f MiB before the idle clients, %.1f MiB with them: %.1f KB per idle connection\n",
			r.RSSBeforeIdle/(1<<20), r.RSSIdle/(1<<20), r.BytesPerIdle/1000)
	}
}
