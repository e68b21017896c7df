package db

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the one retry delay of the project: Min doubling to Max, with
// ±25 % jitter so instances that lost a service together do not return in
// lockstep. The zero value backs off from 100 ms to 5 s. Not safe for
// concurrent use: each retry loop has its own.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next is the delay before the next attempt; each call doubles it.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 5 * time.Second
	}
	d := lo << min(b.attempt, 30)
	if d <= 0 || d > hi {
		d = hi
	}
	b.attempt++
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// Reset starts again from Min, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for Next, or returns ctx's error when it ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delay is the jittered delay of the given attempt (0 first), for loops
// that keep their own count.
func Delay(attempt int, lo, hi time.Duration) time.Duration {
	b := Backoff{Min: lo, Max: hi, attempt: attempt}
	return b.Next()
}
