package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"ioc/db"
)

// redisChannel carries the batches between instances.
const redisChannel = "ioc:streams:live"

// RedisBroker fans updates out through Redis pub/sub. Updates are latest
// values, so pub/sub's at-most-once delivery fits: a lost batch is healed
// by the next update of the same device (incident events, which must not
// be lost, go through PostgreSQL instead).
type RedisBroker struct {
	rdb *redis.Client
	log *slog.Logger
	up  atomic.Bool
}

// NewRedisBroker uses rdb.
func NewRedisBroker(rdb *redis.Client, log *slog.Logger) *RedisBroker {
	return &RedisBroker{rdb: rdb, log: log}
}

// Publish sends the batch as one message.
func (b *RedisBroker) Publish(ctx context.Context, batch []Update) error {
	raw, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := b.rdb.Publish(ctx, redisChannel, raw).Err(); err != nil {
		b.up.Store(false)
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

// Healthy is nil while the subscription is up.
func (b *RedisBroker) Healthy() error {
	if !b.up.Load() {
		return errors.New("redis subscription down")
	}
	return nil
}

// Run subscribes, delivering every batch, and resubscribes with backoff
// after Redis is lost, until ctx ends.
func (b *RedisBroker) Run(ctx context.Context, deliver func([]Update)) {
	bo := db.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		err := b.follow(ctx, deliver, &bo)
		b.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("streams: redis subscription lost; retrying", "err", err)
		if bo.Wait(ctx) != nil {
			return
		}
	}
}

func (b *RedisBroker) follow(ctx context.Context, deliver func([]Update), bo *db.Backoff) error {
	ps := b.rdb.Subscribe(ctx, redisChannel)
	defer ps.Close()
	for {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet: prove the connection is alive.
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			b.up.Store(true)
			bo.Reset()
		case *redis.Message:
			var batch []Update
			if err := json.Unmarshal([]byte(m.Payload), &batch); err != nil {
				b.log.Warn("streams: bad batch on redis", "err", err)
				continue
			}
			deliver(batch)
		}
	}
}
