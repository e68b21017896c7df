package ingest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// An emergency signal passes a bulk queue that is full and blocked: it
// waits neither for the thousands of readings ahead of it nor for a bulk
// writer.
func TestEmergencySkipsTheBulkQueue(t *testing.T) {
	g, err := New(Config{BatchSize: 10, Buffer: 100, Writers: 1, Registerer: prometheus.NewRegistry()}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		g.in <- &envelope{obs: []Observation{{Kind: KindTraffic}}}
	}
	out, urgent := make(chan []*envelope), make(chan []*envelope) // nobody takes bulk batches
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.batch(ctx, out, urgent); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // the batcher holds a full bulk batch and waits for a writer
	call := &envelope{obs: []Observation{{Kind: KindEmergency}}}
	g.urgentIn <- call
	select {
	case b := <-urgent:
		if len(b) != 1 || b[0] != call {
			t.Fatalf("urgent batch %v, want the call alone", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call is stuck behind the bulk queue")
	}
	if len(g.in) < 100-10-1 {
		t.Fatalf("the batcher took %d readings past a full batch", 100-len(g.in))
	}
}

// With BatchWait, a bulk batch waits that long after its first message
// for company, each batch its own full wait (the batcher's one timer is
// re-armed, and an earlier batch's deadline does not cut a later one
// short), while an emergency signal goes at once.
func TestBatchLingers(t *testing.T) {
	const wait = 60 * time.Millisecond
	g, out, urgent := startBatcher(t, Config{BatchSize: 100, BatchWait: wait, Buffer: 100, Writers: 1})
	take := func(c chan []*envelope) ([]*envelope, time.Time) {
		t.Helper()
		select {
		case b := <-c:
			return b, time.Now()
		case <-time.After(5 * time.Second):
			t.Fatal("no batch")
			return nil, time.Time{}
		}
	}
	reading := func() *envelope { return &envelope{obs: []Observation{{Kind: KindTraffic}}} }

	for round := range 3 {
		start := time.Now()
		g.in <- reading()
		time.Sleep(wait / 4)
		g.in <- reading()
		if round == 1 {
			g.urgentIn <- &envelope{obs: []Observation{{Kind: KindEmergency}}}
			if _, at := take(urgent); at.Sub(start) >= wait {
				t.Errorf("round %d: the emergency signal waited %v, the bulk linger", round, at.Sub(start))
			}
		}
		b, at := take(out)
		if len(b) != 2 {
			t.Errorf("round %d: batch of %d, want the 2 readings together", round, len(b))
		}
		if d := at.Sub(start); d < wait {
			t.Errorf("round %d: batch went after %v, before its linger of %v", round, d, wait)
		}
		g.busy.Add(-1)       // as writeLoop, done with it
		time.Sleep(wait / 2) // the next batch starts while nothing is pending
	}
}

// A batch that lingers is not read message by message: what arrives waits
// on the queue, and the batch goes as soon as it could be full (Submit
// nudges the batcher), not at the end of a long linger.
func TestBatchFullCutsTheLinger(t *testing.T) {
	g, out, _ := startBatcher(t, Config{BatchSize: 10, BatchWait: time.Hour, Buffer: 100, Writers: 1})
	enqueue(t, g, 1)
	growUnread(t, g, 9, "the batcher to take the first reading and wait for 9 more")
	if b := takeBatch(t, out); len(b) != 10 {
		t.Fatalf("batch of %d, want the full 10", len(b))
	}
}

// While the only writer is busy, a batch grows without being read message
// by message, and goes to another writer once it holds a share (a
// quarter of BatchSize).
func TestBatchShareGoesWhileWritersAreBusy(t *testing.T) {
	g, out, _ := startBatcher(t, Config{BatchSize: 40, Buffer: 100, Writers: 2})
	enqueue(t, g, 1)
	if b := takeBatch(t, out); len(b) != 1 { // no writer busy: at once
		t.Fatalf("first batch of %d, want 1", len(b))
	}
	// That writer is busy now (busy 1). The next reading starts a batch
	// that waits for it or for a share of 10.
	enqueue(t, g, 1)
	growUnread(t, g, 9, "the batcher to wait for a share")
	if b := takeBatch(t, out); len(b) != 10 {
		t.Fatalf("batch of %d, want a share of 10", len(b))
	}
	// Both writers busy; once they are free, what waits goes without a share.
	enqueue(t, g, 1)
	waitFor(t, "the batcher to take the reading", func() bool { return len(g.in) == 0 })
	g.busy.Add(-2)
	g.freed <- struct{}{}
	if b := takeBatch(t, out); len(b) != 1 {
		t.Fatalf("batch of %d after the writers were freed, want 1", len(b))
	}
}

// startBatcher runs the batcher of an ingester made from cfg until the
// test ends, and returns the ingester and the channels of bulk and urgent
// batches.
func startBatcher(t *testing.T, cfg Config) (g *Ingester, out, urgent chan []*envelope) {
	t.Helper()
	cfg.Registerer = prometheus.NewRegistry()
	g, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	out, urgent = make(chan []*envelope), make(chan []*envelope)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.batch(ctx, out, urgent); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return g, out, urgent
}

// enqueue queues n traffic readings as Submit does.
func enqueue(t *testing.T, g *Ingester, n int) {
	t.Helper()
	for range n {
		if err := g.enqueue(context.Background(), &envelope{obs: []Observation{{Kind: KindTraffic}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// growUnread waits until the batcher, holding a begun batch, waits for
// room more readings, queues room-1 and checks that they stay on the
// queue (not taken one by one), then queues the last.
func growUnread(t *testing.T, g *Ingester, room int, what string) {
	t.Helper()
	waitFor(t, what, func() bool { return len(g.in) == 0 && g.room.Load() == int64(room) })
	enqueue(t, g, room-1)
	time.Sleep(20 * time.Millisecond)
	if n := len(g.in); n != room-1 {
		t.Fatalf("%d readings on the queue, want the %d left for the batch to take at once", n, room-1)
	}
	enqueue(t, g, 1)
}

func takeBatch(t *testing.T, out chan []*envelope) []*envelope {
	t.Helper()
	select {
	case b := <-out:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no batch")
		return nil
	}
}
