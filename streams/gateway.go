package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/singleflight"

	"ioc/alerts"
	"ioc/api"
	"ioc/db"
	"ioc/geo"
	"ioc/ingest"
)

// Config is what the gateway needs from the other parts, and its limits.
// Zero limits take the defaults (see defaults).
type Config struct {
	Events *alerts.Events
	Store  *alerts.Store
	// Devices and DeviceHealth read the devices table (ingest.Reader).
	Devices      func(ctx context.Context, f ingest.DeviceFilter) ([]ingest.Device, bool, error)
	DeviceHealth func(ctx context.Context) (map[string]ingest.DeviceHealth, error)
	// Units lists the units' latest state; UnitJSON encodes one as the API
	// does (geo.Service).
	Units     func() []geo.Unit
	UnitJSON  func(geo.Unit) ([]byte, error)
	Unit      func(id string) (geo.Unit, bool)
	WardName  func(code string) string
	KnownWard func(code string) bool
	// Credential returns a request's token or session; Recheck tells who
	// it stands for now (auth.Service), api.ErrUnauthenticated once it
	// ended.
	Credential func(r *http.Request) string
	Recheck    func(ctx context.Context, token string) (api.Caller, error)
	// Broker fans device and unit updates out between instances (nil:
	// in-process).
	Broker Broker

	Heartbeat      time.Duration // heartbeat frames (default 5 s)
	PingInterval   time.Duration // websocket pings (default 25 s)
	WriteTimeout   time.Duration // per write to the socket (default 10 s)
	UpdateInterval time.Duration // device/unit updates per client at most this often (default 500 ms)
	WardsInterval  time.Duration // wards layer refresh (default 3 s)
	SessionCheck   time.Duration // session recheck (default 3 s)
	QueueBytes     int           // per client (default 4 MiB)
	ResumeMax      int           // events a resume may replay before a reset (default 10,000)
	SnapshotMax    int           // devices in a snapshot (default 20,000)

	Log *slog.Logger
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, 5*time.Second)
	def(&c.PingInterval, 25*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.UpdateInterval, 500*time.Millisecond)
	def(&c.WardsInterval, 3*time.Second)
	def(&c.SessionCheck, 3*time.Second)
	if c.QueueBytes <= 0 {
		c.QueueBytes = 4 << 20
	}
	if c.ResumeMax <= 0 {
		c.ResumeMax = 10000
	}
	if c.SnapshotMax <= 0 {
		c.SnapshotMax = 20000
	}
	if c.Broker == nil {
		c.Broker = NewMemoryBroker()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Gateway serves /ws. Safe for concurrent use; Run is its goroutines.
type Gateway struct {
	cfg      Config
	upgrader websocket.Upgrader
	live     *Live

	mu      sync.RWMutex // guards clients and idx; taken before a client's mu
	clients map[*client]struct{}
	idx     *updateIndex

	// Snapshots' incident parts, shared between views with the same
	// filter at the latest seq (incidentPart).
	snapFlight singleflight.Group
	snapMu     sync.Mutex // guards what follows
	snaps      map[string]incidentPart
	snapBytes  int
	snapSeq    int64

	epoch atomic.Pointer[string]
	// started is closed once the pump's starting seq is fixed (Run).
	// Until then no socket is accepted: a client that went live at an
	// earlier seq would miss the events between it and the pump's start.
	started   chan struct{}
	delivered atomic.Int64 // seq of the last incident event handed to every client
	sourceOK  atomic.Bool  // the incident event source is live
	wards     atomic.Pointer[[]wardSummary]
	// slowCloses counts the clients closed as slow consumers.
	slowCloses atomic.Int64
}

// Stats is what the gateway holds now.
type Stats struct {
	Clients            int
	SlowConsumerCloses int64
}

// wantsUpdates tells whether any client here is on the device or unit
// layers (only those are in a group).
func (g *Gateway) wantsUpdates() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.idx.groups) > 0
}

// Stats reports the open connections and the slow-consumer closes so far.
func (g *Gateway) Stats() Stats {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return Stats{Clients: len(g.clients), SlowConsumerCloses: g.slowCloses.Load()}
}

// New makes the gateway.
func New(cfg Config) *Gateway {
	cfg.defaults()
	g := &Gateway{cfg: cfg, clients: map[*client]struct{}{}, idx: newUpdateIndex(), snaps: map[string]incidentPart{}, started: make(chan struct{})}
	g.live = newLive(cfg.Broker, g.updates, cfg.Log, cfg)
	if _, local := cfg.Broker.(*MemoryBroker); local {
		g.live.wanted = g.wantsUpdates
	}
	g.upgrader = websocket.Upgrader{
		// Small read buffers (clients send only subscribes) and write
		// buffers from a pool (gorilla writes only control frames and
		// the handshake; data frames go out ready made, cork.go): an
		// idle socket holds little.
		ReadBufferSize: 1024, WriteBufferPool: &sync.Pool{},
		// The security layer has already refused a cookie-carrying
		// handshake from a foreign Origin (auth.Service.Wrap); a bearer
		// token cannot be sent by a browser's websocket.
		CheckOrigin: func(*http.Request) bool { return true },
		// No compression: every client gets the same bytes of a frame
		// (wireFrame), made once.
		EnableCompression: false,
	}
	empty := ""
	g.epoch.Store(&empty)
	return g
}

// Ready reports whether incident events are flowing (for /readyz).
func (g *Gateway) Ready() error {
	if !g.sourceOK.Load() {
		return errors.New("incident event source down")
	}
	return nil
}

// FanoutReady reports whether device and unit updates reach the other
// instances (always true in-process).
func (g *Gateway) FanoutReady() error { return g.cfg.Broker.Healthy() }

// Observe takes a committed batch of observations (ingest's OnCommit,
// via iocd's observers): it must not block.
func (g *Gateway) Observe(obs []*ingest.Observation) { g.live.observe(obs) }

// Run runs the incident pump, the tickers and the broker until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	start, err := g.start(ctx)
	if err != nil {
		return nil // ctx ended
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) { g.pump(ctx, start) })
	run(g.heartbeats)
	run(g.rounds)
	run(g.wardsLoop)
	run(g.sessions)
	run(g.watchSources)
	run(func(ctx context.Context) { g.live.run(ctx) })
	<-ctx.Done()
	g.mu.RLock()
	for c := range g.clients {
		c.close(websocket.CloseGoingAway, "server going away")
	}
	g.mu.RUnlock()
	wg.Wait()
	return nil
}

// start reads the log's epoch and its last seq, where the pump begins,
// retrying until PostgreSQL answers; then sockets are accepted.
func (g *Gateway) start(ctx context.Context) (int64, error) {
	var b db.Backoff
	for {
		epoch, err := g.cfg.Events.Epoch(ctx)
		var seq int64
		if err == nil {
			seq, err = g.cfg.Events.LastSeq(ctx)
		}
		if err == nil {
			g.epoch.Store(&epoch)
			g.delivered.Store(seq)
			close(g.started)
			return seq, nil
		}
		g.cfg.Log.Warn("streams: reading the incident log's epoch and last seq", "err", err)
		if err := b.Wait(ctx); err != nil {
			return 0, err
		}
	}
}

// accepting reports whether Run has fixed the pump's start.
func (g *Gateway) accepting() bool {
	select {
	case <-g.started:
		return true
	default:
		return false
	}
}

func (g *Gateway) each(f func(*client)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for c := range g.clients {
		f(c)
	}
}

func prepare(v any) (frame, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return frame{}, err
	}
	return prepareRaw(raw), nil
}

// prepareRaw frames raw (JSON) once for every client.
func prepareRaw(raw []byte) frame {
	return frame{wire: wireFrame(raw), size: len(raw)}
}

// incidentFrame encodes an event once for every client.
func incidentFrame(ev alerts.Event) (frame, error) {
	f, err := prepare(struct {
		Type     string          `json:"type"`
		Seq      int64           `json:"seq"`
		Op       string          `json:"op"`
		Incident json.RawMessage `json:"incident"`
	}{"incident", ev.Seq, ev.Op, ev.Incident})
	f.seq = ev.Seq
	return f, err
}

// pump hands every incident event to the clients in seq order. It keeps
// its own position: after a lost subscription (too slow) it reads what it
// missed from the log, so no client ever sees a gap.
func (g *Gateway) pump(ctx context.Context, last int64) {
	var b db.Backoff
	for ctx.Err() == nil {
		sub, cancel := g.cfg.Events.Subscribe()
		err := g.follow(ctx, sub, &last)
		cancel()
		if ctx.Err() != nil {
			return
		}
		g.cfg.Log.Warn("streams: incident events interrupted; catching up from the log", "err", err, "at_seq", last)
		metricSourceOutages.WithLabelValues("incidents").Inc()
		if b.Wait(ctx) != nil {
			return
		}
	}
}

// follow delivers from sub, filling any gap from the log, until sub is
// closed or ctx ends.
func (g *Gateway) follow(ctx context.Context, sub <-chan alerts.Event, last *int64) error {
	if err := g.catchUp(ctx, last); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub:
			if !ok {
				return errors.New("subscriber dropped (too slow)")
			}
			if ev.Seq <= *last {
				continue
			}
			if ev.Seq > *last+1 {
				if err := g.catchUp(ctx, last); err != nil {
					return err
				}
				if ev.Seq <= *last {
					continue
				}
			}
			g.deliver(ev)
			*last = ev.Seq
		}
	}
}

// catchUp delivers the logged events after *last.
func (g *Gateway) catchUp(ctx context.Context, last *int64) error {
	for {
		evs, err := g.cfg.Events.Since(ctx, *last, 1000)
		if errors.Is(err, alerts.ErrEventsGone) {
			// Trimmed while we were away: clients that missed them get a
			// reset when they resume; live ones go on from now.
			seq, err := g.cfg.Events.LastSeq(ctx)
			if err != nil {
				return err
			}
			g.resetAll("too_old")
			*last = seq
			g.delivered.Store(seq)
			return nil
		}
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Seq == *last+1 {
				g.deliver(ev)
				*last = ev.Seq
			}
		}
		if len(evs) < 1000 {
			return nil
		}
	}
}

func (g *Gateway) deliver(ev alerts.Event) {
	f, err := incidentFrame(ev)
	if err != nil {
		g.cfg.Log.Error("streams: encoding an incident event", "seq", ev.Seq, "err", err)
		return
	}
	k := keyOf(ev.Incident)
	g.each(func(c *client) { c.incident(f, k) })
	g.delivered.Store(ev.Seq)
	metricIncidentEvents.Inc()
}

// resetAll closes every client as a slow consumer would be: they resume
// and, their events being gone, get a reset and a snapshot.
func (g *Gateway) resetAll(reason string) {
	g.each(func(c *client) { c.close(CloseSlowConsumer, "events_lost_"+reason) })
}

// updates distributes a batch of device and unit updates to the clients.
func (g *Gateway) updates(us []Update) {
	g.mu.RLock()
	n := len(g.clients)
	g.mu.RUnlock()
	if n == 0 {
		return // latest values: a client that comes later starts from a snapshot
	}
	frames := make([]frame, len(us))
	for i, u := range us {
		if u.Layer != "device" && u.Layer != "unit" {
			continue
		}
		// {"type":"device","device":{...}}, the body as it came.
		raw := make([]byte, 0, len(u.Body)+2*len(u.Layer)+16)
		raw = append(raw, `{"type":"`...)
		raw = append(raw, u.Layer...)
		raw = append(raw, `","`...)
		raw = append(raw, u.Layer...)
		raw = append(raw, `":`...)
		raw = append(raw, u.Body...)
		raw = append(raw, '}')
		f := prepareRaw(raw)
		f.body, f.unit = u.Body, u.Layer == "unit"
		frames[i] = f
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for i, u := range us {
		f := frames[i]
		if f.wire == nil {
			continue
		}
		key := u.Layer[:1] + ":" + u.ID
		layer := LayerDevices
		if u.Layer == "unit" {
			layer = LayerUnits
		}
		g.idx.each(u.Ward, u.Lon, u.Lat, func(grp *group) { grp.update(key, layer, f, u.Ward, u.Lon, u.Lat) })
	}
}

func (g *Gateway) heartbeats(ctx context.Context) {
	t := time.NewTicker(g.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f, err := prepare(heartbeatFrame{"heartbeat", g.delivered.Load(), *g.epoch.Load(), now.UTC().Format(time.RFC3339Nano)})
			if err != nil {
				continue
			}
			g.each(func(c *client) { c.control(f, "") })
			g.gauges()
		}
	}
}

// watchSources tells clients when the incident event source goes or comes
// back, and keeps the readiness flag.
func (g *Gateway) watchSources(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	fanOK := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok := g.cfg.Events.Listening(); ok != g.sourceOK.Load() {
			g.sourceOK.Store(ok)
			g.sourceChanged("incidents", ok, "incident events delayed: the event source is reconnecting; nothing is lost")
		}
		if ok := g.cfg.Broker.Healthy() == nil; ok != fanOK {
			fanOK = ok
			g.sourceChanged("fanout", ok, "device and unit updates from other instances are delayed")
		}
	}
}

// sourceChanged records an event source going (with why) or coming back,
// and tells the clients.
func (g *Gateway) sourceChanged(source string, ok bool, downMsg string) {
	metricSourceUp.WithLabelValues(source).Set(b2f(ok))
	msg := ""
	if !ok {
		msg = downMsg
		metricSourceOutages.WithLabelValues(source).Inc()
	}
	g.status(source, ok, msg)
}

func (g *Gateway) status(source string, ok bool, msg string) {
	f, err := prepare(statusFrame{"status", source, ok, msg})
	if err == nil {
		g.each(func(c *client) { c.control(f, "") })
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// wardsLoop refreshes the wards layer and sends it when it changed.
func (g *Gateway) wardsLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.WardsInterval)
	defer t.Stop()
	var prev []byte
	for {
		sums, err := g.wardSummaries(ctx)
		if err != nil && ctx.Err() == nil {
			g.cfg.Log.Warn("streams: wards layer", "err", err)
		}
		if err == nil {
			g.wards.Store(&sums)
			raw, _ := json.Marshal(sums)
			if string(raw) != string(prev) {
				prev = raw
				g.sendWards(sums)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Gateway) wardSummaries(ctx context.Context) ([]wardSummary, error) {
	inc, err := g.cfg.Store.OpenByWard(ctx)
	if err != nil {
		return nil, err
	}
	dev, err := g.cfg.DeviceHealth(ctx)
	if err != nil {
		return nil, err
	}
	codes := map[string]bool{}
	for c := range inc {
		codes[c] = true
	}
	for c := range dev {
		codes[c] = true
	}
	delete(codes, "")
	out := make([]wardSummary, 0, len(codes))
	for code := range codes {
		s := wardSummary{Code: code, Incidents: map[string]int{}}
		if g.cfg.WardName != nil {
			s.Name = g.cfg.WardName(code)
		}
		for _, sev := range severities {
			s.Incidents[sev] = inc[code][sev]
		}
		s.Devices.Online, s.Devices.Offline = dev[code].Online, dev[code].Offline
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b wardSummary) int { return strings.Compare(a.Code, b.Code) })
	return out, nil
}

// wardsFor narrows the summaries to a view's wards.
func wardsFor(sums []wardSummary, v *view) []wardSummary {
	if v.wards == nil {
		return sums
	}
	out := []wardSummary{}
	for _, s := range sums {
		if v.wards[s.Code] {
			out = append(out, s)
		}
	}
	return out
}

func (g *Gateway) sendWards(sums []wardSummary) {
	all, err := prepare(wardsFrame{"wards", sums})
	if err != nil {
		return
	}
	g.each(func(c *client) {
		c.mu.Lock()
		v := c.view
		c.mu.Unlock()
		if v == nil || !v.has(LayerWards) {
			return
		}
		f := all
		if v.wards != nil { // a scoped or ward-filtered view: its own frame
			if f, err = prepare(wardsFrame{"wards", wardsFor(sums, v)}); err != nil {
				return
			}
		}
		c.control(f, LayerWards)
	})
}

// sessions closes the sockets whose session ended or whose user changed,
// checking each distinct credential once per round.
func (g *Gateway) sessions(ctx context.Context) {
	t := time.NewTicker(g.cfg.SessionCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		byToken := map[string][]*client{}
		g.each(func(c *client) { byToken[c.token] = append(byToken[c.token], c) })
		for token, cs := range byToken {
			now, err := g.cfg.Recheck(ctx, token)
			if err != nil && !errors.Is(err, api.ErrUnauthenticated) {
				continue // cannot tell (database away): keep serving
			}
			for _, c := range cs {
				if err != nil || now.Role != c.caller.Role || !slices.Equal(now.Wards, c.caller.Wards) {
					c.close(CloseSessionEnded, "session_ended")
					metricSessionEnded.Inc()
				}
			}
		}
	}
}

func (g *Gateway) gauges() {
	var n, queued int
	var layers [4]int
	g.each(func(c *client) {
		n++
		c.mu.Lock()
		queued += c.queued
		if c.view != nil {
			for i, on := range c.view.layers {
				if on {
					layers[i]++
				}
			}
		}
		c.mu.Unlock()
	})
	metricConnections.Set(float64(n))
	metricQueueBytes.Set(float64(queued))
	for i, l := range []string{LayerIncidents, LayerDevices, LayerUnits, LayerWards} {
		metricSubscriptions.WithLabelValues(l).Set(float64(layers[i]))
	}
}

// ServeWS upgrades an authenticated request (the route's guard has
// checked the caller and its right to subscribe).
func (g *Gateway) ServeWS(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) && !g.accepting() {
		// Starting: the client retries (its resume is then exact). A
		// request that is no handshake gets the upgrader's 400 below.
		w.Header().Set("Retry-After", "1")
		api.Error(w, http.StatusServiceUnavailable, "starting", "the live stream is starting; try again in a second")
		return
	}
	caller := api.CallerFrom(r.Context())
	token := g.cfg.Credential(r)
	cw := &corkWriter{ResponseWriter: w, timeout: g.cfg.WriteTimeout}
	conn, err := g.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	// A hijacked connection keeps the deadlines the HTTP server set on it;
	// the socket sets its own from now on.
	conn.NetConn().SetDeadline(time.Time{})
	conn.SetReadLimit(MaxMessageBytes)
	c := newClient(g, conn, cw.conn, caller, token)
	g.mu.Lock()
	g.clients[c] = struct{}{}
	g.mu.Unlock()
	metricConnects.Inc()
	c.startPings()
	hello, err := prepare(welcomeFrame{"welcome", caller, *g.epoch.Load(), g.delivered.Load(), g.cfg.Heartbeat.Milliseconds()})
	if err == nil {
		c.mu.Lock()
		c.enqueue(hello)
		c.mu.Unlock()
	}
	// The reader gets a goroutine of its own and the handler returns:
	// net/http's connection goroutine then ends and lets go of its
	// buffers, request and deep stack, which an idle socket would
	// otherwise hold for hours (about half its memory).
	ctx := context.WithoutCancel(r.Context()) // the request's context ends with the handler
	go func() {
		g.read(ctx, c)
		g.mu.Lock()
		delete(g.clients, c)
		g.idx.remove(c)
		g.mu.Unlock()
		c.end()
	}()
}

// read handles the client's messages until the socket ends.
func (g *Gateway) read(ctx context.Context, c *client) {
	pongWait := 2*g.cfg.PingInterval + g.cfg.WriteTimeout
	extend := func() { c.conn.SetReadDeadline(time.Now().Add(pongWait)) }
	extend()
	c.conn.SetPongHandler(func(string) error { extend(); return nil })
	var lastSub time.Time
	for {
		_, raw, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		extend()
		// A panning map sends many subscribes; each costs a snapshot
		// query. Space them (the socket's own backpressure holds the
		// rest).
		if wait := 200*time.Millisecond - time.Since(lastSub); wait > 0 {
			time.Sleep(wait)
		}
		lastSub = time.Now()
		// Parsing, the snapshot's queries and its encoding run deep; on
		// a goroutine of their own, the reader's stack, which lives as
		// long as the socket, stays small.
		done := make(chan struct{})
		go func() { defer close(done); g.handle(ctx, c, raw) }()
		<-done
	}
}

// handle serves one client message.
func (g *Gateway) handle(ctx context.Context, c *client, raw []byte) {
	s, err := ParseSubscribe(raw, g.cfg.KnownWard)
	if err != nil {
		metricBadMessages.Inc()
		g.sendError(c, "bad_request", err.Error())
		return
	}
	g.subscribe(ctx, c, s)
}

func (g *Gateway) sendError(c *client, code, msg string) {
	f, err := prepare(errorFrame{"error", code, msg})
	if err != nil {
		return
	}
	c.mu.Lock()
	c.enqueue(f)
	c.mu.Unlock()
}

// subscribe replaces the client's view and sends what it needs to go on:
// the missed events (a resume), or a snapshot (after a reset if the
// resume could not be served).
func (g *Gateway) subscribe(ctx context.Context, c *client, s Subscribe) {
	v, ok := newView(s, c.caller)
	if !ok {
		g.sendError(c, "forbidden_ward", "none of the wards asked for is in your scope")
		return
	}
	g.mu.Lock()
	g.idx.file(c, v)
	g.mu.Unlock()
	c.mu.Lock()
	c.view, c.live, c.pending, c.pendingBytes = v, false, nil, 0
	c.mu.Unlock()
	metricSubscribes.Inc()

	var first []frame
	if s.Since != nil {
		done, reason, err := g.resume(ctx, c, v, *s.Since, s.Epoch)
		if err != nil {
			g.failSubscribe(c, err)
			return
		}
		if done {
			return
		}
		f, err := prepare(resetFrame{"reset", reason})
		if err != nil {
			return
		}
		metricResets.WithLabelValues(reason).Inc()
		first = append(first, f)
	}
	snap, seq, err := g.snapshot(ctx, v)
	if err != nil {
		g.failSubscribe(c, err)
		return
	}
	c.goLive(append(first, snap), seq)
}

func (g *Gateway) failSubscribe(c *client, err error) {
	g.cfg.Log.Warn("streams: subscribe failed", "user", c.caller.Name, "err", err)
	g.sendError(c, "unavailable", "the live view could not be prepared; reconnecting")
	c.close(websocket.CloseTryAgainLater, "unavailable")
}

// resume sends the events after since if the log still has all of them
// (done). Otherwise it says why a reset is needed.
func (g *Gateway) resume(ctx context.Context, c *client, v *view, since int64, epoch string) (done bool, reason string, err error) {
	if epoch != *g.epoch.Load() {
		return false, "epoch_changed", nil
	}
	cur, err := g.cfg.Events.LastSeq(ctx)
	if err != nil {
		return false, "", err
	}
	if since > cur { // ahead of this log: not the log the client knew
		return false, "epoch_changed", nil
	}
	evs, err := g.cfg.Events.Since(ctx, since, g.cfg.ResumeMax+1)
	if errors.Is(err, alerts.ErrEventsGone) {
		return false, "too_old", nil
	}
	if err != nil {
		return false, "", err
	}
	if len(evs) > g.cfg.ResumeMax {
		return false, "too_old", nil
	}
	frames := make([]frame, 0, len(evs))
	last := since
	for _, ev := range evs {
		last = ev.Seq
		if !v.incident(keyOf(ev.Incident)) {
			continue
		}
		f, err := incidentFrame(ev)
		if err != nil {
			return false, "", err
		}
		frames = append(frames, f)
	}
	c.goLive(frames, last)
	metricResumes.Inc()
	return true, "", nil
}

// snapshot encodes what matches v now and the seq it includes. The
// frame is written out by hand: its parts are already JSON, and
// encoding/json would check and compact every byte of them again.
func (g *Gateway) snapshot(ctx context.Context, v *view) (frame, int64, error) {
	var seq int64
	var truncated bool
	var incidents []byte
	if v.has(LayerIncidents) {
		p, err := g.incidentPart(ctx, v)
		if err != nil {
			return frame{}, 0, err
		}
		seq, truncated, incidents = p.seq, p.truncated, p.json
	} else {
		var err error
		if seq, err = g.cfg.Events.LastSeq(ctx); err != nil {
			return frame{}, 0, err
		}
	}
	var devices [][]byte
	if v.has(LayerDevices) {
		ds, more, err := g.cfg.Devices(ctx, ingest.DeviceFilter{Wards: v.wardList(), BBox: v.bboxSlice(), Limit: g.cfg.SnapshotMax})
		if err != nil {
			return frame{}, 0, err
		}
		truncated = truncated || more
		devices = make([][]byte, 0, len(ds))
		for _, d := range ds {
			raw, err := json.Marshal(d)
			if err != nil {
				return frame{}, 0, err
			}
			devices = append(devices, raw)
		}
	}
	var units [][]byte
	if v.has(LayerUnits) {
		units = [][]byte{}
		for _, u := range g.cfg.Units() {
			if !v.place(u.Ward, u.Lon, u.Lat) {
				continue
			}
			raw, err := g.cfg.UnitJSON(u)
			if err != nil {
				return frame{}, 0, err
			}
			units = append(units, raw)
		}
	}
	b := make([]byte, 0, 256+len(incidents)+64*len(devices)*8)
	b = append(b, `{"type":"snapshot","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendQuote(b, *g.epoch.Load())
	if truncated {
		b = append(b, `,"truncated":true`...)
	}
	if v.has(LayerIncidents) {
		b = append(append(b, `,"incidents":`...), incidents...)
	}
	if v.has(LayerDevices) {
		b = appendArray(append(b, `,"devices":`...), devices)
	}
	if v.has(LayerUnits) {
		b = appendArray(append(b, `,"units":`...), units)
	}
	if v.has(LayerWards) {
		sums := []wardSummary{}
		if p := g.wards.Load(); p != nil {
			sums = wardsFor(*p, v)
		}
		raw, err := json.Marshal(sums)
		if err != nil {
			return frame{}, 0, fmt.Errorf("encoding a snapshot: %w", err)
		}
		b = append(append(b, `,"wards":`...), raw...)
	}
	b = append(b, '}')
	return prepareRaw(b), seq, nil
}

func appendArray(b []byte, items [][]byte) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// incidentPart is a snapshot's incidents, encoded as a JSON array, and
// the seq they are exactly those of.
type incidentPart struct {
	seq       int64
	truncated bool
	json      []byte
}

// incidentPart reads the incidents that match v. Views with the same
// incident filter share one read and one encoding while no event has
// happened since (a reconnecting control room: hundreds of identical
// city views at once). A shared part is exact for a client: the client's
// view was set before the seq was read (subscribe), so every event after
// that seq reaches its pending queue, and the part holds every event up
// to it.
func (g *Gateway) incidentPart(ctx context.Context, v *view) (incidentPart, error) {
	key := v.incidentFilterKey()
	last, err := g.cfg.Events.LastSeq(ctx)
	if err != nil {
		return incidentPart{}, err
	}
	g.snapMu.Lock()
	p, ok := g.snaps[key]
	g.snapMu.Unlock()
	if ok && p.seq >= last {
		metricSnapshotsShared.Inc()
		return p, nil
	}
	r, err, shared := g.snapFlight.Do(key+"@"+strconv.FormatInt(last, 10), func() (any, error) {
		xs, seq, truncated, err := g.cfg.Store.Snapshot(ctx, alerts.IncidentFilter{Active: true, Wards: v.wardList(), BBox: v.bboxSlice()})
		if err != nil {
			return incidentPart{}, err
		}
		items := make([][]byte, 0, len(xs))
		for _, x := range xs {
			if severityRank(x.Severity) < v.minSev {
				continue
			}
			raw, err := json.Marshal(x)
			if err != nil {
				return incidentPart{}, err
			}
			items = append(items, raw)
		}
		p := incidentPart{seq: seq, truncated: truncated, json: appendArray(nil, items)}
		g.snapMu.Lock()
		if p.seq > g.snapSeq { // a newer event: every kept part is stale
			clear(g.snaps)
			g.snapBytes, g.snapSeq = 0, p.seq
		}
		if p.seq == g.snapSeq && g.snapBytes+len(p.json) <= snapCacheBytes {
			g.snaps[key] = p
			g.snapBytes += len(p.json)
		}
		g.snapMu.Unlock()
		return p, nil
	})
	if err != nil {
		return incidentPart{}, err
	}
	if shared {
		metricSnapshotsShared.Inc()
	}
	return r.(incidentPart), nil
}

// snapCacheBytes bounds the encoded incident parts kept for sharing.
const snapCacheBytes = 64 << 20

// unit looks up one unit's latest state.
func (c Config) unit(id string) (geo.Unit, bool) {
	if c.Unit != nil {
		return c.Unit(id)
	}
	return geo.Unit{}, false
}
