package alerts

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"ioc/db"
	"ioc/ingest"
)

// Several instances sharing one MQTT subscription ($share/...) each
// receive a part of every device's readings, so no instance alone could
// hold a device's window. With Config.Redis set, the windows have one
// home instead:
//
//   - every instance forwards the observations it committed to a Redis
//     stream (one entry per ingest batch), instead of evaluating them;
//   - one instance, the leader (it holds a PostgreSQL advisory lock on a
//     connection of its own), evaluates the stream with every rule, after
//     replaying the recent observations from the tables as at a start;
//   - when the leader goes, the lock is released with its connection and
//     another instance takes over the same way.
//
// Emergency signals do not wait for the stream: each instance opens their
// incidents in ingest's transaction (InTx). What the stream loses (Redis
// down, entries trimmed before the leader read them) the replay of a new
// leader recovers, as the replay at a start does for one instance.

// leaderLock is the advisory lock key of the evaluating instance ("iocleadr").
const leaderLock = 0x696f636c65616472

// streamKey is the Redis stream of committed observations, one per
// database: deployments (and tests) sharing a Redis never mix, as the
// leader lock, an advisory lock, is per database too.
func (e *Engine) streamKey() string {
	return "ioc:alerts:observations:" + e.pool.Config().ConnConfig.Database
}

// sharedStreamLen bounds the stream (approximately), in batches: minutes
// of a busy city, more than a leader change needs.
const sharedStreamLen = 100000

// forwardLoop sends the observations ingest committed here to the stream.
// A batch Redis refuses is retried while it carries an emergency signal
// that was not settled in ingest's transaction, else dropped and counted
// (the next leader's replay recovers it).
func (e *Engine) forwardLoop(ctx context.Context) error {
	for {
		obs := e.next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// Take what else is waiting: one entry for several batches.
		for more := true; more && len(obs) < 5000; {
			select {
			case o := <-e.urgent:
				obs = append(obs, o...)
			case o := <-e.queue:
				obs = append(obs, o...)
			default:
				more = false
			}
		}
		e.queueDepth()
		backoff := db.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
		for {
			err := e.forward(ctx, obs)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			metricWriteErrors.WithLabelValues("forward").Inc()
			if !hasUnsettledEmergency(obs) {
				e.log.Warn("alert engine: forwarding observations failed; dropped (a new leader's replay recovers them)", "observations", len(obs), "err", err)
				metricDropped.Add(float64(len(obs)))
				break
			}
			e.log.Warn("alert engine: forwarding an emergency signal failed; retrying", "err", err)
			if backoff.Wait(ctx) != nil {
				return nil
			}
		}
	}
}

// forward appends one batch to the stream, gob-encoded.
func (e *Engine) forward(ctx context.Context, obs []*ingest.Observation) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(obs); err != nil {
		return fmt.Errorf("encode observations: %w", err)
	}
	return e.cfg.Redis.XAdd(ctx, &redis.XAddArgs{Stream: e.streamKey(), MaxLen: sharedStreamLen, Approx: true,
		Values: []any{"obs", buf.Bytes()}}).Err()
}

// leadLoop campaigns for the leader lock and, while it holds it,
// evaluates the stream. It returns only when ctx ends.
func (e *Engine) leadLoop(ctx context.Context) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy()); err != nil {
				conn = nil
				if ctx.Err() == nil {
					e.log.Warn("alert engine: no connection to campaign for the leader lock", "err", err)
				}
			}
		}
		if conn != nil {
			if err := e.lead(ctx, conn); err != nil && ctx.Err() == nil {
				metricWriteErrors.WithLabelValues("lead").Inc()
				e.log.Warn("alert engine: leading the evaluation failed", "err", err)
				conn.Close(context.WithoutCancel(ctx)) // releases the lock, if held
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.cfg.LeaderPoll/2 + time.Duration(rand.Int64N(int64(e.cfg.LeaderPoll)))):
		}
	}
}

// lead takes the leader lock on conn if it is free and evaluates until
// conn fails or ctx ends; the lock is held as long as conn lives.
func (e *Engine) lead(ctx context.Context, conn *pgx.Conn) error {
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(leaderLock)).Scan(&got); err != nil || !got {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(leaderLock))
	e.log.Info("alert engine: this instance evaluates the shared observation stream")
	e.leading.Store(true)
	defer e.leading.Store(false)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.evaluate(lctx, e.streamSource()) }()
	t := time.NewTicker(e.cfg.LeaderPoll)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if _, err := conn.Exec(ctx, `SELECT 1`); err != nil {
				cancel()
				<-done
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("lost the leader connection; evaluation stops here: %w", err)
			}
		}
	}
}

// streamSource reads the stream from the entry before the replay, so
// nothing committed between the replay's read and the first entry read
// is missed (what both see adds nothing twice: evidence is keyed by
// observation, windows ignore readings older than a device's latest).
func (e *Engine) streamSource() source {
	after := ""
	return source{
		start: func(ctx context.Context) error {
			ids, err := e.cfg.Redis.XRevRangeN(ctx, e.streamKey(), "+", "-", 1).Result()
			if err != nil {
				return fmt.Errorf("observation stream: %w", err)
			}
			after = "0-0"
			if len(ids) > 0 {
				after = ids[0].ID
			}
			return nil
		},
		next: func(ctx context.Context) ([]*ingest.Observation, error) {
			res, err := e.cfg.Redis.XRead(ctx, &redis.XReadArgs{Streams: []string{e.streamKey(), after}, Count: 100, Block: time.Second}).Result()
			if errors.Is(err, redis.Nil) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("observation stream: %w", err)
			}
			var all []*ingest.Observation
			for _, s := range res {
				for _, m := range s.Messages {
					after = m.ID
					raw, _ := m.Values["obs"].(string)
					var obs []*ingest.Observation
					if err := gob.NewDecoder(bytes.NewReader([]byte(raw))).Decode(&obs); err != nil {
						metricWriteErrors.WithLabelValues("stream_decode").Inc()
						e.log.Error("alert engine: undecodable stream entry skipped", "id", m.ID, "err", err)
						continue
					}
					all = append(all, obs...)
				}
			}
			return all, nil
		},
	}
}
