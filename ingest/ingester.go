package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"ioc/db"
)

// WardLookup finds the ward covering a point (geo.WardIndex).
type WardLookup interface {
	Lookup(lon, lat float64) (code string, ok bool)
}

// ServiceArea tells whether a point is one the centre serves (geo.ServiceArea).
type ServiceArea interface {
	Contains(lon, lat float64) bool
}

// Config is what the ingester needs; iocd fills it from config.Config.
type Config struct {
	Limits
	BatchSize     int
	BatchWait     time.Duration
	Buffer        int // messages held between broker and database
	Writers       int
	TouchInterval time.Duration
	RetentionDays int
	Wards         WardLookup  // optional
	Area          ServiceArea // optional
	Registerer    prometheus.Registerer
	// OnCommit, if set, is called after each commit with the stored
	// observations (responder positions, the alert engine). It runs on the
	// writer goroutine: keep it quick and non-blocking.
	OnCommit func([]*Observation)
	// InTx, if set, is called inside the transaction of each batch that
	// carries an emergency signal, after its rows are written, so it can
	// write its conclusions in the same commit (the alert engine opens the
	// incident there: no second transaction on a 115 call's way to the
	// screen). It returns what to run after the commit, before OnCommit.
	// If it fails, the batch is written again without it and OnCommit
	// consumers see the observations as usual.
	InTx TxHook
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// RequireRegistered: messages of devices no admin registered
	// (POST /api/v1/devices) are rejected as unknown_device, so a broker
	// account cannot invent devices.
	RequireRegistered bool
	// DeviceStateMax caps the devices whose state ingest keeps in memory
	// (beyond it a device is written as if new on every batch);
	// DeviceStateTTL forgets a device not written for that long. Devices
	// with a fixed position or registered by an admin are always kept.
	// Zero: 100,000 and 1 hour.
	DeviceStateMax int
	DeviceStateTTL time.Duration
	// RejectsMaxAge and RejectsMaxRows bound ingest_rejects, pruned every
	// RejectsPruneEvery (zero: no limit; no pruning when both are zero).
	RejectsMaxAge     time.Duration
	RejectsMaxRows    int
	RejectsPruneEvery time.Duration
}

// TxHook acts on a batch's observations inside the batch's transaction;
// after, if not nil, runs once the transaction has committed.
type TxHook func(ctx context.Context, tx pgx.Tx, obs []*Observation) (after func(), err error)

// hookError marks a failure of Config.InTx, as opposed to the batch's own.
type hookError struct{ err error }

func (e hookError) Error() string { return "in-transaction hook: " + e.err.Error() }
func (e hookError) Unwrap() error { return e.err }

// envelope is one MQTT message on its way through ingest.
type envelope struct {
	topic   string
	device  string
	payload []byte // at most maxStoredPayload bytes of an oversized payload
	size    int    // of the payload as received
	digest  []byte // of topic and the whole payload, when payload was cut
	dup     bool
	// internal: ingest already failed on this message once (a panic); a
	// second failure gives up on it.
	internal bool
	received time.Time
	obs      []Observation
	rejs     []Rejection
	ack      func()
}

// urgent reports whether e carries an emergency signal.
func (e *envelope) urgent() bool {
	for i := range e.obs {
		if e.obs[i].Kind == KindEmergency {
			return true
		}
	}
	return false
}

// Ingester validates messages, writes them in batches and acknowledges
// each message only after its batch commits.
type Ingester struct {
	cfg     Config
	pool    *pgxpool.Pool
	log     *slog.Logger
	m       *Metrics
	devices *deviceCache
	in      chan *envelope
	// urgentIn carries messages with emergency signals past the bulk
	// queue: a 115 call never waits behind thousands of readings.
	urgentIn chan *envelope
	pending  atomic.Int64
	// busy counts writers with a transaction in flight; freed (capacity
	// 1) wakes the batcher when one finishes. See batch.
	busy  atomic.Int32
	freed chan struct{}
	// room and nudge let the batcher sleep while a batch grows instead
	// of waking for every message: room is how many more queued messages
	// (each at least one item) would make the batch worth cutting before
	// whatever it waits for (0: no threshold), and Submit, on putting
	// that many on the queue, nudges (capacity 1). See batch.
	room  atomic.Int64
	nudge chan struct{}
	// failing is the error of the latest failed write, nil once a write
	// succeeds again (Healthy).
	failing atomic.Pointer[writeFailure]
	// loaded is closed once Run has read the device registry: until then
	// Submit waits, or it would judge registrations and fixed positions
	// from an empty cache.
	loaded chan struct{}
	// heldBytes: payload bytes the Subscriber received and has not yet
	// had acknowledged (ioc_ingest_held_bytes).
	heldBytes atomic.Int64
}

type writeFailure struct {
	err   error
	class string
	since time.Time
}

// New makes an ingester. Call Run to start it; Submit feeds it.
func New(cfg Config, pool *pgxpool.Pool, log *slog.Logger) (*Ingester, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.BatchSize < 1 || cfg.Buffer < cfg.BatchSize || cfg.Writers < 1 || cfg.BatchWait < 0 {
		return nil, fmt.Errorf("ingest: bad config: batch %d, buffer %d, writers %d, wait %v", cfg.BatchSize, cfg.Buffer, cfg.Writers, cfg.BatchWait)
	}
	g := &Ingester{
		cfg:      cfg,
		pool:     pool,
		log:      log,
		devices:  newDeviceCache(cfg.DeviceStateMax, cfg.DeviceStateTTL, cfg.RequireRegistered),
		in:       make(chan *envelope, cfg.Buffer),
		urgentIn: make(chan *envelope, 1024),
		freed:    make(chan struct{}, 1),
		nudge:    make(chan struct{}, 1),
		loaded:   make(chan struct{}),
	}
	g.m = newMetrics(cfg.Registerer, func() float64 { return float64(g.heldBytes.Load()) })
	return g, nil
}

// Metrics exposes the ingester's counters (for tests and the MQTT side).
func (g *Ingester) Metrics() *Metrics { return g.m }

// Submit validates one message and queues it. It blocks while the buffer
// is full (the database is slow or down): the message stays
// unacknowledged, the decoders stop taking new ones, paho's per-message
// goroutines wait for them, and the broker stops sending once its
// in-flight window is used up. ack is called after the message's batch
// commits. Safe for concurrent use.
func (g *Ingester) Submit(ctx context.Context, topic string, payload []byte, dup bool, ack func()) error {
	select {
	case <-g.loaded:
	case <-ctx.Done():
		return ctx.Err()
	}
	now := g.cfg.Now()
	e := &envelope{topic: topic, payload: payload, size: len(payload), dup: dup, received: now, ack: ack}
	if len(payload) > maxStoredPayload && len(payload) > g.cfg.MaxPayloadBytes {
		// Too large: keep what the rejection stores, a copy, so the rest
		// is not held by ingest while the message waits for its batch.
		e.digest = rejectDigest(topic, payload)
		e.payload = bytes.Clone(payload[:maxStoredPayload])
	}
	kind, device, rej := ParseTopic(g.cfg.Prefix, topic)
	switch {
	case rej != nil:
		e.rejs = []Rejection{*rej}
		g.m.receivedBy["invalid"].Inc()
	case g.cfg.RequireRegistered && !g.devices.enrolled(device):
		e.device = device
		g.m.receivedBy[kind].Inc()
		e.rejs = []Rejection{{-1, ReasonUnknownDevice, "device " + device + " is not registered (require_registered_devices)"}}
	default:
		e.device = device
		g.m.receivedBy[kind].Inc()
		// Decode reads outside input: a bug there must cost one message
		// (kept as internal_error), not the process and then, on
		// redelivery, every restart.
		if err := safely(func() {
			e.obs, e.rejs = Decode(g.cfg.Limits, kind, device, payload, now)
			g.place(e)
		}); err != nil {
			g.recordPanic(err, []*envelope{e}, "while decoding")
			e.obs, e.rejs = nil, []Rejection{{-1, ReasonInternalError, "ingest failed on this message (see the log)"}}
		}
	}
	return g.enqueue(ctx, e)
}

// enqueue puts e on its queue for the batcher, nudging it when the batch
// it is growing has room for no more (see batch).
func (g *Ingester) enqueue(ctx context.Context, e *envelope) error {
	g.pending.Add(1)
	g.m.BufferDepth.Set(float64(g.pending.Load()))
	in := g.in
	if e.urgent() {
		in = g.urgentIn
	}
	select {
	case in <- e:
	case <-ctx.Done():
		g.pending.Add(-1)
		return ctx.Err()
	}
	if r := g.room.Load(); r > 0 && in == g.in && int64(len(in)) >= r {
		select {
		case g.nudge <- struct{}{}:
		default: // a nudge is already pending
		}
	}
	return nil
}

// place fills positions of fixed devices, the ward, and applies the
// service-area check; observations that fail become rejections.
func (g *Ingester) place(e *envelope) {
	kept := e.obs[:0]
	for _, o := range e.obs {
		item := o.Item
		if o.Kind == KindStatus {
			kept = append(kept, o)
			continue
		}
		if !o.HasPos {
			d, ok := g.devices.get(o.DeviceID)
			if !ok || !d.fixed {
				e.rejs = append(e.rejs, Rejection{item, ReasonMissingField, "lat/lon: required (the device has no registered position)"})
				continue
			}
			o.Lon, o.Lat, o.HasPos = d.fixedLon, d.fixedLat, true
		}
		if g.cfg.Area != nil && !g.cfg.Area.Contains(o.Lon, o.Lat) {
			e.rejs = append(e.rejs, Rejection{item, ReasonOutsideArea, fmt.Sprintf("lon %v, lat %v is outside the service area", o.Lon, o.Lat)})
			continue
		}
		if g.cfg.Wards != nil {
			o.Ward, _ = g.cfg.Wards.Lookup(o.Lon, o.Lat)
		}
		kept = append(kept, o)
	}
	e.obs = kept
}

// Run loads the device registry, keeps partitions, and batches and writes
// until ctx ends. Messages still buffered then are left unacknowledged;
// the broker redelivers them to the next session.
func (g *Ingester) Run(ctx context.Context) error {
	if err := g.devices.load(ctx, g.pool); err != nil {
		return err
	}
	close(g.loaded)
	if err := g.maintainPartitions(ctx); err != nil {
		return err
	}
	batches, urgent := make(chan []*envelope), make(chan []*envelope) // unbuffered: see batch
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.batch(ctx, batches, urgent) })
	for i := 0; i < g.cfg.Writers; i++ {
		eg.Go(func() error { return g.writeLoop(ctx, batches, true) })
	}
	eg.Go(func() error { return g.writeLoop(ctx, urgent, false) })
	eg.Go(func() error { return g.partitionLoop(ctx) })
	eg.Go(func() error { return g.registryLoop(ctx) })
	if g.cfg.RejectsMaxAge > 0 || g.cfg.RejectsMaxRows > 0 {
		eg.Go(func() error { return g.pruneLoop(ctx) })
	}
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// batch cuts the stream into batches by adaptive group commit:
//   - when no writer is busy, the batch goes at once: at low load a
//     message waits for no one;
//   - while a transaction is in flight, the next batch grows until that
//     writer is free again, or until it holds a quarter of BatchSize, when
//     it goes to another writer: under load, transactions carry hundreds of
//     rows instead of a few dozen, which is what PostgreSQL's per-commit
//     cost asks for;
//   - messages carrying emergency signals arrive on a queue of their own
//     (urgentIn), read first and never closed by a full bulk batch, and
//     travel in batches of their own to a writer reserved for them
//     (urgent): a 115 call waits neither behind the bulk queue nor behind
//     two thousand traffic readings;
//   - BatchWait, if set, makes every bulk batch linger that long for company
//     (iocd's default is 20 ms: at 10,000 msg/s that is 40 µs of CPU of
//     iocd and PostgreSQL per message against 56 with 5 ms and ~84 with
//     none, for ~50 ms commit lag at p99; docs/ingest.md, sixth and eighth
//     sittings). Emergency batches never linger;
//   - once a bulk batch has begun, the batcher does not take messages
//     one by one: they wait on the queue while it sleeps until the
//     linger ends, a writer is free or takes the batch, or enough are
//     queued to fill the batch (or to make a share while writers are
//     busy), when Submit nudges it; then it takes them all at once.
//
// A batch never exceeds BatchSize items and a message is never split.
// out and urgent must be unbuffered: a send succeeds only when a writer
// is waiting.
func (g *Ingester) batch(ctx context.Context, out, urgent chan<- []*envelope) error {
	var cur, ucur []*envelope
	items := 0
	var lingerUntil, armed time.Time
	// Since Go 1.23 a Reset timer never delivers the time of its earlier
	// setting, so a stale fire cannot cut a later batch short.
	lingerTimer := time.NewTimer(time.Hour)
	lingerTimer.Stop()
	defer lingerTimer.Stop()
	add := func(e *envelope) {
		if e.urgent() {
			ucur = append(ucur, e)
			return
		}
		if len(cur) == 0 && g.cfg.BatchWait > 0 {
			lingerUntil = time.Now().Add(g.cfg.BatchWait)
		}
		cur = append(cur, e)
		items += len(e.obs) + len(e.rejs)
	}
	share := max(1, g.cfg.BatchSize/4)
	for {
		if len(cur) == 0 && len(ucur) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case e := <-g.urgentIn:
				add(e)
			case e := <-g.in:
				add(e)
			}
			continue
		}
		// Take whatever is already waiting before offering a batch.
	drainUrgent:
		for len(ucur) < g.cfg.BatchSize {
			select {
			case e := <-g.urgentIn:
				add(e)
			default:
				break drainUrgent
			}
		}
	drain:
		for items < g.cfg.BatchSize {
			select {
			case e := <-g.in:
				add(e)
			default:
				break drain
			}
		}
		var offer, uoffer chan<- []*envelope
		if len(cur) > 0 && (g.busy.Load() == 0 || items >= share) {
			offer = out
		}
		if len(ucur) > 0 {
			uoffer = urgent
		}
		var linger <-chan time.Time
		if offer != nil && items < g.cfg.BatchSize && g.cfg.BatchWait > 0 {
			if d := time.Until(lingerUntil); d > 0 {
				offer = nil
				if !armed.Equal(lingerUntil) { // one timer per batch, not per message
					lingerTimer.Reset(d)
					armed = lingerUntil
				}
				linger = lingerTimer.C
			}
		}
		// A bulk batch that has begun is not fed message by message: the
		// queue holds what arrives, and the batcher sleeps until what it
		// waits for (the linger, a writer) happens, or until room more
		// messages are queued, enough to fill the batch or, while every
		// writer is busy, to make a share. Waking for each message cost
		// more CPU than the message (docs/ingest.md, ninth sitting).
		in, uin := g.in, g.urgentIn
		var room int64
		if len(cur) > 0 {
			in = nil
			threshold := g.cfg.BatchSize
			if offer == nil && linger == nil {
				threshold = share // waiting for a free writer
			}
			room = int64(max(0, threshold-items))
		}
		if len(ucur) >= g.cfg.BatchSize {
			uin = nil
		}
		g.room.Store(room)
		if room > 0 && int64(len(g.in)) >= room {
			continue // enough came while this was decided; Submit may not have seen room yet
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-uin:
			add(e)
		case e := <-in:
			add(e)
		case <-g.nudge:
		case <-linger:
		case <-g.freed:
		case offer <- cur:
			g.busy.Add(1)
			cur, items = nil, 0
		case uoffer <- ucur:
			ucur = nil
		}
		g.room.Store(0)
	}
}

// writeLoop commits the batches it receives. Bulk writers (counted) keep
// busy up to date for the batcher; the urgent writer does not.
func (g *Ingester) writeLoop(ctx context.Context, in <-chan []*envelope, counted bool) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case envs := <-in:
			err := g.commit(ctx, envs)
			if counted {
				g.busy.Add(-1)
				select {
				case g.freed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return err
			}
		}
	}
}

// commit writes a batch, retrying until it succeeds or ctx ends, then
// acknowledges its messages. A batch that fails because of its data, or
// on which ingest itself panics, is split so one bad message cannot block
// the rest; a failure of the database (a server fault, the database
// away) is retried with backoff and never acknowledged meanwhile.
func (g *Ingester) commit(ctx context.Context, envs []*envelope) error {
	var p *prepared
	if err := safely(func() { p = prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now()) }); err != nil {
		return g.internalError(ctx, envs, err)
	}
	poisoned := 0
	hook := g.cfg.InTx
	if !hasEmergency(p.obs) {
		hook = nil
	}
	var bo db.Backoff
	for {
		start := time.Now()
		dups, after, err := g.writeOnce(ctx, p, hook)
		if err == nil {
			g.failing.Store(nil)
			g.m.WriteFailing.Set(0)
			if after != nil {
				if perr := safely(after); perr != nil {
					g.recordPanic(perr, envs, "after the commit")
				}
			}
			g.committed(envs, p, dups, time.Since(start))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var herr hookError
		var perr *panicError
		switch {
		case errors.As(err, &perr):
			return g.internalError(ctx, envs, err)
		case errors.As(err, &herr):
			// The hook's failure must never hold back the data: write
			// the batch without it; OnCommit consumers take over.
			g.m.WriteErrors.WithLabelValues("hook").Inc()
			g.log.Warn("ingest: in-transaction hook failed; writing the batch without it", "err", err)
			hook = nil
			continue
		case isMissingPartition(err):
			g.log.Warn("ingest: creating missing partition", "err", err)
			if err := g.ensurePartitions(ctx, p); err != nil {
				g.log.Error("ingest: partitions", "err", err)
			}
		case isPoison(err) && len(envs) > 1:
			g.m.WriteErrors.WithLabelValues("poison").Inc()
			g.log.Warn("ingest: batch refused by the database; writing its messages one by one", "messages", len(envs), "err", err)
			for _, e := range envs {
				if err := g.commit(ctx, []*envelope{e}); err != nil {
					return err
				}
			}
			return nil
		case isPoison(err):
			// One message the database will never take: keep it as a
			// rejection so it is seen, and let ingest go on. First its
			// rejections plus 'unstorable'; if even that fails, one bare
			// rejection (fixed ASCII detail, the payload as bytes); if
			// that fails too, give up on this message rather than block
			// the city's ingest: logged, counted, acknowledged.
			g.m.WriteErrors.WithLabelValues("poison").Inc()
			e := envs[0]
			poisoned++
			switch poisoned {
			case 1:
				g.log.Error("ingest: message refused by the database; stored as a rejection", "topic", e.topic, "err", err)
				e.rejs = append(e.rejs, Rejection{-1, ReasonUnstorable, "the database refused the message"})
			case 2:
				g.log.Error("ingest: rejection refused by the database; storing a bare one", "topic", e.topic, "err", err)
				e.rejs = []Rejection{{-1, ReasonUnstorable, "the database refused the message and its rejection"}}
				e.device = ""
			default:
				g.log.Error("ingest: message cannot be stored at all; acknowledging it to keep ingest going", "topic", e.topic, "err", err)
				g.drop(e, "dropped_unstorable")
				return nil
			}
			e.obs = nil
			if err := safely(func() { p = prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now()) }); err != nil {
				return g.internalError(ctx, envs, err)
			}
			continue
		default:
			// Not the data's fault: the database is away, or refuses
			// every batch (a server fault). Nothing is acknowledged or
			// rejected; the batch waits and is tried again.
			class := faultClass(err)
			g.m.WriteErrors.WithLabelValues(class).Inc()
			g.m.WriteFailing.Set(1)
			since := time.Now()
			if f := g.failing.Load(); f != nil {
				since = f.since
			}
			g.failing.Store(&writeFailure{err: err, class: class, since: since})
			g.devices.forget(deviceIDs(p))
			if err := safely(func() { p = prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now()) }); err != nil {
				return g.internalError(ctx, envs, err)
			}
		}
		delay := bo.Next()
		level := slog.LevelWarn
		if faultClass(err) == "server_fault" {
			level = slog.LevelError
		}
		g.log.Log(ctx, level, "ingest: write failed; retrying", "in", delay, "class", faultClass(err), "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Healthy reports why ingest is not storing, or nil: the latest batch
// write failed (the database is away, or refuses writes: a missing
// permission, table or column) and none has succeeded since. /readyz
// reports it.
func (g *Ingester) Healthy() error {
	f := g.failing.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("ingest writes failing since %s (%s): %w", f.since.UTC().Format(time.RFC3339), f.class, f.err)
}

// panicError is a panic recovered on a writer, with its stack.
type panicError struct {
	val   any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.val) }

// safely runs f and returns its panic, if any, as a *panicError.
func safely(f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v, debug.Stack()}
		}
	}()
	f()
	return nil
}

func (g *Ingester) recordPanic(err error, envs []*envelope, where string) {
	g.m.WriteErrors.WithLabelValues("panic").Inc()
	var perr *panicError
	stack := ""
	if errors.As(err, &perr) {
		stack = string(perr.stack)
	}
	g.log.Error("ingest: panic recovered "+where, "messages", len(envs), "err", err, "stack", stack)
}

// internalError handles a panic while writing envs: a batch is split so
// the message that causes it is found; that message is kept as an
// internal_error rejection (its observations are not stored) and so
// acknowledged once, never redelivered into the same panic. If even
// storing its rejection panics, it is acknowledged and counted as
// dropped_internal_error.
func (g *Ingester) internalError(ctx context.Context, envs []*envelope, err error) error {
	g.recordPanic(err, envs, "while writing a batch")
	if len(envs) > 1 {
		for _, e := range envs {
			if err := g.commit(ctx, []*envelope{e}); err != nil {
				return err
			}
		}
		return nil
	}
	e := envs[0]
	if e.internal {
		g.log.Error("ingest: message cannot be stored even as a rejection; acknowledging it to keep ingest going", "topic", e.topic)
		g.drop(e, "dropped_internal_error")
		return nil
	}
	e.internal = true
	e.obs = nil
	e.rejs = append(e.rejs, Rejection{-1, ReasonInternalError, "ingest failed on this message (see the log)"})
	return g.commit(ctx, envs)
}

// drop acknowledges a message that could not be stored at all.
func (g *Ingester) drop(e *envelope, reason string) {
	g.m.Rejected.WithLabelValues(reason).Inc()
	g.pending.Add(-1)
	g.m.BufferDepth.Set(float64(g.pending.Load()))
	if e.ack != nil {
		e.ack()
	}
	g.m.Acked.Inc()
}

func (g *Ingester) writeOnce(ctx context.Context, p *prepared, hook TxHook) (dups int64, after func(), err error) {
	conn, err := g.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Release()
	// A panic inside (the hook's, or ours) has rolled the transaction
	// back by the time it reaches here (pgx.BeginFunc's deferred rollback).
	if perr := safely(func() { dups, after, err = write(ctx, conn.Conn(), p, g.cfg.Now(), hook) }); perr != nil {
		return 0, nil, perr
	}
	return dups, after, err
}

func hasEmergency(obs []*Observation) bool {
	for _, o := range obs {
		if o.Kind == KindEmergency {
			return true
		}
	}
	return false
}

func (g *Ingester) committed(envs []*envelope, p *prepared, dups int64, took time.Duration) {
	now := g.cfg.Now()
	g.devices.committed(p.devices, p.statuses, now)
	stored := int64(len(p.obs)+countStatuses(envs)) - dups
	g.m.Committed.Add(float64(stored))
	g.m.Duplicates.Add(float64(dups))
	g.m.BatchSize.Observe(float64(p.items))
	g.m.CommitSeconds.Observe(took.Seconds())
	for _, o := range p.obs {
		g.m.CommitLag.Observe(now.Sub(o.TS).Seconds())
	}
	for _, e := range envs {
		for _, r := range e.rejs {
			g.m.Rejected.WithLabelValues(r.Reason).Inc()
		}
	}
	if g.cfg.OnCommit != nil && len(p.obs) > 0 {
		// The rows are stored: a panic of a consumer must not keep them
		// from being acknowledged.
		if err := safely(func() { g.cfg.OnCommit(p.obs) }); err != nil {
			g.recordPanic(err, envs, "in OnCommit")
		}
	}
	for _, e := range envs {
		if e.ack != nil {
			e.ack()
		}
	}
	g.m.Acked.Add(float64(len(envs)))
	g.pending.Add(-int64(len(envs)))
	g.m.BufferDepth.Set(float64(g.pending.Load()))
}

func countStatuses(envs []*envelope) int {
	n := 0
	for _, e := range envs {
		for i := range e.obs {
			if e.obs[i].Kind == KindStatus {
				n++
			}
		}
	}
	return n
}

func deviceIDs(p *prepared) []string {
	ids := make([]string, 0, len(p.obs))
	for _, o := range p.obs {
		ids = append(ids, o.DeviceID)
	}
	return ids
}

func (g *Ingester) ensurePartitions(ctx context.Context, p *prepared) error {
	lo, hi := g.cfg.Now(), g.cfg.Now()
	for _, o := range p.obs {
		lo, hi = minTime(lo, o.TS), maxTime(hi, o.TS)
	}
	return db.EnsurePartitions(ctx, g.pool, lo, hi)
}

// maintainPartitions makes sure every day an observation may fall in (the
// late-data window to a day ahead) has its partition, and drops days past
// retention.
func (g *Ingester) maintainPartitions(ctx context.Context) error {
	err := g.maintainPartitionsOnce(ctx)
	if err != nil {
		g.m.RetentionRuns.WithLabelValues("error").Inc()
		return err
	}
	g.m.RetentionRuns.WithLabelValues("ok").Inc()
	g.m.RetentionLastRun.Set(float64(g.cfg.Now().Unix()))
	return nil
}

func (g *Ingester) maintainPartitionsOnce(ctx context.Context) error {
	now := g.cfg.Now()
	if err := db.EnsurePartitions(ctx, g.pool, now.Add(-g.cfg.LateWindow-24*time.Hour), now.Add(48*time.Hour)); err != nil {
		return err
	}
	if g.cfg.RetentionDays > 0 {
		cutoff := now.AddDate(0, 0, -g.cfg.RetentionDays)
		if cutoff.Before(now.Add(-g.cfg.LateWindow - 48*time.Hour)) {
			g.m.RetentionCutoff.Set(float64(cutoff.Unix()))
			dropped, err := db.DropPartitionsBefore(ctx, g.pool, cutoff)
			g.m.PartitionsDropped.Add(float64(len(dropped)))
			if err != nil {
				return err
			}
			if len(dropped) > 0 {
				g.log.Info("ingest: dropped partitions past retention", "count", len(dropped), "before", cutoff.Format(time.DateOnly))
			}
		}
	}
	return nil
}

func (g *Ingester) partitionLoop(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := g.maintainPartitions(ctx); err != nil && ctx.Err() == nil {
				g.log.Error("ingest: partition maintenance", "err", err)
			}
		}
	}
}

// registryLoop keeps the device cache bounded (sweep) and, when
// registration is required, its registrations those of the table.
func (g *Ingester) registryLoop(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	g.m.DeviceStates.Set(float64(g.devices.size()))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		g.m.DeviceStates.Set(float64(g.devices.sweep(g.cfg.Now())))
		if g.cfg.RequireRegistered {
			if err := g.devices.syncEnrolled(ctx, g.pool); err != nil && ctx.Err() == nil {
				g.log.Warn("ingest: reading registered devices", "err", err)
			}
		}
	}
}

// Enroll tells the ingester at once that an admin registered a device
// (on) or removed its registration; other instances learn it within a
// minute. fixed, if not nil, is its registered position (lon, lat).
func (g *Ingester) Enroll(id string, on bool, fixed *[2]float64) {
	if fixed != nil {
		g.devices.enroll(id, on, true, fixed[0], fixed[1])
	} else {
		g.devices.enroll(id, on, false, 0, 0)
	}
}

// pruneLoop deletes rejections older than RejectsMaxAge and, beyond the
// newest RejectsMaxRows, the oldest ones, at start and every
// RejectsPruneEvery.
func (g *Ingester) pruneLoop(ctx context.Context) error {
	every := g.cfg.RejectsPruneEvery
	if every <= 0 {
		every = 10 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := g.PruneRejects(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("ingest: pruning ingest_rejects", "err", err)
		} else if n > 0 {
			g.log.Info("ingest: pruned ingest_rejects", "rows", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// PruneRejects applies the age and count limits once and returns how
// many rows it deleted. Deletes go in chunks so no one transaction holds
// a large part of the table.
func (g *Ingester) PruneRejects(ctx context.Context) (int64, error) {
	const chunk = 10_000
	var total int64
	del := func(sql string, args ...any) error {
		for {
			tag, err := g.pool.Exec(ctx, sql, args...)
			if err != nil {
				return fmt.Errorf("prune rejects: %w", err)
			}
			total += tag.RowsAffected()
			g.m.RejectsPruned.Add(float64(tag.RowsAffected()))
			if tag.RowsAffected() < chunk {
				return nil
			}
		}
	}
	if g.cfg.RejectsMaxAge > 0 {
		cutoff := g.cfg.Now().Add(-g.cfg.RejectsMaxAge)
		if err := del(`DELETE FROM ingest_rejects WHERE id IN (
			SELECT id FROM ingest_rejects WHERE received_at < $1 ORDER BY received_at LIMIT $2)`, cutoff, chunk); err != nil {
			return total, err
		}
	}
	if g.cfg.RejectsMaxRows > 0 {
		// The newest RejectsMaxRows by arrival stay; the rest go.
		if err := del(`DELETE FROM ingest_rejects WHERE id IN (
			SELECT id FROM ingest_rejects ORDER BY received_at DESC, id DESC OFFSET $1 LIMIT $2)`, g.cfg.RejectsMaxRows, chunk); err != nil {
			return total, err
		}
	}
	return total, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
