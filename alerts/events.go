package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Event is one committed incident change, in the city-wide order.
type Event struct {
	Seq      int64           `json:"seq"`
	Op       string          `json:"op"` // opened, updated, resolved
	At       time.Time       `json:"at"`
	Incident json.RawMessage `json:"incident"` // the Incident after the change (no evidence or timeline)
}

// ErrEventsGone: the events after the asked seq are no longer kept; the
// caller starts over from a snapshot (the websocket's "reset").
var ErrEventsGone = errors.New("incident events no longer kept")

// EventRetention is how long incident events are kept for resuming.
const EventRetention = 24 * time.Hour

// subscriberBuffer is each subscriber's queue; one that falls this far
// behind is dropped (its channel closed) and resumes with Since.
const subscriberBuffer = 1024

// Events is the incident event log: durable in incident_events, announced
// by PostgreSQL NOTIFY so every instance sees every event, whichever
// instance made the change.
//
// Use: sub, cancel := Subscribe(); then Since(ctx, lastSeen) for what was
// missed; then read sub, skipping seq <= the last one handled. A closed
// channel means the subscriber was too slow: subscribe again and resume
// with Since. Safe for concurrent use; Run is its one goroutine.
type Events struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	poll time.Duration

	mu   sync.Mutex // guards subs and last; never held across I/O
	subs map[chan Event]struct{}
	last int64

	// listening is true while the LISTEN connection is up and caught up:
	// while it is false no event reaches the subscribers.
	listening atomic.Bool
	// keepAge and keepCount bound the log (SetRetention).
	keepAge   time.Duration
	keepCount int64
}

// NewEvents makes the event log reader.
func NewEvents(pool *pgxpool.Pool, log *slog.Logger) *Events {
	return &Events{pool: pool, log: log, poll: time.Second, subs: map[chan Event]struct{}{}, last: -1,
		keepAge: EventRetention}
}

// SetRetention bounds the log by age and count (0: that bound off; an
// age of 0 keeps the default). A client that resumes from further back is
// told to start over. Call before Run.
func (e *Events) SetRetention(age time.Duration, count int64) {
	if age > 0 {
		e.keepAge = age
	}
	e.keepCount = count
}

// Listening reports whether new events are reaching the subscribers: the
// LISTEN connection is up. While it is down they are delayed, not lost:
// the log is read from the last delivered once it is back.
func (e *Events) Listening() bool { return e.listening.Load() }

// Epoch names this log's lineage: a seq means something only within
// one epoch (db/migrations/0400_streams.sql).
func (e *Events) Epoch(ctx context.Context) (string, error) {
	var epoch string
	if err := e.pool.QueryRow(ctx, `SELECT epoch FROM incident_log_epoch`).Scan(&epoch); err != nil {
		return "", fmt.Errorf("incident log epoch: %w", err)
	}
	return epoch, nil
}

// Since returns the events with seq > since, oldest first, at most limit
// (0: 10000). ErrEventsGone if some of them were already deleted.
func (e *Events) Since(ctx context.Context, since int64, limit int) ([]Event, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	var oldest *int64
	if err := e.pool.QueryRow(ctx, `SELECT min(seq) FROM incident_events`).Scan(&oldest); err != nil {
		return nil, fmt.Errorf("incident events: %w", err)
	}
	var cur int64
	if err := e.pool.QueryRow(ctx, `SELECT seq FROM incident_seq`).Scan(&cur); err != nil {
		return nil, fmt.Errorf("incident events: %w", err)
	}
	if since < cur && (oldest == nil || *oldest > since+1) {
		return nil, ErrEventsGone
	}
	rows, err := e.pool.Query(ctx, `SELECT seq, op, at, incident FROM incident_events WHERE seq > $1 ORDER BY seq LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("incident events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var ev Event
		err := r.Scan(&ev.Seq, &ev.Op, &ev.At, &ev.Incident)
		return ev, err
	})
}

// LastSeq is the seq of the newest committed event (0: none yet).
func (e *Events) LastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := e.pool.QueryRow(ctx, `SELECT seq FROM incident_seq`).Scan(&seq)
	return seq, err
}

// Subscribe returns a channel of the events committed from now on, in
// order, and a cancel func.
func (e *Events) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
		e.mu.Unlock()
	}
}

// Trim deletes the events older or further back than the retention.
func (e *Events) Trim(ctx context.Context, now time.Time) error {
	_, err := e.pool.Exec(ctx, `DELETE FROM incident_events WHERE at < $1
		OR ($2 > 0 AND seq <= (SELECT seq FROM incident_seq) - $2)`, now.Add(-e.keepAge), e.keepCount)
	return err
}

// Run listens for new events and hands them to subscribers until ctx ends.
func (e *Events) Run(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for {
		err := e.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		metricWriteErrors.WithLabelValues("events_listen").Inc()
		e.log.Warn("incident events: listen connection lost; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff/2 + time.Duration(rand.Int64N(int64(backoff)))):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (e *Events) listen(ctx context.Context) error {
	cc := e.pool.Config().ConnConfig.Copy()
	// Named, so an operator (or a test) can find the one connection the
	// event stream depends on.
	cc.RuntimeParams["application_name"] = ListenAppName
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	e.mu.Lock()
	if e.last < 0 {
		e.mu.Unlock()
		seq, err := e.LastSeq(ctx)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.last = seq
	}
	e.mu.Unlock()
	if err := e.deliver(ctx); err != nil {
		return err
	}
	e.listening.Store(true)
	defer e.listening.Store(false)
	for {
		wctx, cancel := context.WithTimeout(ctx, e.poll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && (ctx.Err() != nil || !errors.Is(wctx.Err(), context.DeadlineExceeded) || conn.IsClosed()) {
			return err
		}
		// The notification carries the event: the next in order goes out
		// as it is. Anything else (a poll, a gap, a notification with the
		// seq alone) reads the log from the last delivered.
		if n != nil {
			if ev, ok := parseNotification(n.Payload); ok && e.Offer(ev) {
				continue
			}
		}
		if err := e.deliver(ctx); err != nil {
			return err
		}
	}
}

// ListenAppName is the application_name of the LISTEN connection.
const ListenAppName = "iocd-events-listen"

// parseNotification reads "<seq> <event json>"; ok is false for a bare
// seq or anything unexpected.
func parseNotification(payload string) (Event, bool) {
	seq, body, found := strings.Cut(payload, " ")
	if !found {
		return Event{}, false
	}
	var ev Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return Event{}, false
	}
	ev.Seq, _ = strconv.ParseInt(seq, 10, 64)
	return ev, ev.Seq > 0
}

// Offer hands a committed event to the subscribers if it is the next in
// order, and reports whether it was delivered, now or before. An event
// ahead of the next is ignored: it arrives again through NOTIFY once the
// ones before it have. The instance that commits a change offers its
// event at once, without waiting for its own notification.
func (e *Events) Offer(ev Event) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last < 0 || ev.Seq > e.last+1 {
		return false
	}
	if ev.Seq == e.last+1 {
		e.fanOut(ev)
		e.last = ev.Seq
	}
	return true
}

// fanOut sends ev to every subscriber; one whose queue is full is
// disconnected (it resumes with Since). Call with mu held.
func (e *Events) fanOut(ev Event) {
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			delete(e.subs, ch)
			close(ch)
			metricSubscriberDrops.Inc()
			e.log.Warn("incident events: subscriber too slow; disconnected", "at_seq", ev.Seq)
		}
	}
}

// deliver reads the events after the last delivered and fans them out.
func (e *Events) deliver(ctx context.Context) error {
	e.mu.Lock()
	last := e.last
	e.mu.Unlock()
	for {
		evs, err := e.Since(ctx, last, 1000)
		if errors.Is(err, ErrEventsGone) {
			// Trimmed under us (a long outage): skip ahead.
			cur, err := e.LastSeq(ctx)
			if err != nil {
				return err
			}
			e.mu.Lock()
			e.last = max(e.last, cur)
			e.mu.Unlock()
			return nil
		}
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		e.mu.Lock()
		for _, ev := range evs {
			if ev.Seq == e.last+1 { // not already offered by this instance
				e.fanOut(ev)
				e.last = ev.Seq
			}
		}
		last = e.last
		e.mu.Unlock()
		if len(evs) < 1000 {
			return nil
		}
	}
}
