package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTTConfig says where and how to subscribe.
type MQTTConfig struct {
	URL         string // tcp://user:pass@host:1883 or ssl://...
	ClientID    string // stable: names the persistent session
	Prefix      string
	SharedGroup string      // non-empty: $share/<group>/<prefix>/#
	TLS         *tls.Config // for ssl:// brokers
}

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
// The session is persistent (clean session off, QoS 1) so the broker keeps
// messages while iocd is away. Order does not matter (each message is
// handled on its own goroutine, never blocking paho's router), and
// acknowledgement is manual: the Ingester acknowledges a message only
// after its batch commits. Acknowledgements of messages received on a
// connection that has since dropped are discarded by paho; the broker
// redelivers those messages and the database's keys recognise them.
type Subscriber struct {
	cfg    MQTTConfig
	ing    *Ingester
	log    *slog.Logger
	client mqtt.Client
	ctx    context.Context
	// work hands messages from paho's per-message goroutines to a few
	// long-lived decoders: decoding JSON on a fresh goroutine costs more
	// in stack growth than in parsing.
	work chan mqtt.Message
}

// NewSubscriber prepares (does not connect) a subscriber.
func NewSubscriber(cfg MQTTConfig, ing *Ingester, log *slog.Logger) (*Subscriber, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt url: %w", err)
	}
	s := &Subscriber{cfg: cfg, ing: ing, log: log, work: make(chan mqtt.Message)}
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
	opts.SetOrderMatters(false)
	opts.SetAutoAckDisabled(true)
	opts.SetAutoReconnect(true)
	opts.SetConnectRetry(true)
	opts.SetConnectRetryInterval(time.Second)
	opts.SetMaxReconnectInterval(10 * time.Second)
	opts.SetKeepAlive(30 * time.Second)
	opts.SetPingTimeout(10 * time.Second)
	opts.SetWriteTimeout(10 * time.Second)
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		opts.SetCustomOpenConnectionFn(openBufferedConnection(cfg.TLS))
	}
	// The default handler matters: with a persistent session the broker
	// sends queued messages right after CONNACK, before Subscribe has
	// registered a route; without it paho would drop them unacknowledged.
	opts.SetDefaultPublishHandler(s.onMessage)
	opts.SetOnConnectHandler(s.onConnect)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		ing.m.Connected.Set(0)
		log.Warn("mqtt: connection lost; reconnecting", "err", err)
	})
	s.client = mqtt.NewClient(opts)
	return s, nil
}

// Topic is the subscription filter.
func (s *Subscriber) Topic() string {
	t := s.cfg.Prefix + "/#"
	if s.cfg.SharedGroup != "" {
		t = "$share/" + s.cfg.SharedGroup + "/" + t
	}
	return t
}

// Connected reports whether the broker connection is up (for /readyz).
func (s *Subscriber) Connected() bool { return s.client.IsConnectionOpen() }

// Run connects, keeps the session until ctx ends, then disconnects.
// Messages buffered but not yet committed stay unacknowledged and are
// redelivered to the next session.
func (s *Subscriber) Run(ctx context.Context) error {
	s.ctx = ctx
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 2 * runtime.GOMAXPROCS(0) {
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
	s.ing.m.Connected.Set(0)
	return nil
}

func (s *Subscriber) onConnect(c mqtt.Client) {
	s.ing.m.Connected.Set(1)
	s.ing.m.Reconnects.Inc()
	s.log.Info("mqtt: connected; subscribing", "topic", s.Topic(), "client_id", s.cfg.ClientID)
	// Subscribe from a goroutine: paho calls this handler on its own
	// goroutine and waiting for the SUBACK here would block it.
	go func() {
		tok := c.Subscribe(s.Topic(), 1, s.onMessage)
		if tok.WaitTimeout(30*time.Second) && tok.Error() != nil {
			s.log.Error("mqtt: subscribe failed", "topic", s.Topic(), "err", tok.Error())
		}
		filters := map[string]byte{}
		for _, t := range sysTopics {
			filters[t] = 0
		}
		c.SubscribeMultiple(filters, s.onSys)
	}()
}

func (s *Subscriber) onMessage(_ mqtt.Client, m mqtt.Message) {
	if strings.HasPrefix(m.Topic(), "$SYS/") {
		s.onSys(nil, m)
		return
	}
	// Blocks while every decoder is busy (or ingest's buffer is full):
	// the message stays unacknowledged, which is the back-pressure.
	// After shutdown the message is left unacknowledged; the broker keeps
	// it for the next session. (Run sets s.ctx before connecting.)
	select {
	case s.work <- m:
	case <-s.ctx.Done():
	}
}

func (s *Subscriber) decode(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.work:
			// On error (shutting down) the message stays unacknowledged.
			_ = s.ing.Submit(ctx, m.Topic(), m.Payload(), m.Duplicate(), m.Ack)
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
