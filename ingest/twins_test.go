package ingest

import (
	"testing"
	"time"
)

func TestTwinsAckAfterCommitOnly(t *testing.T) {
	tw := newTwins()
	now := time.Unix(1000, 0)
	a, b := twinDigest("city/emergency/S1", []byte(`{"id":"a"}`)), twinDigest("city/emergency/S1", []byte(`{"id":"b"}`))
	ha, hb := &heldMessage{}, &heldMessage{}
	if tw.arrived(a, ha, now) {
		t.Fatal("a telemetry copy was acknowledged before its twin committed")
	}
	if got := tw.done(b, now); len(got) != 0 {
		t.Fatalf("b's commit released %d copies of another message", len(got))
	}
	if got := tw.done(a, now); len(got) != 1 || got[0] != ha {
		t.Fatalf("a's commit released %v, want a's waiting copy", got)
	}
	if !tw.arrived(b, hb, now.Add(time.Second)) {
		t.Fatal("a copy arriving after its twin committed was not acknowledged at once")
	}
	if got := tw.overdue(now.Add(time.Hour), true); len(got) != 0 {
		t.Fatalf("%d copies still waiting, want none", len(got))
	}
}

func TestTwinsOverdueAreWritten(t *testing.T) {
	tw := newTwins()
	now := time.Unix(1000, 0)
	h1, h2 := &heldMessage{}, &heldMessage{}
	tw.arrived(twinDigest("t", []byte("1")), h1, now)
	tw.arrived(twinDigest("t", []byte("2")), h2, now.Add(twinWait/2))
	if got := tw.overdue(now.Add(twinWait/2), false); len(got) != 0 {
		t.Fatalf("%d copies overdue before twinWait", len(got))
	}
	if got := tw.overdue(now.Add(twinWait), false); len(got) != 1 || got[0] != h1 {
		t.Fatalf("overdue after twinWait: %v, want the first copy", got)
	}
	if got := tw.overdue(now.Add(twinWait), true); len(got) != 1 || got[0] != h2 {
		t.Fatalf("all overdue (emergency connection down): %v, want the second copy", got)
	}
}

func TestTwinsForgetOldAndBeyondMax(t *testing.T) {
	tw := newTwins()
	tw.max = 2
	now := time.Unix(1000, 0)
	d := func(s string) [32]byte { return twinDigest("t", []byte(s)) }
	tw.done(d("old"), now)
	tw.done(d("x"), now.Add(twinKeep))
	tw.done(d("y"), now.Add(twinKeep+time.Second)) // "old" is past twinKeep
	if _, ok := tw.committed[d("old")]; ok {
		t.Error("a digest older than twinKeep is remembered")
	}
	tw.done(d("z"), now.Add(twinKeep+time.Second)) // beyond max: x goes
	if _, ok := tw.committed[d("x")]; ok || len(tw.committed) != 2 || len(tw.order) != 2 {
		t.Errorf("kept %d digests (%d in order), want the 2 newest", len(tw.committed), len(tw.order))
	}
	// A forgotten digest only costs a write: the copy waits.
	if tw.arrived(d("x"), &heldMessage{}, now.Add(twinKeep+time.Second)) {
		t.Error("a forgotten digest acknowledged a copy")
	}
}
