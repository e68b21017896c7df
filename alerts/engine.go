package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"ioc/auth"
	"ioc/db"
	"ioc/ingest"
)

// Config of the engine. Zero values take the defaults in New.
type Config struct {
	// RulesFile is read at start and on SIGHUP; "" uses the embedded default.
	RulesFile string
	// WebhookURL, if set, overrides the rules' notify.webhook_url.
	WebhookURL string
	// QueueSize caps the committed batches waiting for evaluation (4096);
	// when it is full, ingest's writer waits for room (Observe). Batches
	// with emergency signals have a lane of their own (urgentQueue).
	QueueSize int
	// Tick is the period of the maintenance round: escalation, resolving
	// cleared conditions, silence, rule changes of other instances (2 s).
	Tick time.Duration
	// SilenceGrace: no device_offline until the engine has run this long,
	// so a restart after an outage does not flag the whole city (5 min).
	SilenceGrace time.Duration
	// NoSignals disables the SIGHUP handler (tests).
	NoSignals bool
	// Redis, set when several instances share the MQTT subscription,
	// gives the per-device windows one home: see shared.go. nil: this
	// instance evaluates what it receives.
	Redis *redis.Client
	// LeaderPoll is how often an instance tries for the evaluating role,
	// and the leader checks it still holds it (2 s).
	LeaderPoll time.Duration
	// Now is the clock of timelines, escalation and resolution; nil: time.Now.
	Now        func() time.Time
	Geo        Geo
	Registerer prometheus.Registerer
}

// Engine turns committed observations into incidents. See doc.go.
type Engine struct {
	cfg    Config
	pool   *pgxpool.Pool
	log    *slog.Logger
	store  *Store
	events *Events
	notify *Notifier
	audit  *auth.Auditor

	rules atomic.Pointer[activeRules]
	queue chan []*ingest.Observation
	// urgent carries the batches with emergency signals (ingest's
	// emergency lane), taken before queue: the emergency writer never
	// waits behind the bulk backlog.
	urgent chan []*ingest.Observation
	// stopped is closed when Run returns, releasing Observe calls waiting
	// for room in queue.
	stopped chan struct{}
	// testHook, set by tests only, sees every observation just before it
	// is evaluated (to inject a panic or a slow evaluator).
	testHook func(*ingest.Observation)
	trig     chan Trigger
	reload   chan struct{}  // capacity 1: the evaluator recompiles the rules
	hup      chan os.Signal // SIGHUP: reload the rules file; nil with NoSignals

	mu      sync.Mutex // guards started
	started time.Time
	// evaluated counts observations through the evaluator (tests wait on it).
	evaluated atomic.Int64
	applied   atomic.Int64
	// leading: this instance evaluates the shared stream (Config.Redis).
	leading atomic.Bool
}

type activeRules struct {
	set     *RuleSet
	raw     json.RawMessage
	version int64
	// emergency are the set's emergency rules, compiled: stateless, so
	// ingest's writers may evaluate them concurrently (InTx).
	emergency []*crule
	// kinds are the incident kinds known under the set (IncidentKinds).
	kinds []string
}

func newActiveRules(set *RuleSet, raw json.RawMessage, version int64) *activeRules {
	a := &activeRules{set: set, raw: raw, version: version, kinds: set.IncidentKinds()}
	for _, c := range compile(set, nil).byKind[ingest.KindEmergency] {
		if c.typ == ruleEmergency {
			a.emergency = append(a.emergency, c)
		}
	}
	return a
}

// New builds the engine: loads the rule file, makes sure PostgreSQL holds
// an active rule set (the file's, on first start) and adopts it.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger) (*Engine, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	if cfg.LeaderPoll <= 0 {
		cfg.LeaderPoll = 2 * time.Second
	}
	if cfg.SilenceGrace <= 0 {
		cfg.SilenceGrace = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registerer != nil {
		if err := RegisterMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	e := &Engine{cfg: cfg, pool: pool, log: log, audit: auth.NewAuditor(pool),
		queue: make(chan []*ingest.Observation, cfg.QueueSize), urgent: make(chan []*ingest.Observation, urgentQueue),
		stopped: make(chan struct{}), trig: make(chan Trigger, 1024),
		reload: make(chan struct{}, 1)}
	e.events = NewEvents(pool, log)
	e.store = &Store{events: e.events, pool: pool, geo: cfg.Geo, rules: e.Rules, now: cfg.Now}
	e.notify = newNotifier(pool, log, cfg.Now, e.webhookURL, func() int { return e.Rules().Notify.MaxAttempts })

	_, raw, err := LoadRulesFile(cfg.RulesFile)
	if err != nil {
		return nil, err
	}
	by := "file:default"
	if cfg.RulesFile != "" {
		by = "file:" + cfg.RulesFile
	}
	if _, err := pool.Exec(ctx, `INSERT INTO alert_rules (version, body, updated_by) VALUES (1, $1, $2) ON CONFLICT DO NOTHING`,
		json.RawMessage(raw), by); err != nil {
		return nil, fmt.Errorf("store initial rules: %w", err)
	}
	if err := e.loadStored(ctx); err != nil {
		return nil, err
	}
	if !cfg.NoSignals {
		// Taken now, not when Run starts: a SIGHUP in between must not
		// end the process (Go's default for it).
		e.hup = make(chan os.Signal, 1)
		signal.Notify(e.hup, syscall.SIGHUP)
	}
	return e, nil
}

// Rules is the rule set in force.
func (e *Engine) Rules() *RuleSet { return e.rules.Load().set }

// Store gives access to incidents (reads and people's changes).
func (e *Engine) Store() *Store { return e.store }

// Events is the incident event log (for the websocket layer).
func (e *Engine) Events() *Events { return e.events }

// Notifier drains the outbox.
func (e *Engine) Notifier() *Notifier { return e.notify }

func (e *Engine) webhookURL() string {
	if e.cfg.WebhookURL != "" {
		return e.cfg.WebhookURL
	}
	return e.Rules().Notify.WebhookURL
}

// loadStored adopts the rule set stored in PostgreSQL if it is newer.
func (e *Engine) loadStored(ctx context.Context) error {
	var version int64
	var body []byte
	if err := e.pool.QueryRow(ctx, `SELECT version, body FROM alert_rules`).Scan(&version, &body); err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	if cur := e.rules.Load(); cur != nil && cur.version == version {
		return nil
	}
	set, err := ParseRules(body)
	if err != nil {
		return fmt.Errorf("stored rule set version %d: %w", version, err)
	}
	e.rules.Store(newActiveRules(set, body, version))
	select {
	case e.reload <- struct{}{}:
	default:
	}
	e.log.Info("alert rules in force", "version", version, "rules", len(set.Rules))
	return nil
}

// RulesDocument is the rule set in force as stored, and its version.
func (e *Engine) RulesDocument() (json.RawMessage, int64) {
	r := e.rules.Load()
	return r.raw, r.version
}

// SetRules validates and stores a new rule set for every instance. A set
// that does not validate is refused (a *ValidationError) and the running
// set stays. ifVersion > 0 makes it conditional (ErrRulesConflict).
func (e *Engine) SetRules(ctx context.Context, raw []byte, ifVersion int64, actor string, audit func(ctx context.Context, tx pgx.Tx, version int64) error) (int64, error) {
	set, err := ParseRules(raw)
	if err != nil {
		return 0, err
	}
	var version int64
	unchanged := false
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT version, body = $1::jsonb FROM alert_rules FOR UPDATE`, json.RawMessage(raw)).
			Scan(&version, &unchanged); err != nil {
			return fmt.Errorf("store rules: %w", err)
		}
		if ifVersion != 0 && version != ifVersion {
			return fmt.Errorf("%w: it is at version %d", ErrRulesConflict, version)
		}
		if unchanged {
			// The same set again (a SIGHUP with the file as it was):
			// keep the version, so no instance restarts its windows.
			return nil
		}
		if err := tx.QueryRow(ctx, `UPDATE alert_rules SET version = version + 1, body = $1, updated_by = $2, updated_at = now()
			RETURNING version`, json.RawMessage(raw), actor).Scan(&version); err != nil {
			return fmt.Errorf("store rules: %w", err)
		}
		if audit != nil {
			return audit(ctx, tx, version)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if unchanged {
		e.log.Info("alert rules unchanged", "version", version, "by", actor)
		return version, nil
	}
	var body []byte
	if err := e.pool.QueryRow(ctx, `SELECT body FROM alert_rules`).Scan(&body); err == nil {
		raw = body // as PostgreSQL normalised it, so every instance serves the same bytes
	}
	e.rules.Store(newActiveRules(set, raw, version))
	select {
	case e.reload <- struct{}{}:
	default:
	}
	e.log.Info("alert rules replaced", "version", version, "by", actor, "rules", len(set.Rules))
	return version, nil
}

// ReloadFile re-reads the rules file (SIGHUP) and stores it for everyone.
func (e *Engine) ReloadFile(ctx context.Context) error {
	_, raw, err := LoadRulesFile(e.cfg.RulesFile)
	if err != nil {
		return err
	}
	_, err = e.SetRules(ctx, raw, 0, "sighup", func(ctx context.Context, tx pgx.Tx, version int64) error {
		return e.audit.RecordTx(ctx, tx, auth.Entry{Actor: "system", Action: auth.ActRulesWrite, Target: "rules",
			Detail: map[string]any{"version": version, "source": "SIGHUP " + e.cfg.RulesFile}})
	})
	return err
}

// urgentQueue is the capacity of the emergency lane's queue, in batches.
const urgentQueue = 256

// Observe is the hook ingest calls after each commit. No committed
// observation is skipped: when the queue is full, Observe waits for room,
// holding the ingest writer that called it (backpressure: ingest stops
// taking messages, the broker holds them unacknowledged). It waits only
// for the evaluation goroutine, which never waits on ingest: Observe runs
// after the commit, with no transaction, lock or connection held, and the
// evaluator's way out (triggers → writer → its own transactions) needs
// nothing an ingest writer holds, so the wait cannot deadlock. Batches
// with an emergency signal go to a lane of their own, evaluated first:
// ingest's emergency writer (which ran Engine.InTx) never waits behind the
// bulk backlog, only if 256 emergency batches wait. Once Run has ended
// nothing waits; what is left is counted dropped and replayed at the next
// start. Do not call Observe from the engine's own goroutines.
func (e *Engine) Observe(obs []*ingest.Observation) {
	q := e.queue
	if hasEmergency(obs) {
		q = e.urgent
	}
	select {
	case q <- obs:
		e.queueDepth()
		return
	default:
	}
	metricQueueFull.Inc()
	start := time.Now()
	select {
	case q <- obs:
		metricQueueWait.Add(time.Since(start).Seconds())
		e.queueDepth()
	case <-e.stopped:
		metricDropped.Add(float64(len(obs)))
	}
}

func (e *Engine) queueDepth() {
	metricQueueDepth.Set(float64(len(e.queue) + len(e.urgent)))
}

func hasEmergency(obs []*ingest.Observation) bool {
	for _, o := range obs {
		if o.Kind == ingest.KindEmergency {
			return true
		}
	}
	return false
}

// next takes the next batch of this instance's queues, the emergency
// lane first; nil when ctx ends.
func (e *Engine) next(ctx context.Context) []*ingest.Observation {
	select {
	case obs := <-e.urgent:
		e.queueDepth()
		return obs
	default:
	}
	select {
	case <-ctx.Done():
		return nil
	case obs := <-e.urgent:
		e.queueDepth()
		return obs
	case obs := <-e.queue:
		e.queueDepth()
		return obs
	}
}

// InTx is ingest's in-transaction hook (ingest.Config.InTx): the
// emergency signals of a batch open or join their incidents in the
// batch's own transaction, so a 115 call and its incident commit
// together, with no queue, evaluation loop or second transaction between
// them. The events go to this instance's subscribers right after the
// commit. The evaluation loop skips the emergency rules for these
// observations (Settled); it still replays them after a restart, which
// adds nothing (evidence is keyed by observation).
//
// A panic in it (a bug in a rule or in open-or-join) is recovered, logged
// with its stack and counted, and returned as an error: ingest rolls the
// transaction back and writes the batch again without the hook, and the
// queued path takes the signals over.
func (e *Engine) InTx(ctx context.Context, tx pgx.Tx, obs []*ingest.Observation) (after func(), err error) {
	defer func() {
		if v := recover(); v != nil {
			metricPanics.WithLabelValues("intx").Inc()
			e.log.Error("alert engine: in-transaction hook panicked; ingest rolls the batch back and writes it without the hook",
				"panic", v, "stack", string(debug.Stack()))
			after, err = nil, fmt.Errorf("%w in the in-transaction hook: %v", errPanicked, v)
		}
	}()
	rules := e.rules.Load().emergency
	var done []*ingest.Observation
	var evs []Event
	for _, o := range obs {
		if o.Kind != ingest.KindEmergency {
			continue
		}
		for _, c := range rules {
			t, ok := emergencyTrigger(c, o)
			if !ok {
				continue
			}
			metricTriggers.WithLabelValues(t.Rule).Inc()
			_, ev, err := e.store.apply(ctx, tx, t)
			if err != nil {
				return nil, fmt.Errorf("apply trigger of rule %s: %w", t.Rule, err)
			}
			if ev != nil {
				evs = append(evs, *ev)
			}
		}
		done = append(done, o)
	}
	if len(done) == 0 {
		return nil, nil
	}
	return func() {
		for _, o := range done {
			o.Settled = true
		}
		e.store.offer(evs...)
		e.applied.Add(int64(len(evs)))
	}, nil
}

func hasUnsettledEmergency(obs []*ingest.Observation) bool {
	for _, o := range obs {
		if o.Kind == ingest.KindEmergency && !o.Settled {
			return true
		}
	}
	return false
}

// errPanicked marks a recovered panic.
var errPanicked = errors.New("panic")

// observeAll evaluates obs in order. A panic evaluating one observation
// is recovered, logged with its stack and counted; that observation is
// skipped and the rest of the batch, and the engine, go on.
func (e *Engine) observeAll(ev *evaluator, obs []*ingest.Observation, emit func(Trigger)) {
	for i := 0; i < len(obs); {
		i = e.observeFrom(ev, obs, i, emit)
	}
}

func (e *Engine) observeFrom(ev *evaluator, obs []*ingest.Observation, from int, emit func(Trigger)) (next int) {
	defer func() {
		if v := recover(); v != nil {
			o := obs[next]
			metricPanics.WithLabelValues("evaluate").Inc()
			e.log.Error("alert engine: evaluating an observation panicked; it is skipped, evaluation goes on",
				"panic", v, "kind", o.Kind, "device", o.DeviceID, "ts", o.TS, "msg_id", o.MsgID, "stack", string(debug.Stack()))
			next++
		}
	}()
	for next = from; next < len(obs); next++ {
		if e.testHook != nil {
			e.testHook(obs[next])
		}
		ev.observe(obs[next], emit)
	}
	return next
}

// recovered runs f, turning a panic into a logged, counted error.
func (e *Engine) recovered(op string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			metricPanics.WithLabelValues(op).Inc()
			e.log.Error("alert engine: panic recovered; going on", "op", op, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w in %s: %v", errPanicked, op, v)
		}
	}()
	return f()
}

// Run evaluates, writes, escalates, notifies and publishes events until
// ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.stopped)
	e.mu.Lock()
	e.started = e.cfg.Now()
	e.mu.Unlock()
	g, ctx := errgroup.WithContext(ctx)
	if e.cfg.Redis != nil {
		g.Go(func() error { return e.forwardLoop(ctx) })
		g.Go(func() error { return e.leadLoop(ctx) })
	} else {
		g.Go(func() error { return e.evaluate(ctx, e.localSource()) })
	}
	g.Go(func() error { return e.writeLoop(ctx) })
	g.Go(func() error { return e.maintLoop(ctx) })
	g.Go(func() error { return e.events.Run(ctx) })
	g.Go(func() error { return e.notify.Run(ctx) })
	if e.hup != nil {
		g.Go(func() error { return e.sighup(ctx) })
	}
	return g.Wait()
}

func (e *Engine) sighup(ctx context.Context) error {
	defer signal.Stop(e.hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.hup:
			if err := e.ReloadFile(ctx); err != nil {
				e.log.Error("SIGHUP: rules file refused; the running set stays", "err", err)
			} else {
				e.log.Info("SIGHUP: rules file reloaded")
			}
		}
	}
}

// source is where the evaluator takes observations from: this
// instance's queue, or the shared stream (shared.go).
type source struct {
	// start, if set, runs before the replay.
	start func(ctx context.Context) error
	// next returns the next observations; none (nil, nil) lets the
	// evaluator look for a rule change.
	next func(ctx context.Context) ([]*ingest.Observation, error)
}

func (e *Engine) localSource() source {
	return source{next: func(ctx context.Context) ([]*ingest.Observation, error) {
		select {
		case obs := <-e.urgent:
			e.queueDepth()
			return obs, nil
		default:
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.reload:
			select { // give it back to the evaluator (capacity 1: full means it is there)
			case e.reload <- struct{}{}:
			default:
			}
			return nil, nil
		case obs := <-e.urgent:
			e.queueDepth()
			return obs, nil
		case obs := <-e.queue:
			e.queueDepth()
			return obs, nil
		}
	}}
}

// evaluate owns the evaluator: it replays recent observations from the
// tables, then evaluates what src hands over, in order, until ctx ends.
// One goroutine at a time runs it.
func (e *Engine) evaluate(ctx context.Context, src source) error {
	select {
	case <-e.reload: // compiled just below
	default:
	}
	ev := compile(e.Rules(), e.cfg.Geo)
	emit := func(t Trigger) {
		metricTriggers.WithLabelValues(t.Rule).Inc()
		select {
		case e.trig <- t:
		case <-ctx.Done():
		}
	}
	if err := e.seed(ctx, ev); err != nil {
		return err
	}
	if src.start != nil {
		if err := src.start(ctx); err != nil {
			return err
		}
	}
	if err := e.replay(ctx, ev, emit); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		select {
		case <-e.reload:
			ev = compile(e.Rules(), e.cfg.Geo)
			if err := e.seed(ctx, ev); err != nil {
				e.log.Warn("alert rules: could not restore active conditions", "err", err)
			}
		default:
		}
		obs, err := src.next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		e.observeAll(ev, obs, emit)
		metricObserved.Add(float64(len(obs)))
		e.evaluated.Add(int64(len(obs)))
	}
}

// seed marks the windows whose conditions hold an open incident as fired,
// so the reading that clears them is recognised after a restart.
func (e *Engine) seed(ctx context.Context, ev *evaluator) error {
	active, err := e.store.activeConditions(ctx)
	if err != nil {
		return err
	}
	for k, at := range active {
		for _, cs := range ev.byKind {
			for _, c := range cs {
				if c.typ == ruleThreshold && c.r.ID == k[0] {
					d := ev.device(k[1])
					d.th[c.slot] = thState{since: at, fired: true}
				}
			}
		}
	}
	return nil
}

// replaySlack widens the replay beyond the longest rule window, for
// readings that arrived late (a gateway's backlog, a simulator running
// behind the wall clock).
const replaySlack = 15 * time.Minute

// replay feeds the observations of the longest rule window back through
// the evaluator: what ingest committed but the engine never saw (a crash
// between commit and evaluation) is evaluated now; what it had seen adds
// nothing (evidence is keyed by observation).
func (e *Engine) replay(ctx context.Context, ev *evaluator, emit func(Trigger)) error {
	from := e.cfg.Now().Add(-e.Rules().maxWindow() - replaySlack)
	n := 0
	start := time.Now()
	for _, q := range []struct {
		kind ingest.Kind
		sql  string
	}{
		{ingest.KindTraffic, `SELECT device_id, ts, msg_id, ST_X(geom), ST_Y(geom), coalesce(ward_code, ''),
			speed_kmh, occupancy, volume, interval_s FROM traffic_readings WHERE ts >= $1 ORDER BY ts`},
		{ingest.KindCamera, `SELECT device_id, ts, msg_id, ST_X(geom), ST_Y(geom), coalesce(ward_code, ''),
			event, confidence, count, coalesce(snapshot_url, '') FROM camera_events WHERE ts >= $1 ORDER BY ts`},
		{ingest.KindEmergency, `SELECT device_id, ts, msg_id, ST_X(geom), ST_Y(geom), coalesce(ward_code, ''),
			type, priority, channel, coalesce(note, ''), coalesce(caller_ref, '') FROM emergency_signals WHERE ts >= $1 ORDER BY ts`},
		{ingest.KindUnit, `SELECT device_id, ts, msg_id, ST_X(geom), ST_Y(geom), coalesce(ward_code, ''),
			kind, status, speed_kmh, heading_deg FROM unit_positions WHERE ts >= $1 ORDER BY ts`},
	} {
		if len(ev.byKind[q.kind]) == 0 {
			continue
		}
		rows, err := e.pool.Query(ctx, q.sql, from)
		if err != nil {
			return fmt.Errorf("replay %s: %w", q.kind, err)
		}
		for rows.Next() {
			o := ingest.Observation{Kind: q.kind, Item: -1, HasPos: true}
			var speed, occ, conf float32
			var vol, interval int32
			var count *int32
			var prio int16
			var err error
			switch q.kind {
			case ingest.KindTraffic:
				err = rows.Scan(&o.DeviceID, &o.TS, &o.MsgID, &o.Lon, &o.Lat, &o.Ward, &speed, &occ, &vol, &interval)
				o.SpeedKmh, o.Occupancy, o.Volume, o.IntervalS, o.HasSpeed = float64(speed), float64(occ), int64(vol), int64(interval), true
			case ingest.KindCamera:
				err = rows.Scan(&o.DeviceID, &o.TS, &o.MsgID, &o.Lon, &o.Lat, &o.Ward, &o.Event, &conf, &count, &o.SnapshotURL)
				o.Confidence = float64(conf)
				if count != nil {
					o.Count, o.HasCount = int64(*count), true
				}
			case ingest.KindEmergency:
				err = rows.Scan(&o.DeviceID, &o.TS, &o.MsgID, &o.Lon, &o.Lat, &o.Ward, &o.Type, &prio, &o.Channel, &o.Note, &o.CallerRef)
				o.Priority = int64(prio)
			case ingest.KindUnit:
				var speed, heading *float32
				err = rows.Scan(&o.DeviceID, &o.TS, &o.MsgID, &o.Lon, &o.Lat, &o.Ward, &o.UnitKind, &o.Status, &speed, &heading)
				if speed != nil {
					o.SpeedKmh, o.HasSpeed = float64(*speed), true
				}
				if heading != nil {
					o.HeadingDeg, o.HasHeading = float64(*heading), true
				}
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("replay %s: %w", q.kind, err)
			}
			e.observeAll(ev, []*ingest.Observation{&o}, emit)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("replay %s: %w", q.kind, err)
		}
	}
	e.log.Info("alert engine: replayed recent observations", "observations", n, "since", from, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// writeLoop records triggers in PostgreSQL, retrying until it succeeds or
// ctx ends: a conclusion is never dropped while the database is down. A
// trigger that can never be written (a panic in open-or-join, data the
// database refuses: SQLSTATE classes 22 and 23) is logged, counted and
// left, so one bad conclusion cannot stall evaluation and, through the
// queue, ingest.
func (e *Engine) writeLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-e.trig:
			backoff := db.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
			for {
				err := e.recovered("apply", func() error { _, _, err := e.store.Apply(ctx, t); return err })
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, errPanicked) || refusedData(err) {
					metricWriteErrors.WithLabelValues("apply_refused").Inc()
					e.log.Error("alert engine: a trigger cannot be recorded; left", "rule", t.Rule, "device", t.DeviceID, "at", t.At, "err", err)
					break
				}
				metricWriteErrors.WithLabelValues("apply").Inc()
				e.log.Warn("alert engine: recording a trigger failed; retrying", "rule", t.Rule, "err", err)
				if backoff.Wait(ctx) != nil {
					return nil
				}
			}
			e.applied.Add(1)
		}
	}
}

// refusedData: PostgreSQL refused the values themselves (data exception,
// integrity violation), so trying again cannot help.
func refusedData(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

func (e *Engine) maintLoop(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	lastTrim := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		e.recovered("maintain", func() error { e.Maintain(ctx); return nil })
		if time.Since(lastTrim) > time.Hour {
			lastTrim = time.Now()
			if err := e.events.Trim(ctx, e.cfg.Now()); err != nil && ctx.Err() == nil {
				e.log.Warn("incident events: trim failed", "err", err)
			}
		}
	}
}

// Maintain runs one maintenance round: other instances' rule changes,
// silence, conditions cleared long enough, escalation. Tests call it with
// a controlled clock.
func (e *Engine) Maintain(ctx context.Context) {
	step := func(op string, err error) {
		if err != nil && ctx.Err() == nil {
			metricWriteErrors.WithLabelValues(op).Inc()
			e.log.Warn("alert engine: maintenance", "op", op, "err", err)
		}
	}
	step("rules", e.loadStored(ctx))
	step("silence", e.silence(ctx))
	_, err := e.store.ResolveCleared(ctx)
	step("resolve", err)
	_, err = e.store.Escalate(ctx)
	step("escalate", err)
}

// silence raises device_offline for devices quiet for k × their interval
// (or that said offline), and clears it for those heard from again. It
// reads the devices table, so every instance agrees whatever share of the
// messages it receives.
func (e *Engine) silence(ctx context.Context) error {
	now := e.cfg.Now()
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	rs := e.Rules()
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if r.Type != "silence" || r.Disabled {
			continue
		}
		def := r.DefaultInterval.Std().Seconds()
		// Heard from again: the condition clears.
		if _, err := e.pool.Exec(ctx, `UPDATE incident_conditions c SET active = false, changed_at = $3, resolve_after = $4
			FROM devices d WHERE c.rule_id = $1 AND c.active AND d.id = c.device_id AND d.online
			  AND d.last_seen >= $3::timestamptz - make_interval(secs => $2 * coalesce(d.interval_s, $5))`,
			r.ID, r.K, now, now.Add(r.ClearFor.Std()), def); err != nil {
			return fmt.Errorf("silence clear: %w", err)
		}
		if now.Sub(started) < e.cfg.SilenceGrace {
			continue
		}
		rows, err := e.pool.Query(ctx, `SELECT d.id, d.last_seen, ST_X(coalesce(d.geom, d.fixed_geom)), ST_Y(coalesce(d.geom, d.fixed_geom)),
				coalesce(d.ward_code, ''), d.online
			FROM devices d WHERE d.kind = ANY($1) AND coalesce(d.geom, d.fixed_geom) IS NOT NULL
			  AND (NOT d.online OR d.last_seen < $3::timestamptz - make_interval(secs => $2 * coalesce(d.interval_s, $4)))
			  AND NOT EXISTS (SELECT 1 FROM incident_conditions c WHERE c.rule_id = $5 AND c.device_id = d.id AND c.active)
			LIMIT 1000`, r.DeviceKinds, r.K, now, def, r.ID)
		if err != nil {
			return fmt.Errorf("silence: %w", err)
		}
		var ts []Trigger
		var id, ward string
		var last time.Time
		var lon, lat float64
		var online bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &last, &lon, &lat, &ward, &online}, func() error {
			title := r.Title
			if title == "" {
				title = r.IncidentKind
			}
			ts = append(ts, Trigger{Rule: r.ID, Kind: r.IncidentKind, Severity: r.Severity, Title: title, Lon: lon, Lat: lat,
				Ward: ward, At: last, Condition: true, ClearFor: r.ClearFor.Std(), DeviceID: id,
				Evidence: []Evidence{{DeviceID: id, Kind: "silence", ObservedAt: last, MsgID: "silence:" + r.ID, Rule: r.ID,
					Location: &Point{Type: "Point", Coordinates: [2]float64{lon, lat}},
					Detail:   map[string]any{"last_seen": last, "online": online, "silent_for": now.Sub(last).Round(time.Second).String()}}}})
			return nil
		}); err != nil {
			return fmt.Errorf("silence: %w", err)
		}
		for _, t := range ts {
			metricTriggers.WithLabelValues(t.Rule).Inc()
			if _, _, err := e.store.Apply(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}
