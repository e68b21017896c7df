package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"ioc/db/dbtest"
	"ioc/deploy/brokertest"
)

// A client that subscribes with "batch": true gets each round of device
// and unit updates as one "updates" frame; a client without it gets the
// contract's one frame per device or unit. All see the same objects.
func TestStreamsBatchedUpdates(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, dbURL := dbtest.New(t)
	w := startWS(t, dbURL, b.URL, fmt.Sprintf("iocd-ws-batch-%d", os.Getpid()))
	token := w.env.session(t, "ws-batch", "operator")
	sub := func(batch bool) *wsClient {
		cl := dialWS(t, w.url, token)
		m := map[string]any{"type": "subscribe", "layers": []string{"devices", "units"}, "wards": []string{w.home}}
		if batch {
			m["batch"] = true
		}
		cl.send(m)
		cl.next("snapshot", 5*time.Second)
		return cl
	}
	// Two batch clients with the same view share one group.
	single, batched, batched2 := sub(false), sub(true), sub(true)

	pub := newPublisher(t, b.URL)
	now := time.Now().UTC()
	for i := range 3 {
		pub.send(t, fmt.Sprintf("city/traffic/batch-s%d", i), map[string]any{"ts": rfc(now), "lon": pointHome[0] + float64(i)*1e-4,
			"lat": pointHome[1], "speed_kmh": 20 + i, "volume": 5, "occupancy": 0.3})
	}
	pub.send(t, "city/units/batch-u1", map[string]any{"ts": rfc(now), "lon": pointHome[0], "lat": pointHome[1],
		"kind": "ambulance", "status": "available"})
	// Away from the ward: neither client may see it.
	pub.send(t, "city/traffic/batch-away", map[string]any{"ts": rfc(now), "lon": pointAway[0], "lat": pointAway[1],
		"speed_kmh": 50, "volume": 1, "occupancy": 0.1})
	want := map[string]bool{"device:batch-s0": true, "device:batch-s1": true, "device:batch-s2": true, "unit:batch-u1": true}

	collect := func(cl *wsClient, batch bool) map[string]bool {
		got := map[string]bool{}
		deadline := time.After(10 * time.Second)
		for len(got) < len(want) {
			select {
			case m, ok := <-cl.frames:
				if !ok {
					t.Fatal("socket closed")
				}
				switch m["type"] {
				case "device", "unit":
					if batch {
						t.Errorf("a batch client got a single %v frame", m["type"])
					}
					obj, _ := m[m["type"].(string)].(map[string]any)
					got[m["type"].(string)+":"+fmt.Sprint(obj["id"])] = true
				case "updates":
					if !batch {
						t.Errorf("a contract client got an updates frame")
					}
					for _, layer := range []string{"device", "unit"} {
						list, ok := m[layer+"s"].([]any)
						if !ok {
							t.Fatalf("updates frame without %ss: %v", layer, m)
						}
						for _, o := range list {
							got[layer+":"+fmt.Sprint(o.(map[string]any)["id"])] = true
						}
					}
				}
			case <-deadline:
				return got
			}
		}
		return got
	}
	for name, c := range map[string]struct {
		cl    *wsClient
		batch bool
	}{"single": {single, false}, "batched": {batched, true}, "batched, same view": {batched2, true}} {
		got := collect(c.cl, c.batch)
		for k := range want {
			if !got[k] {
				t.Errorf("%s: never got %s (got %v)", name, k, got)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("%s: got %s, outside its ward", name, k)
			}
		}
	}
}
