package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"ioc/db"
)

// MQTTConfig says where and how to subscribe.
type MQTTConfig struct {
	URL         string // tcp://user:pass@host:1883 or ssl://...
	ClientID    string // stable: names the persistent session
	Prefix      string
	SharedGroup string      // non-empty: $share/<group>/<prefix>/#
	TLS         *tls.Config // for ssl:// brokers
	// MaxHeldBytes caps the payload bytes received and not yet
	// acknowledged; when reached, the subscriber stops reading from the
	// broker until commits free some. It bounds iocd's memory whatever the
	// broker's max_inflight_bytes. Zero: 64 MiB.
	MaxHeldBytes int64
	// SubscribeTimeout is how long to wait for a SUBACK before retrying.
	// Zero: 10 s.
	SubscribeTimeout time.Duration
	// NoEmergencyConnection: take emergency signals only on the telemetry
	// connection (one connection to the broker instead of two).
	NoEmergencyConnection bool
	// KeepAlive is the MQTT keepalive: paho pings a connection that has
	// been quiet this long and reconnects when no PINGRESP comes within
	// 10 s. Zero: 30 s.
	KeepAlive time.Duration
}

// emergencySuffix names the emergency connection's session after the
// telemetry one's: <ClientID>-emergency.
const emergencySuffix = "-emergency"

// emergencyHeldBytes is the emergency connection's own byte budget.
const emergencyHeldBytes = 8 << 20

// sysTopics are the Mosquitto $SYS counters exported as ioc_broker_sys, so
// a broker that drops QoS 1 messages under overload shows it.
var sysTopics = []string{
	"$SYS/broker/publish/messages/dropped",
	"$SYS/broker/messages/received",
	"$SYS/broker/messages/sent",
	"$SYS/broker/store/messages/count",
	"$SYS/broker/clients/connected",
}

// Subscriber feeds an Ingester from an MQTT broker.
//
// It holds two connections, each with a persistent session of its own:
// the telemetry connection (ClientID, subscribed to <prefix>/#) and the
// emergency connection (ClientID-emergency, subscribed to
// <prefix>/emergency/# only), so a 115 call never waits behind thousands
// of readings in the broker's queue, the TCP stream or paho's router.
// The telemetry filter covers emergency topics too; those copies are
// acknowledged once their twin from the emergency connection has
// committed, and written themselves if it does not come (see twins).
//
// The session is persistent (clean session off, QoS 1) so the broker keeps
// messages while iocd is away. Acknowledgement is manual: the Ingester
// acknowledges a message only after its batch commits. Acknowledgements of
// messages received on a connection that has since dropped are discarded
// by paho; the broker redelivers those messages and the database's keys
// recognise them.
//
// paho's router calls onMessage for one message at a time (order
// matters): onMessage only takes its share of the held-bytes budget and
// hands the message to a bounded queue read by a few long-lived decoders.
// So nothing here grows with the broker's in-flight window: not
// goroutines (paho would otherwise start one per message), not bytes
// (MaxHeldBytes). When the budget or the queue is full, the router waits,
// paho stops reading the socket and TCP pushes back on the broker.
type Subscriber struct {
	cfg    MQTTConfig
	ing    *Ingester
	log    *slog.Logger
	client mqtt.Client
	ctx    context.Context
	filter string // the subscription: <prefix>/# or <prefix>/emergency/#
	cm     connMetrics
	// emergency is the emergency connection (nil on that connection
	// itself, and with NoEmergencyConnection); twins pairs the copies of
	// emergency signals the two connections receive.
	emergency *Subscriber
	twins     *twins
	isUrgent  bool // this is the emergency connection
	// work hands messages from paho's router to a few long-lived
	// decoders: decoding JSON on a fresh goroutine costs more in stack
	// growth than in parsing.
	work chan *heldMessage
	// conn is the broker connection paho reads from now (tcp:// and
	// ssl:// only, and not on a shared subscription; nil otherwise: acks
	// go through paho). paho dials the next one only after its
	// router has handed over every message of the previous one, so the
	// connection current in onMessage is the message's own.
	conn atomic.Pointer[bufferedConn]
	// pahoAckEvery: an acknowledgement goes through paho (m.Ack) when
	// paho has written nothing for this long, a quarter of the keepalive,
	// so that paho pings only an idle connection (bufferedConn.pahoQuiet).
	pahoAckEvery time.Duration
	// held counts payload bytes received and not yet acknowledged (its
	// value is the metric ioc_ingest_held_bytes); only onMessage adds to
	// it, so checking and adding need no lock. freed wakes onMessage when
	// it waits (waiting) and acknowledgements make room.
	held    *atomic.Int64
	waiting atomic.Bool
	freed   chan struct{}

	mu         sync.Mutex
	epoch      int   // connections so far; a subscribe loop serves one
	subscribed bool  // the telemetry subscription is granted on this connection
	subErr     error // why the latest subscription attempt failed
}

// connMetrics are one connection's series.
type connMetrics struct {
	connected, subscribed   prometheus.Gauge
	connects, subscribeErrs prometheus.Counter
}

// heldMessage is a message with its share of the byte budget.
type heldMessage struct {
	m        mqtt.Message
	n        int64
	s        *Subscriber
	released atomic.Bool
	acked    atomic.Bool
	// conn: the connection the message came on, which its PUBACK is
	// written to directly (nil: through paho, m.Ack).
	conn *bufferedConn
	// twin: the digest of an emergency connection's message, whose
	// telemetry copies are acknowledged once it has committed.
	twin *[32]byte
}

// ack acknowledges the message and returns its bytes to the budget.
func (h *heldMessage) ack() {
	// Once: a second PUBACK for an id could acknowledge a later message
	// the broker sent under the same id.
	if h.acked.CompareAndSwap(false, true) {
		if h.conn != nil && !h.conn.pahoQuiet(h.s.pahoAckEvery) {
			h.conn.puback(h.m.MessageID())
		} else {
			h.m.Ack()
		}
	}
	h.release()
	if h.twin != nil {
		for _, w := range h.s.twins.done(*h.twin, time.Now()) {
			w.ack()
			h.s.ing.m.Twins.WithLabelValues("acknowledged").Inc()
		}
	}
}

func (h *heldMessage) release() {
	if h.released.CompareAndSwap(false, true) {
		h.s.held.Add(-h.n)
		if h.s.waiting.Load() {
			select {
			case h.s.freed <- struct{}{}:
			default:
			}
		}
	}
}

// NewSubscriber prepares (does not connect) a subscriber: the telemetry
// connection and, unless cfg.NoEmergencyConnection, the emergency one.
func NewSubscriber(cfg MQTTConfig, ing *Ingester, log *slog.Logger) (*Subscriber, error) {
	if cfg.MaxHeldBytes <= 0 {
		cfg.MaxHeldBytes = 64 << 20
	}
	if cfg.SubscribeTimeout <= 0 {
		cfg.SubscribeTimeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	m := ing.m
	s, err := newConnection(cfg, ing, log, cfg.Prefix+"/#", &ing.heldBytes,
		connMetrics{m.Connected, m.Subscribed, m.Reconnects, m.SubscribeErrs})
	if err != nil || cfg.NoEmergencyConnection {
		return s, err
	}
	ecfg := cfg
	ecfg.ClientID += emergencySuffix
	ecfg.MaxHeldBytes = emergencyHeldBytes
	s.emergency, err = newConnection(ecfg, ing, log.With("connection", "emergency"), cfg.Prefix+"/emergency/#", new(atomic.Int64),
		connMetrics{m.EmergencyConnected, m.EmergencySubscribed, m.EmergencyConnects, m.EmergencySubscribeErrs})
	if err != nil {
		return nil, err
	}
	s.twins = newTwins()
	s.emergency.twins, s.emergency.isUrgent = s.twins, true
	return s, nil
}

// newConnection prepares one broker connection subscribed to filter.
func newConnection(cfg MQTTConfig, ing *Ingester, log *slog.Logger, filter string, held *atomic.Int64, cm connMetrics) (*Subscriber, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt url: %w", err)
	}
	s := &Subscriber{cfg: cfg, ing: ing, log: log, filter: filter, cm: cm,
		work: make(chan *heldMessage, 256), held: held, freed: make(chan struct{}, 1),
		pahoAckEvery: cfg.KeepAlive / 4}
	opts := mqtt.NewClientOptions()
	if u.User != nil {
		opts.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			opts.SetPassword(p)
		}
		u.User = nil
	}
	opts.AddBroker(u.String())
	opts.SetClientID(cfg.ClientID)
	opts.SetCleanSession(false)
	opts.SetOrderMatters(true) // one router goroutine; the fan-out is ours (see Subscriber)
	opts.SetAutoAckDisabled(true)
	opts.SetStore(noStore{}) // nothing to keep for a subscriber (store.go)
	opts.SetAutoReconnect(true)
	opts.SetConnectRetry(true)
	opts.SetConnectRetryInterval(time.Second)
	opts.SetMaxReconnectInterval(10 * time.Second)
	opts.SetKeepAlive(cfg.KeepAlive)
	opts.SetPingTimeout(10 * time.Second)
	opts.SetWriteTimeout(10 * time.Second)
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		// PUBACKs straight into the connection (bufferedConn.puback) for a
		// subscription of its own; on a shared one they still go through
		// paho: with direct acks TestSimulatorTruthAcrossSharedInstances
		// failed 2 of 4 full-suite runs on a busy machine (a jam's incident
		// not cleared), not understood yet (docs/ingest.md, fifth sitting).
		var opened func(*bufferedConn)
		if cfg.SharedGroup == "" {
			opened = s.conn.Store
		}
		opts.SetCustomOpenConnectionFn(openBufferedConnection(cfg.TLS, opened))
	}
	// The default handler matters: with a persistent session the broker
	// sends queued messages right after CONNACK, before Subscribe has
	// registered a route; without it paho would drop them unacknowledged.
	opts.SetDefaultPublishHandler(s.onMessage)
	opts.SetOnConnectHandler(s.onConnect)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		cm.connected.Set(0)
		s.setSubscribed(false, errors.New("connection lost"))
		log.Warn("mqtt: connection lost; reconnecting", "err", err)
	})
	s.client = mqtt.NewClient(opts)
	return s, nil
}

// Topic is the (telemetry) subscription filter.
func (s *Subscriber) Topic() string {
	t := s.filter
	if s.cfg.SharedGroup != "" {
		t = "$share/" + s.cfg.SharedGroup + "/" + t
	}
	return t
}

// Connected reports whether the broker connection is up and the broker
// granted the telemetry subscription (for /readyz).
func (s *Subscriber) Connected() bool {
	s.mu.Lock()
	sub := s.subscribed
	s.mu.Unlock()
	return sub && s.client.IsConnectionOpen()
}

// ErrNotConnected: the broker connection is down (Subscriber.Healthy).
var ErrNotConnected = errors.New("not connected to the broker")

// Healthy says why the subscriber is not receiving telemetry, or nil.
func (s *Subscriber) Healthy() error {
	if !s.client.IsConnectionOpen() {
		return ErrNotConnected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.subscribed {
		if s.subErr != nil {
			return fmt.Errorf("subscription to %s not granted: %w", s.Topic(), s.subErr)
		}
		return fmt.Errorf("subscribing to %s", s.Topic())
	}
	return nil
}

// EmergencyConnected reports whether the emergency connection is up and
// subscribed; while it is not, emergency signals come through the
// telemetry connection alone.
func (s *Subscriber) EmergencyConnected() bool {
	return s.emergency != nil && s.emergency.Connected()
}

func (s *Subscriber) setSubscribed(ok bool, err error) {
	s.mu.Lock()
	s.subscribed, s.subErr = ok, err
	s.mu.Unlock()
	if ok {
		s.cm.subscribed.Set(1)
	} else {
		s.cm.subscribed.Set(0)
	}
}

// Run connects, keeps the session until ctx ends, then disconnects.
// Messages buffered but not yet committed stay unacknowledged and are
// redelivered to the next session.
func (s *Subscriber) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var eerr error
	if s.emergency != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if eerr = s.emergency.Run(ctx); eerr != nil {
				cancel()
			}
		}()
		go func() {
			defer wg.Done()
			s.writeOverdueTwins(ctx)
		}()
	}
	decoders := 2 * runtime.GOMAXPROCS(0)
	if s.isUrgent {
		decoders = 2
	}
	err := s.run(ctx, decoders)
	cancel()
	wg.Wait()
	return errors.Join(err, eerr)
}

// run keeps this one connection until ctx ends.
func (s *Subscriber) run(ctx context.Context, decoders int) error {
	s.ctx = ctx
	var wg sync.WaitGroup
	defer wg.Wait()
	for range decoders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.decode(ctx)
		}()
	}
	tok := s.client.Connect() // retries in the background until connected
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt connect: %w", err)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	s.client.Disconnect(250)
	s.cm.connected.Set(0)
	s.setSubscribed(false, errors.New("stopped"))
	return nil
}

// writeOverdueTwins hands telemetry copies of emergency signals whose twin
// did not commit within twinWait (or all of them, while the emergency
// connection is not subscribed) to the decoders, to be written like any
// message. On shutdown the waiting copies stay unacknowledged.
func (s *Subscriber) writeOverdueTwins(ctx context.Context) {
	t := time.NewTicker(twinWait / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, h := range s.twins.overdue(time.Now(), true) {
				h.release()
			}
			return
		case <-t.C:
		}
		for _, h := range s.twins.overdue(time.Now(), !s.emergency.Connected()) {
			s.ing.m.Twins.WithLabelValues("written").Inc()
			select {
			case s.work <- h:
			case <-ctx.Done():
				h.release()
			}
		}
	}
}

func (s *Subscriber) onConnect(c mqtt.Client) {
	s.cm.connected.Set(1)
	s.cm.connects.Inc()
	s.mu.Lock()
	s.epoch++
	epoch := s.epoch
	s.subscribed, s.subErr = false, nil
	s.mu.Unlock()
	s.cm.subscribed.Set(0)
	s.log.Info("mqtt: connected; subscribing", "topic", s.Topic(), "client_id", s.cfg.ClientID)
	// Subscribe from a goroutine: paho calls this handler on its own
	// goroutine and waiting for the SUBACK here would block it.
	go s.subscribe(c, epoch)
}

// subscribe asks for the telemetry subscription until the broker grants
// it, with backoff, for as long as connection epoch lasts. A refusal
// (SUBACK 0x80: an ACL, a broker limit) or a timeout is counted, logged
// and reported by Healthy; it is not the end of the matter.
func (s *Subscriber) subscribe(c mqtt.Client, epoch int) {
	bo := db.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	current := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.epoch == epoch && s.ctx.Err() == nil
	}
	for current() {
		err := s.subscribeOnce(c)
		if err == nil {
			if !current() {
				return
			}
			s.setSubscribed(true, nil)
			s.log.Info("mqtt: subscribed", "topic", s.Topic())
			if s.isUrgent {
				return
			}
			filters := map[string]byte{}
			for _, t := range sysTopics {
				filters[t] = 0
			}
			c.SubscribeMultiple(filters, nil) // best effort: metrics only; onMessage routes $SYS
			return
		}
		s.cm.subscribeErrs.Inc()
		s.setSubscribed(false, err)
		delay := bo.Next()
		s.log.Error("mqtt: subscription not granted; retrying", "topic", s.Topic(), "in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Subscriber) subscribeOnce(c mqtt.Client) error {
	// No callback: every message goes to the default handler (onMessage).
	// A route per subscription would make paho split the topic and every
	// route's filter on each message, about 5 % of iocd's CPU at load.
	tok := c.Subscribe(s.Topic(), 1, nil)
	if !tok.WaitTimeout(s.cfg.SubscribeTimeout) {
		return fmt.Errorf("no SUBACK within %s", s.cfg.SubscribeTimeout)
	}
	if err := tok.Error(); err != nil {
		return err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		// One filter, one result; paho keys it by the filter without a
		// $share/<group>/ prefix, so it is not looked up by name.
		res := st.Result()
		if len(res) != 1 {
			return fmt.Errorf("SUBACK with %d results for one filter", len(res))
		}
		for _, q := range res {
			if q > 2 {
				return fmt.Errorf("refused by the broker (SUBACK 0x%02x)", q)
			}
		}
	}
	return nil
}

// onMessage runs on paho's router, one message at a time.
func (s *Subscriber) onMessage(_ mqtt.Client, m mqtt.Message) {
	if strings.HasPrefix(m.Topic(), "$SYS/") {
		s.onSys(nil, m)
		return
	}
	// Blocks while the byte budget is used up, every decoder is busy and
	// the queue is full (or ingest's buffer is full): the message stays
	// unacknowledged, which is the back-pressure. After shutdown the
	// message is left unacknowledged; the broker keeps it for the next
	// session. (Run sets s.ctx before connecting.)
	h := &heldMessage{m: m, n: int64(len(m.Payload())) + 256, s: s} // 256: the message's own structures
	if m.Qos() == 1 {
		h.conn = s.conn.Load() // QoS 0 needs no PUBACK; QoS 2 is not subscribed
	}
	if !s.reserve(h.n) {
		return
	}
	if s.isUrgent {
		d := twinDigest(m.Topic(), m.Payload())
		h.twin = &d
	} else if s.emergency != nil && s.isEmergencyTopic(m.Topic()) && s.emergency.Connected() {
		// The emergency connection has (or will have) this message too.
		if s.twins.arrived(twinDigest(m.Topic(), m.Payload()), h, time.Now()) {
			h.ack()
			s.ing.m.Twins.WithLabelValues("acknowledged").Inc()
		}
		return
	}
	select {
	case s.work <- h:
	case <-s.ctx.Done():
		h.release()
	}
}

// isEmergencyTopic: <prefix>/emergency/...
func (s *Subscriber) isEmergencyTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, s.cfg.Prefix)
	return ok && strings.HasPrefix(rest, "/emergency/")
}

// reserve waits until n more bytes fit the budget (or nothing is held:
// one message always fits) and takes them; false when shutting down.
// Only onMessage calls it, one message at a time.
func (s *Subscriber) reserve(n int64) bool {
	for {
		if used := s.held.Load(); used == 0 || used+n <= s.cfg.MaxHeldBytes {
			s.held.Add(n)
			return true
		}
		s.waiting.Store(true)
		// Looked again after announcing the wait: a release in between
		// would otherwise not wake us.
		if used := s.held.Load(); used == 0 || used+n <= s.cfg.MaxHeldBytes {
			s.waiting.Store(false)
			continue
		}
		select {
		case <-s.freed:
		case <-s.ctx.Done():
			s.waiting.Store(false)
			return false
		}
		s.waiting.Store(false)
	}
}

func (s *Subscriber) decode(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-s.work:
			if err := s.ing.Submit(ctx, h.m.Topic(), h.m.Payload(), h.m.Duplicate(), h.ack); err != nil {
				// Shutting down: the message stays unacknowledged.
				h.release()
			}
		}
	}
}

func (s *Subscriber) onSys(_ mqtt.Client, m mqtt.Message) {
	m.Ack()
	v, err := strconv.ParseFloat(strings.TrimSpace(string(m.Payload())), 64)
	if err != nil {
		return
	}
	s.ing.m.BrokerSys.WithLabelValues(strings.TrimPrefix(m.Topic(), "$SYS/broker/")).Set(v)
}
