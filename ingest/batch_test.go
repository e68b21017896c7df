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
	g, err := New(Config{BatchSize: 100, BatchWait: wait, Buffer: 100, Writers: 1, Registerer: prometheus.NewRegistry()}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	out, urgent := make(chan []*envelope), make(chan []*envelope)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.batch(ctx, out, urgent); close(done) }()
	defer func() { cancel(); <-done }()
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
