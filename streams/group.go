package streams

import (
	"context"
	"sync"
	"time"
)

// group holds the device and unit updates of every client with the same
// view (twenty ward operators of one ward, say): an update is taken once
// for all of them (latest per id), and each round, every UpdateInterval,
// is made once and queued to each member like any ordered frame: for
// "batch" clients one "updates" frame, for the others the contract's
// frame per device or unit, back to back in one queue entry. A member too
// slow for its rounds overflows its queue and is closed as a slow
// consumer, as it would be for incident events.
//
// Before, each client without "batch" kept its own latest map: at 5,000
// clients that was 28 % of iocd's CPU (a lock and a map write per update
// per client).
type group struct {
	key  string
	view *view
	// members is guarded by Gateway.mu (updateIndex).
	members map[*client]struct{}

	mu     sync.Mutex // guards latest
	latest map[string]frame
}

func newGroup(v *view) *group {
	return &group{key: v.updateKey(), view: v, members: map[*client]struct{}{}, latest: map[string]frame{}}
}

// update keeps the newest update per id for the next round.
func (g *group) update(key, layer string, f frame, ward string, lon, lat float64) {
	if !g.view.has(layer) || !g.view.place(ward, lon, lat) {
		return
	}
	g.mu.Lock()
	n := len(g.latest)
	g.latest[key] = f // one lookup: the map did not grow if it replaced one
	if len(g.latest) == n {
		metricCoalesced.Inc()
	}
	g.mu.Unlock()
}

// take encodes what arrived since the last round (ok false: nothing).
func (g *group) take() (frame, bool) {
	g.mu.Lock()
	if len(g.latest) == 0 {
		g.mu.Unlock()
		return frame{}, false
	}
	var f frame
	if g.view.batch {
		f = prepareRaw(batchFrame(g.latest))
	} else {
		f = framesOf(g.latest)
	}
	clear(g.latest)
	g.mu.Unlock()
	return f, true
}

// framesOf puts the round's single frames back to back: one queue entry
// that the socket reads as one message per device or unit.
func framesOf(latest map[string]frame) frame {
	n := 0
	for _, f := range latest {
		n += len(f.wire)
	}
	b := make([]byte, 0, n)
	for _, f := range latest {
		b = append(b, f.wire...)
	}
	return frame{wire: b, size: n, msgs: len(latest)}
}

// rounds sends each group's round every UpdateInterval to its members
// that are live (one still waiting for its snapshot starts from that).
func (g *Gateway) rounds(ctx context.Context) {
	t := time.NewTicker(g.cfg.UpdateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.RLock()
		for _, grp := range g.idx.groups {
			f, ok := grp.take()
			if !ok {
				continue
			}
			for c := range grp.members {
				c.control(f, "")
			}
		}
		g.mu.RUnlock()
	}
}

// batchFrame joins a round's updates into one frame:
// {"type":"updates","devices":[...],"units":[...]}, each object as a
// single "device" or "unit" frame would carry it.
func batchFrame(latest map[string]frame) []byte {
	n := 40
	for _, f := range latest {
		n += len(f.body) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"updates","devices":[`...)
	b = appendBodies(b, latest, false)
	b = append(b, `],"units":[`...)
	b = appendBodies(b, latest, true)
	return append(b, "]}"...)
}

func appendBodies(b []byte, latest map[string]frame, units bool) []byte {
	first := true
	for _, f := range latest {
		if f.unit != units {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.body...)
	}
	return b
}
