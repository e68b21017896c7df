package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// deviceCache remembers, per device, what the devices table already says,
// so a batch refreshes a device row only when something changed or its
// last_seen is older than the touch interval. Without it every reading
// would update its device row: as many UPDATEs as INSERTs.
//
// It is bounded, because device ids come from outside: at most max
// entries (a device beyond that is simply written as if new on every
// batch), and an entry not written for ttl is forgotten (sweep). Entries
// of devices with a fixed position or registered by an admin are kept:
// their number is what admins made, and forgetting them would lose the
// position or the registration.
type deviceCache struct {
	max      int
	ttl      time.Duration
	required bool // require_registered_devices: enrolled decides admission

	mu      sync.RWMutex
	devices map[string]deviceState
}

type deviceState struct {
	kind       Kind
	fixed      bool
	fixedLon   float64
	fixedLat   float64
	ward       string
	touched    time.Time // when the row's last_seen was last written
	online     bool
	registered bool // the row exists
	enrolled   bool // an admin registered the device (devices.registered_at)
}

func (s deviceState) pinned() bool { return s.fixed || s.enrolled }

func newDeviceCache(max int, ttl time.Duration, required bool) *deviceCache {
	if max <= 0 {
		max = 100_000
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &deviceCache{max: max, ttl: ttl, required: required, devices: map[string]deviceState{}}
}

// load reads the registry at start: every device with a fixed position
// or an admin's registration, and the most recently seen others up to
// the cap.
func (c *deviceCache) load(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT id, kind, fixed_geom IS NOT NULL, coalesce(ST_X(fixed_geom), 0), coalesce(ST_Y(fixed_geom), 0),
		coalesce(ward_code, ''), last_seen, online, registered_at IS NOT NULL FROM devices
		ORDER BY (fixed_geom IS NOT NULL OR registered_at IS NOT NULL) DESC, last_seen DESC`)
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	defer rows.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for rows.Next() {
		var id, kind string
		var s deviceState
		if err := rows.Scan(&id, &kind, &s.fixed, &s.fixedLon, &s.fixedLat, &s.ward, &s.touched, &s.online, &s.enrolled); err != nil {
			return fmt.Errorf("load devices: %w", err)
		}
		if !s.pinned() && len(c.devices) >= c.max {
			continue
		}
		s.kind, s.registered = Kind(kind), true
		c.devices[id] = s
	}
	return rows.Err()
}

// syncEnrolled makes the cache's registrations those of the table (other
// instances' admins, rows changed by SQL).
func (c *deviceCache) syncEnrolled(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT id, fixed_geom IS NOT NULL, coalesce(ST_X(fixed_geom), 0), coalesce(ST_Y(fixed_geom), 0)
		FROM devices WHERE registered_at IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("sync registered devices: %w", err)
	}
	type reg struct {
		fixed    bool
		lon, lat float64
	}
	got := map[string]reg{}
	for rows.Next() {
		var id string
		var r reg
		if err := rows.Scan(&id, &r.fixed, &r.lon, &r.lat); err != nil {
			rows.Close()
			return fmt.Errorf("sync registered devices: %w", err)
		}
		got[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sync registered devices: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.devices {
		if _, ok := got[id]; !ok && s.enrolled {
			s.enrolled = false
			c.devices[id] = s
		}
	}
	for id, r := range got {
		s, ok := c.devices[id]
		if !ok {
			s.registered = true // the row exists; its state is refreshed by the next reading
		}
		s.enrolled, s.fixed, s.fixedLon, s.fixedLat = true, r.fixed, r.lon, r.lat
		c.devices[id] = s
	}
	return nil
}

// enroll records an admin's registration (true) or its removal, made in
// this process (POST/DELETE /api/v1/devices).
func (c *deviceCache) enroll(id string, on bool, fixed bool, lon, lat float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.devices[id]
	if !ok && !on {
		return
	}
	if on {
		s.registered = true
		s.fixed, s.fixedLon, s.fixedLat = fixed, lon, lat
	}
	s.enrolled = on
	c.devices[id] = s
}

// enrolled reports whether an admin registered the device.
func (c *deviceCache) enrolled(id string) bool {
	s, ok := c.get(id)
	return ok && s.enrolled
}

func (c *deviceCache) get(id string) (deviceState, bool) {
	c.mu.RLock()
	s, ok := c.devices[id]
	c.mu.RUnlock()
	return s, ok
}

// size is the number of devices held.
func (c *deviceCache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.devices)
}

// needsTouch reports whether a batch carrying an observation of the device
// must upsert its row.
func (c *deviceCache) needsTouch(o *Observation, now time.Time, interval time.Duration) bool {
	s, ok := c.get(o.DeviceID)
	return !ok || !s.registered || !s.online || s.kind != o.Kind || s.ward != o.Ward || now.Sub(s.touched) >= interval
}

// committed records what a committed batch wrote.
func (c *deviceCache) committed(touched []deviceRow, statuses []statusRow, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range touched {
		s, ok := c.devices[d.id]
		if !ok && len(c.devices) >= c.max {
			continue // full: the device is written as if new next time
		}
		s.kind, s.ward, s.touched, s.online, s.registered = d.kind, d.ward, now, true, true
		c.devices[d.id] = s
	}
	for _, st := range statuses {
		s, ok := c.devices[st.id]
		if !ok && len(c.devices) >= c.max {
			continue
		}
		if !s.registered {
			s.kind, s.registered, s.touched = "unknown", true, now
		}
		s.online = st.online
		c.devices[st.id] = s
	}
}

// sweep forgets devices not written for ttl (keeping pinned ones) and
// returns how many are left.
func (c *deviceCache) sweep(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.devices {
		if !s.pinned() && now.Sub(s.touched) > c.ttl {
			delete(c.devices, id)
		}
	}
	return len(c.devices)
}

// forget drops a device so the next reading re-reads nothing and upserts;
// used when the database may disagree with the cache (after a failed batch).
func (c *deviceCache) forget(ids []string) {
	c.mu.Lock()
	for _, id := range ids {
		if s, ok := c.devices[id]; ok {
			s.touched = time.Time{}
			c.devices[id] = s
		}
	}
	c.mu.Unlock()
}
