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
