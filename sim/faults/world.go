package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/sim"
)

// Setup says what a World is made of.
type Setup struct {
	Broker    string // "mosquitto", "nats", "nats-cluster"
	Instances int    // iocd instances (default 1)
	Redis     bool   // Redis between the instances (implied by Instances > 1)
	// Skew runs the last instance with its clock this far off
	// (iocd's clock_offset).
	Skew time.Duration
}

// World is one fault's operations centre: a fresh database on the suite's
// PostgreSQL, its own broker, Redis, proxies and iocd instances, and the
// load.
type World struct {
	s      *Suite
	name   string
	dir    string
	db     string
	Pool   *pgxpool.Pool
	Broker Broker
	Redis  *Redis
	Iocds  []*Iocd
	devPx  *Proxy // what the devices (simulator, injector) connect through
	load   *load
	// injectAt is when the fault began.
	injectAt time.Time

	watchers     []*watcher
	watchWG      sync.WaitGroup
	stopWatchers context.CancelFunc
}

func (s *Suite) newWorld(ctx context.Context, name string, st Setup) (_ *World, err error) {
	if st.Instances == 0 {
		st.Instances = 1
	}
	if st.Instances > 1 {
		st.Redis = true
	}
	w := &World{s: s, name: name, dir: filepath.Join(s.dir, name), db: "faults_" + strings.ReplaceAll(name, "-", "_")}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.pg.CreateDB(ctx, w.db); err != nil {
		return nil, err
	}
	if w.Pool, err = pgxpool.New(ctx, s.pg.URL(w.db, "")); err != nil {
		return nil, err
	}
	logw := s.logw
	switch st.Broker {
	case "mosquitto":
		w.Broker, err = StartMosquitto(ctx, s.root, filepath.Join(w.dir, "mosquitto"), logw)
	case "nats":
		w.Broker, err = StartNATS(ctx, s.root, filepath.Join(w.dir, "nats"), false, st.Instances, logw)
	case "nats-cluster":
		w.Broker, err = StartNATS(ctx, s.root, filepath.Join(w.dir, "nats"), true, st.Instances, logw)
	default:
		err = fmt.Errorf("unknown broker %q", st.Broker)
	}
	if err != nil {
		return nil, err
	}
	if w.devPx, err = NewProxy(w.Broker.Addrs()...); err != nil {
		return nil, err
	}
	if st.Redis {
		if w.Redis, err = StartRedis(ctx, logw); err != nil {
			return nil, err
		}
	}
	for i := range st.Instances {
		c, err := w.newIocd(i, st)
		if err != nil {
			return nil, err
		}
		w.Iocds = append(w.Iocds, c)
		// One at a time: the first creates the schema and loads the wards.
		if err := c.Start(ctx); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, s.tail())
		}
	}
	return w, nil
}

func (w *World) newIocd(i int, st Setup) (*Iocd, error) {
	s := w.s
	c := &Iocd{Index: i}
	var err error
	if c.PG, err = NewProxy(fmt.Sprintf("127.0.0.1:%d", s.pg.Port)); err != nil {
		return nil, err
	}
	// The broker proxy is the load balancer in front of a cluster: the
	// first node that answers gets the connection.
	addrs := append([]string(nil), w.Broker.Addrs()...)
	if len(addrs) > 1 { // each instance prefers another node
		k := i % len(addrs)
		addrs = append(addrs[k:], addrs[:k]...)
	}
	if c.MQ, err = NewProxy(addrs...); err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	c.metricsAddr = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	c.httpAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	env := []string{
		"IOC_DATABASE_URL=" + s.pg.URL(w.db, c.PG.Addr),
		"IOC_MQTT_URL=tcp://" + c.MQ.Addr,
		fmt.Sprintf("IOC_MQTT_CLIENT_ID=faults-%s-%d", w.name, i),
		"IOC_HTTP_ADDR=" + c.httpAddr,
		"IOC_BOOTSTRAP_ADMIN_PASSWORD_FILE=" + s.adminPassFile,
		"IOC_METRICS_ADDR=" + c.metricsAddr,
		"IOC_LOG_LEVEL=" + s.cfg.IocdLogLevel,
		"IOC_AREAS_FILE=" + s.wards,
		"IOC_RULES_FILE=" + filepath.Join(s.root, "deploy", "rules.json"),
	}
	if st.Redis {
		if c.RD, err = NewProxy(w.Redis.Addr()); err != nil {
			return nil, err
		}
		env = append(env, "IOC_REDIS_URL=redis://"+c.RD.Addr+"/0")
	}
	if st.Skew != 0 && i == st.Instances-1 {
		env = append(env, "IOC_CLOCK_OFFSET="+st.Skew.String())
	}
	if st.Instances > 1 {
		if st.Broker == "mosquitto" {
			env = append(env, "IOC_MQTT_SHARED_GROUP=iocd")
		} else { // deploy/nats/instances.conf: no $share on NATS 2.9
			env = append(env, fmt.Sprintf("IOC_MQTT_TOPIC_PREFIX=ioc%d/city", i))
		}
	}
	c.p = &proc{name: fmt.Sprintf("iocd%d", i), path: s.iocd, env: env, dir: s.root, logw: prefixWriter(s.logw, fmt.Sprintf("iocd%d: ", i))}
	return c, nil
}

// Close stops everything the world started.
func (w *World) Close() {
	if w.load != nil {
		w.load.stop()
	}
	if w.stopWatchers != nil {
		w.stopWatchers()
		w.watchWG.Wait()
	}
	for _, c := range w.Iocds {
		c.Kill()
		for _, p := range []*Proxy{c.PG, c.MQ, c.RD} {
			if p != nil {
				p.Close()
			}
		}
	}
	if w.devPx != nil {
		w.devPx.Close()
	}
	if w.Broker != nil {
		w.Broker.Close()
	}
	if w.Redis != nil {
		w.Redis.Kill()
	}
	if w.Pool != nil {
		w.Pool.Close()
	}
}

// acked is a message the broker acknowledged to its publisher.
type acked struct {
	kind, device, id string
	at               time.Time // when the PUBACK arrived
}

// load is the simulator's city plus an injector of emergency signals
// whose incidents are the ground truth: one every interval, each at a
// point of a grid 1.3 km apart (farther than any correlation radius of
// deploy/rules.json, 300 m for fire), so each must open an incident of
// its own.
type load struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	sim      *sim.Simulator
	mu       sync.Mutex
	acks     []acked
	injected []acked
	nAcked   atomic.Int64
	simErr   error
	stopped  bool
	ctx      context.Context
	broker   string
	runID    string
}

func (w *World) startLoad(ctx context.Context, rate float64, every time.Duration) error {
	s := w.s
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, ctx: ctx, broker: "tcp://" + w.devPx.Addr}
	runID := fmt.Sprintf("f%s%d", strings.ReplaceAll(w.name, "-", ""), time.Now().Unix()%100000)
	l.runID = runID
	var err error
	l.sim, err = sim.New(sim.Config{
		Broker: "tcp://" + w.devPx.Addr, ClientID: "faults-sim-" + w.name, Conns: 2, Window: 500,
		Seed: 14, Rate: rate, Sensors: 300, Cameras: 30, Sources: 5, Units: 20,
		RunID: runID, WardsPath: s.wards, DrainTimeout: 30 * time.Second,
		Observe: func(m sim.Message) {
			if m.Bad != "" || m.Kind == sim.KindStatus || m.ID == "" {
				return
			}
			l.mu.Lock()
			l.acks = append(l.acks, acked{m.Kind, m.Device, m.ID, time.Now()})
			l.mu.Unlock()
			l.nAcked.Add(1)
		},
	})
	if err != nil {
		cancel()
		return err
	}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		if err := l.sim.Run(ctx); err != nil {
			l.simErr = err
		}
	}()
	go func() {
		defer l.wg.Done()
		l.inject(ctx, "tcp://"+w.devPx.Addr, "faults-inj-"+w.name, runID, every)
	}()
	w.load = l
	return nil
}

func (l *load) inject(ctx context.Context, broker, clientID, runID string, every time.Duration) {
	opts := sim.NewMQTTOptions(broker, clientID)
	pubacks := sim.WithPubAcks(opts) // a token is not a PUBACK (sim.PubAcks)
	c := mqtt.NewClient(opts)
	for {
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil && c.IsConnected() {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	defer c.Disconnect(100)
	t := time.NewTicker(every)
	defer t.Stop()
	rng := rand.New(rand.NewPCG(14, 1))
	for n := 0; ; n++ {
		// A grid over central Hanoi, 0.012° (~1.3 km) apart, 17 × 14
		// points (a fault's run injects fewer than that).
		col, row := n%17, (n/17)%14
		lon := 105.74 + 0.012*float64(col) + rng.Float64()*0.0005
		lat := 20.94 + 0.012*float64(row) + rng.Float64()*0.0005
		dev := fmt.Sprintf("FAULT-E-%03d", n)
		id := fmt.Sprintf("%s-E%d", runID, n)
		payload := fmt.Sprintf(`{"id":%q,"ts":%q,"lat":%.6f,"lon":%.6f,"type":"fire","priority":2,"channel":"fire_alarm"}`,
			id, time.Now().UTC().Format(time.RFC3339Nano), lat, lon)
		for attempt := 0; ; attempt++ {
			tok := c.Publish("city/emergency/"+dev, 1, false, payload)
			if acknowledged(tok, pubacks, pubacks.Sent(tok), time.Now().Add(10*time.Second)) {
				l.mu.Lock()
				a := acked{sim.KindEmergency, dev, id, time.Now()}
				l.acks = append(l.acks, a)
				l.injected = append(l.injected, a)
				l.mu.Unlock()
				l.nAcked.Add(1)
				break
			}
			// Not acknowledged: the device would send it again (same id,
			// same ts, so the same message).
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// burst publishes n traffic readings as fast as the broker acknowledges
// them (a window of 1000 in flight), recording each acknowledgement: the
// backlog of the broker faults, larger than the broker's in-flight window
// to iocd (Mosquitto: 10,000), so that some of it waits in the broker.
func (l *load) burst(ctx context.Context, broker, clientID, runID string, n int) error {
	opts := sim.NewMQTTOptions(broker, clientID)
	pubacks := sim.WithPubAcks(opts)
	c, err := sim.Connect(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Disconnect(100)
	type sent struct {
		tok  mqtt.Token
		sent sim.Sent
		a    acked
	}
	window := make(chan sent, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range window {
			if acknowledged(s.tok, pubacks, s.sent, time.Now().Add(30*time.Second)) {
				s.a.at = time.Now()
				l.mu.Lock()
				l.acks = append(l.acks, s.a)
				l.mu.Unlock()
				l.nAcked.Add(1)
			}
		}
	}()
	now := time.Now().UTC()
	for i := range n {
		dev := fmt.Sprintf("FAULT-B-%03d", i%200)
		id := fmt.Sprintf("%s-B%d", runID, i)
		lon, lat := 105.80+float64(i%200)*0.0004, 21.00+float64(i%200)*0.0002
		payload := fmt.Sprintf(`{"id":%q,"ts":%q,"lat":%.6f,"lon":%.6f,"speed_kmh":%d,"volume":%d,"occupancy":0.3}`,
			id, now.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), lat, lon, 20+i%40, i%30)
		tok := c.Publish("city/traffic/"+dev, 1, false, payload)
		select {
		case window <- sent{tok, pubacks.Sent(tok), acked{kind: sim.KindTraffic, device: dev, id: id}}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(window)
	<-done
	return ctx.Err()
}

// acknowledged: the broker's PUBACK for the publish arrived by deadline.
// The token alone does not say so: paho completes it when it resends the
// message after a reconnect (sim.PubAcks).
func acknowledged(tok mqtt.Token, pa *sim.PubAcks, s sim.Sent, deadline time.Time) bool {
	if !tok.WaitTimeout(time.Until(deadline)) || tok.Error() != nil {
		return false
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-pa.Done(s):
		return true
	case <-t.C:
		return false
	}
}

// stop ends the load and waits for the publishers to drain.
func (l *load) stop() {
	if l.stopped {
		return
	}
	l.stopped = true
	l.cancel()
	l.wg.Wait()
}

func (l *load) snapshot() (all, injected []acked) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.acks...), append([]acked(nil), l.injected...)
}

var tables = map[string]string{
	sim.KindTraffic: "traffic_readings", sim.KindCamera: "camera_events",
	sim.KindEmergency: "emergency_signals", sim.KindUnits: "unit_positions",
}

// committed counts the run's observations in the database.
func (w *World) committed(ctx context.Context) (int64, error) {
	var n int64
	err := w.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM traffic_readings) + (SELECT count(*) FROM camera_events)
		+ (SELECT count(*) FROM emergency_signals) + (SELECT count(*) FROM unit_positions)`).Scan(&n)
	return n, err
}

// waitCommitted waits until at least n observations are committed; it
// returns how long that took.
func (w *World) waitCommitted(ctx context.Context, n int64, within time.Duration) (time.Duration, error) {
	start := time.Now()
	var got int64
	for time.Since(start) < within {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := w.committed(qctx)
		cancel()
		if err == nil {
			got = c
			if c >= n {
				return time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return time.Since(start), fmt.Errorf("%d of %d committed after %s", got, n, within)
}

// waitRecovered waits until every message in acks (those acknowledged
// before the fault was healed) is committed, and says how long it took.
// Per id, not by count: new messages must not stand in for old ones.
func (w *World) waitRecovered(ctx context.Context, acks []acked, within time.Duration) (time.Duration, error) {
	start := time.Now()
	conn, err := w.Pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE healset (kind text, device_id text, msg_id text)`); err != nil {
		return 0, err
	}
	defer conn.Exec(context.Background(), `DROP TABLE healset`)
	rows := make([][]any, len(acks))
	for i, a := range acks {
		rows[i] = []any{a.kind, a.device, a.id}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"healset"}, []string{"kind", "device_id", "msg_id"}, pgx.CopyFromRows(rows)); err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, `ANALYZE healset`); err != nil {
		return 0, err
	}
	var q strings.Builder
	q.WriteString("SELECT 0")
	for kind, table := range tables {
		fmt.Fprintf(&q, ` + (SELECT count(*) FROM healset a WHERE a.kind = '%s' AND NOT EXISTS
			(SELECT 1 FROM %s t WHERE t.device_id = a.device_id AND t.msg_id = a.msg_id))`, kind, table)
	}
	missing := -1
	for time.Since(start) < within {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.QueryRow(qctx, q.String()).Scan(&missing)
		cancel()
		if err == nil && missing == 0 {
			return time.Since(start), nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return time.Since(start), err
		}
	}
	return time.Since(start), fmt.Errorf("%d of the %d acknowledged before the heal not committed after %s", missing, len(acks), within)
}

// Figures is what a fault's run showed.
type Figures struct {
	Acked        int // acknowledged by the broker to the publishers (status messages aside)
	Committed    int // of those, in the observation tables
	Rejected     int // rows in ingest_rejects
	Lost         int // acknowledged, neither committed nor rejected
	Duplicated   int // observations stored more than once
	Unacked      int // stored but never acknowledged (PUBACK lost on the way): not a fault
	IncExpected  int // injected emergency signals acknowledged
	IncOpened    int // distinct incidents holding them as evidence
	IncMissing   int // injected signals with no incident
	IncDoubled   int // incidents holding more than one injected signal, or none at all
	SignalsAlone int // committed emergency signals (any) that are evidence of no incident
	// Shares is what each instance acknowledged since its last start
	// (ioc_ingest_acked_total): with several instances, each must take a share.
	Shares []float64 `json:",omitempty"`
	// Websocket screens (one city-wide incidents client per instance):
	// events missing between two received (gaps), received twice or out
	// of order (repeats), resets (resume impossible, fresh snapshot),
	// reconnects, and clients not caught up with the log's last seq at
	// the end.
	WSClients, WSGaps, WSRepeats, WSResets, WSReconnects, WSBehind int
	WSLastSeq                                                      int64
}

// judge compares the database with the acknowledgements, per message id.
func (w *World) judge(ctx context.Context) (Figures, error) {
	all, inj := w.load.snapshot()
	var f Figures
	f.Acked, f.IncExpected = len(all), len(inj)
	if len(w.Iocds) > 1 {
		for _, c := range w.Iocds {
			v, _ := c.Metric("ioc_ingest_acked_total")
			f.Shares = append(f.Shares, v)
		}
	}
	conn, err := w.Pool.Acquire(ctx)
	if err != nil {
		return f, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE acked (kind text, device_id text, msg_id text)`); err != nil {
		return f, err
	}
	defer conn.Exec(context.Background(), `DROP TABLE acked`)
	rows := make([][]any, len(all))
	for i, a := range all {
		rows[i] = []any{a.kind, a.device, a.id}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"acked"}, []string{"kind", "device_id", "msg_id"}, pgx.CopyFromRows(rows)); err != nil {
		return f, err
	}
	if _, err := conn.Exec(ctx, `ANALYZE acked`); err != nil {
		return f, err
	}
	for kind, table := range tables {
		var committed, stored, distinct, unacked int
		q := fmt.Sprintf(`SELECT
			(SELECT count(*) FROM acked a WHERE a.kind = $1 AND EXISTS (SELECT 1 FROM %[1]s t WHERE t.device_id = a.device_id AND t.msg_id = a.msg_id)),
			(SELECT count(*) FROM %[1]s), (SELECT count(DISTINCT (device_id, msg_id)) FROM %[1]s),
			(SELECT count(*) FROM %[1]s t WHERE NOT EXISTS (SELECT 1 FROM acked a WHERE a.device_id = t.device_id AND a.msg_id = t.msg_id))`, table)
		if err := conn.QueryRow(ctx, q, kind).Scan(&committed, &stored, &distinct, &unacked); err != nil {
			return f, fmt.Errorf("judge %s: %w", table, err)
		}
		f.Committed += committed
		f.Duplicated += stored - distinct
		f.Unacked += unacked
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM ingest_rejects`).Scan(&f.Rejected); err != nil {
		return f, err
	}
	// Rejections carry no message id here (the load is valid), so every
	// acknowledged message must be committed: lost counts those that are not.
	f.Lost = f.Acked - f.Committed
	if f.Lost > 0 {
		w.describeLost(ctx, conn.Conn(), all)
	}
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(DISTINCT e.incident_id) FROM incident_evidence e WHERE e.device_id LIKE 'FAULT-E-%'),
		(SELECT count(*) FROM acked a WHERE a.device_id LIKE 'FAULT-E-%' AND NOT EXISTS
			(SELECT 1 FROM incident_evidence e WHERE e.device_id = a.device_id AND e.msg_id = a.msg_id)),
		(SELECT count(*) FROM (SELECT incident_id FROM incident_evidence WHERE device_id LIKE 'FAULT-E-%'
			GROUP BY incident_id HAVING count(*) > 1) x)
		+ (SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM incident_evidence e WHERE e.incident_id = i.id)),
		(SELECT count(*) FROM emergency_signals s WHERE NOT EXISTS
			(SELECT 1 FROM incident_evidence e WHERE e.device_id = s.device_id AND e.ts = s.ts AND e.msg_id = s.msg_id))`).
		Scan(&f.IncOpened, &f.IncMissing, &f.IncDoubled, &f.SignalsAlone)
	if err != nil {
		return f, fmt.Errorf("judge incidents: %w", err)
	}
	return f, nil
}

// prefixWriter prefixes each line (best effort; lines may interleave).
func prefixWriter(w io.Writer, prefix string) io.Writer {
	if w == io.Discard {
		return w
	}
	return &linePrefix{w: w, prefix: prefix}
}

type linePrefix struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefix) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

// describeLost logs when the lost messages were acknowledged, relative
// to the fault's start, and writes them to lost.txt in the world's
// directory.
func (w *World) describeLost(ctx context.Context, conn *pgx.Conn, all []acked) {
	at := map[string]time.Time{}
	for _, a := range all {
		at[a.id] = a.at
	}
	var missing []string
	for kind, table := range tables {
		rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT a.msg_id FROM acked a WHERE a.kind = $1 AND NOT EXISTS
			(SELECT 1 FROM %s t WHERE t.device_id = a.device_id AND t.msg_id = a.msg_id)`, table), kind)
		if err != nil {
			return
		}
		ids, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		missing = append(missing, ids...)
	}
	hist := map[int]int{}
	var b strings.Builder
	for _, id := range missing {
		rel := at[id].Sub(w.injectAt)
		hist[int(rel.Seconds())]++
		fmt.Fprintf(&b, "%s\t%+.3fs\n", id, rel.Seconds())
	}
	os.WriteFile(filepath.Join(w.dir, "lost.txt"), []byte(b.String()), 0o644)
	w.s.logln("%s: %d lost; acknowledged at (s after the fault began: count) %v; list in %s", w.name, len(missing), hist, filepath.Join(w.dir, "lost.txt"))
}
