package streams

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ioc/ingest"
)

// The hand-written encoders give what json.Marshal gives.
func TestDeviceStateJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	vol := int64(17)
	seen := time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)
	cases := []deviceState{
		{ID: "S-1", Online: true, LastSeen: seen, LastTS: seen.Add(-time.Second)},
		{ID: "tfc-00619-025", Kind: "traffic", Location: &pointJSON{"Point", [2]float64{105.753473, 21.052629}},
			Ward: &wardJSON{Code: "00004", Name: `Phường "Ba Đình"` + "\u2028<&>"}, Online: true, LastSeen: seen,
			LastTS: seen.In(time.FixedZone("ICT", 7*3600)), SpeedKmh: f(42.7), Volume: &vol, Occupancy: f(0.034)},
		{ID: "cam.7", Kind: "camera", Event: "fire", Online: false, LastSeen: seen, LastTS: seen,
			Location: &pointJSON{"Point", [2]float64{1e-7, -1e21}}, SpeedKmh: f(0), Occupancy: f(1e20), Volume: new(int64)},
		{ID: "cc115", Kind: "emergency", Type: "medical", LastSeen: seen, LastTS: seen, SpeedKmh: f(math.SmallestNonzeroFloat64), Occupancy: f(123456789.125)},
	}
	for _, d := range cases {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}

// observe keeps the latest observation per device; take encodes each
// once, as the device's frame object, and empties the pending set.
func TestLiveCoalescesBeforeEncoding(t *testing.T) {
	l := newLive(nil, nil, nil, Config{WardName: func(code string) string { return "P" + code }})
	ts := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	obs := []*ingest.Observation{
		{Kind: ingest.KindTraffic, DeviceID: "S-1", TS: ts, HasPos: true, Lon: 105.8, Lat: 21.0, Ward: "00004", HasSpeed: true, SpeedKmh: 30, Volume: 3},
		{Kind: ingest.KindCamera, DeviceID: "C-1", TS: ts, Event: "fire"},
		{Kind: ingest.KindTraffic, DeviceID: "S-1", TS: ts.Add(time.Second), HasPos: true, Lon: 105.9, Lat: 21.1, Ward: "00007", Volume: 5, Occupancy: 0.25},
		{Kind: ingest.KindStatus, DeviceID: "C-2", TS: ts, Online: false},
	}
	l.observe(obs[:2])
	l.observe(obs[2:])
	got := map[string]Update{}
	for _, u := range l.take() {
		got[u.ID] = u
	}
	if len(got) != 3 {
		t.Fatalf("take: %d updates %v, want 3 (S-1 coalesced)", len(got), got)
	}
	s := got["S-1"]
	var seen struct {
		LastSeen time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal(s.Body, &seen); err != nil {
		t.Fatal(err)
	}
	vol, occ := int64(5), 0.25
	want, _ := json.Marshal(deviceState{ID: "S-1", Kind: "traffic", Location: &pointJSON{"Point", [2]float64{105.9, 21.1}},
		Ward: &wardJSON{"00007", "P00007"}, Online: true, LastSeen: seen.LastSeen, LastTS: ts.Add(time.Second), Volume: &vol, Occupancy: &occ})
	if string(s.Body) != string(want) || s.Layer != "device" || s.Ward != "00007" || s.Lon != 105.9 || s.Lat != 21.1 {
		t.Errorf("S-1: %+v body %s\nwant body %s", s, s.Body, want)
	}
	if b := string(got["C-2"].Body); !strings.Contains(b, `"online":false`) || strings.Contains(b, `"kind"`) {
		t.Errorf("status C-2: %s", b)
	}
	if b := string(got["C-1"].Body); !strings.Contains(b, `"event":"fire"`) {
		t.Errorf("camera C-1: %s", b)
	}
	if u := l.take(); len(u) != 0 {
		t.Errorf("second take: %v, want nothing", u)
	}
}

// With the in-process broker and no client on the device or unit layers,
// a flush is dropped, not encoded; once someone listens, updates flow.
func TestLiveDropsUpdatesNoOneWants(t *testing.T) {
	got := make(chan []Update, 16)
	l := newLive(NewMemoryBroker(), func(b []Update) { got <- b }, nil, Config{})
	var wanted atomic.Bool
	l.wanted = wanted.Load
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.run(ctx)
	ts := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	l.observe([]*ingest.Observation{{Kind: ingest.KindTraffic, DeviceID: "S-1", TS: ts}})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the update nobody wants was not dropped")
		}
	}
	select {
	case b := <-got:
		t.Fatalf("delivered %v with nobody listening", b)
	case <-time.After(3 * liveFlush):
	}
	wanted.Store(true)
	l.observe([]*ingest.Observation{{Kind: ingest.KindTraffic, DeviceID: "S-2", TS: ts}})
	select {
	case b := <-got:
		if len(b) != 1 || b[0].ID != "S-2" {
			t.Fatalf("delivered %v, want S-2 alone (S-1 was dropped)", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update delivered once a client listens")
	}
}
