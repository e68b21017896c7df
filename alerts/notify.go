package alerts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db"
)

// Notifier drains the outbox (alert_outbox) to a webhook: each row is
// POSTed as JSON; a 2xx marks it sent; anything else is retried with
// exponential backoff and jitter, and after MaxAttempts the row is left
// in the dead-letter state for an operator. A row is claimed with a lease
// (next_at pushed forward) in a short transaction, so no lock is held
// across the HTTP call and several instances can drain together.
type Notifier struct {
	pool        *pgxpool.Pool
	log         *slog.Logger
	now         func() time.Time
	url         func() string
	maxAttempts func() int
	client      *http.Client
	// Backoff is the first retry delay (doubling to MaxBackoff).
	Backoff, MaxBackoff time.Duration
	Poll                time.Duration
	lease               time.Duration
}

func newNotifier(pool *pgxpool.Pool, log *slog.Logger, now func() time.Time, url func() string, maxAttempts func() int) *Notifier {
	return &Notifier{pool: pool, log: log, now: now, url: url, maxAttempts: maxAttempts,
		client:  &http.Client{Timeout: 10 * time.Second},
		Backoff: time.Second, MaxBackoff: 5 * time.Minute, Poll: 500 * time.Millisecond, lease: 30 * time.Second}
}

// Run drains until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	t := time.NewTicker(n.Poll)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n.url() == "" {
			if !warned {
				n.log.Warn("notifications: no webhook URL (rules notify.webhook_url or IOC_WEBHOOK_URL); the outbox keeps them")
				warned = true
			}
			continue
		}
		for {
			k, err := n.DrainOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					metricWriteErrors.WithLabelValues("outbox").Inc()
					n.log.Warn("notifications: outbox", "err", err)
				}
				break
			}
			if k == 0 {
				break
			}
		}
	}
}

type outboxRow struct {
	id       int64
	payload  []byte
	attempts int
}

// DrainOnce claims up to 20 due notifications and delivers them; it
// returns how many it tried.
func (n *Notifier) DrainOnce(ctx context.Context) (int, error) {
	url := n.url()
	if url == "" {
		return 0, nil
	}
	now := n.now()
	rows, err := n.pool.Query(ctx, `UPDATE alert_outbox SET attempts = attempts + 1, next_at = $2
		WHERE id IN (SELECT id FROM alert_outbox WHERE state = 'pending' AND next_at <= $1 ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED)
		RETURNING id, payload, attempts`, now, now.Add(n.lease))
	if err != nil {
		return 0, fmt.Errorf("claim notifications: %w", err)
	}
	var batch []outboxRow
	var r outboxRow
	if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.payload, &r.attempts}, func() error {
		batch = append(batch, outboxRow{r.id, append([]byte(nil), r.payload...), r.attempts})
		return nil
	}); err != nil {
		return 0, fmt.Errorf("claim notifications: %w", err)
	}
	max := n.maxAttempts()
	if max <= 0 {
		max = 12
	}
	for _, r := range batch {
		derr := n.post(ctx, url, r)
		if ctx.Err() != nil {
			return len(batch), ctx.Err() // the lease expires and another try follows
		}
		var q string
		args := []any{r.id, n.now()}
		switch {
		case derr == nil:
			q = `UPDATE alert_outbox SET state = 'sent', sent_at = $2, last_error = NULL WHERE id = $1`
			metricNotify.WithLabelValues("sent").Inc()
		case r.attempts >= max:
			q = `UPDATE alert_outbox SET state = 'dead', next_at = $2, last_error = $3 WHERE id = $1`
			args = append(args, derr.Error())
			metricNotify.WithLabelValues("dead").Inc()
			n.log.Error("notification dead-lettered", "id", r.id, "attempts", r.attempts, "err", derr)
		default:
			d := db.Delay(r.attempts-1, n.Backoff, n.MaxBackoff)
			q = `UPDATE alert_outbox SET next_at = $2::timestamptz + $4::interval, last_error = $3 WHERE id = $1`
			args = append(args, derr.Error(), d)
			metricNotify.WithLabelValues("retry").Inc()
		}
		if _, err := n.pool.Exec(ctx, q, args...); err != nil {
			return len(batch), fmt.Errorf("record notification %d: %w", r.id, err)
		}
	}
	return len(batch), nil
}

func (n *Notifier) post(ctx context.Context, url string, r outboxRow) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("ioc-notification-%d", r.id))
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
