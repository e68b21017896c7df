package ingest

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing t after 20 s.
var WaitFor = waitFor

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BadCases exposes the decoder's hostile corpus to the integration tests.
var BadCases = badCases

// TestNow is the fixed clock of the corpus's time-relative cases.
var TestNow = testNow

// PingsSent is how many PINGREQs paho wrote on s's current telemetry
// connection (-1: it has none of its own, e.g. a shared subscription).
func PingsSent(s *Subscriber) int64 {
	c := s.conn.Load()
	if c == nil {
		return -1
	}
	return c.pings.Load()
}
