package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	topic    string
	device   string
	payload  []byte
	dup      bool
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
	return &Ingester{
		cfg:      cfg,
		pool:     pool,
		log:      log,
		m:        newMetrics(cfg.Registerer),
		devices:  newDeviceCache(),
		in:       make(chan *envelope, cfg.Buffer),
		urgentIn: make(chan *envelope, 1024),
		freed:    make(chan struct{}, 1),
	}, nil
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
	now := g.cfg.Now()
	e := &envelope{topic: topic, payload: payload, dup: dup, received: now, ack: ack}
	kind, device, rej := ParseTopic(g.cfg.Prefix, topic)
	if rej != nil {
		e.rejs = []Rejection{*rej}
		g.m.receivedBy["invalid"].Inc()
	} else {
		e.device = device
		g.m.receivedBy[kind].Inc()
		e.obs, e.rejs = Decode(g.cfg.Limits, kind, device, payload, now)
		g.place(e)
	}
	g.pending.Add(1)
	g.m.BufferDepth.Set(float64(g.pending.Load()))
	in := g.in
	if e.urgent() {
		in = g.urgentIn
	}
	select {
	case in <- e:
		return nil
	case <-ctx.Done():
		g.pending.Add(-1)
		return ctx.Err()
	}
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
//   - BatchWait, if set, makes every bulk batch linger that long for company.
//
// A batch never exceeds BatchSize items and a message is never split.
// out and urgent must be unbuffered: a send succeeds only when a writer
// is waiting.
func (g *Ingester) batch(ctx context.Context, out, urgent chan<- []*envelope) error {
	var cur, ucur []*envelope
	items := 0
	var lingerUntil time.Time
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
				linger = time.After(d)
			}
		}
		in, uin := g.in, g.urgentIn
		if items >= g.cfg.BatchSize {
			in = nil // full: wait for a writer
		}
		if len(ucur) >= g.cfg.BatchSize {
			uin = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-uin:
			add(e)
		case e := <-in:
			add(e)
		case <-linger:
		case <-g.freed:
		case offer <- cur:
			g.busy.Add(1)
			cur, items = nil, 0
		case uoffer <- ucur:
			ucur = nil
		}
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

// commit writes a batch, retrying transient failures with backoff until
// it succeeds or ctx ends, then acknowledges its messages. A batch that
// fails because of its data is split so one bad message cannot block the
// rest.
func (g *Ingester) commit(ctx context.Context, envs []*envelope) error {
	p := prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now())
	poisoned := 0
	hook := g.cfg.InTx
	if !hasEmergency(p.obs) {
		hook = nil
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		dups, after, err := g.writeOnce(ctx, p, hook)
		if err == nil {
			if after != nil {
				after()
			}
			g.committed(envs, p, dups, time.Since(start))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var herr hookError
		switch {
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
				g.m.Rejected.WithLabelValues("dropped_unstorable").Inc()
				g.pending.Add(-1)
				g.m.BufferDepth.Set(float64(g.pending.Load()))
				if e.ack != nil {
					e.ack()
				}
				g.m.Acked.Inc()
				return nil
			}
			e.obs = nil
			p = prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now())
			continue
		default:
			g.m.WriteErrors.WithLabelValues("transient").Inc()
			g.devices.forget(deviceIDs(p))
			p = prepare(envs, g.devices, g.cfg.TouchInterval, g.cfg.Now())
		}
		delay := backoff(attempt)
		g.log.Warn("ingest: write failed; retrying", "attempt", attempt+1, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (g *Ingester) writeOnce(ctx context.Context, p *prepared, hook TxHook) (int64, func(), error) {
	conn, err := g.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Release()
	return write(ctx, conn.Conn(), p, g.cfg.Now(), hook)
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
		g.cfg.OnCommit(p.obs)
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

// backoff: 100 ms doubling to 5 s, with ±25 % jitter so instances that lost
// the database together do not return in lockstep.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	d = min(d, 5*time.Second)
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
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
	now := g.cfg.Now()
	if err := db.EnsurePartitions(ctx, g.pool, now.Add(-g.cfg.LateWindow-24*time.Hour), now.Add(48*time.Hour)); err != nil {
		return err
	}
	if g.cfg.RetentionDays > 0 {
		cutoff := now.AddDate(0, 0, -g.cfg.RetentionDays)
		if cutoff.Before(now.Add(-g.cfg.LateWindow - 48*time.Hour)) {
			dropped, err := db.DropPartitionsBefore(ctx, g.pool, cutoff)
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
