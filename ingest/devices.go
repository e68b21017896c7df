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
type deviceCache struct {
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
}

func newDeviceCache() *deviceCache { return &deviceCache{devices: map[string]deviceState{}} }

// load reads the registry at start.
func (c *deviceCache) load(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT id, kind, fixed_geom IS NOT NULL, coalesce(ST_X(fixed_geom), 0), coalesce(ST_Y(fixed_geom), 0),
		coalesce(ward_code, ''), last_seen, online FROM devices`)
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	defer rows.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for rows.Next() {
		var id, kind string
		var s deviceState
		if err := rows.Scan(&id, &kind, &s.fixed, &s.fixedLon, &s.fixedLat, &s.ward, &s.touched, &s.online); err != nil {
			return fmt.Errorf("load devices: %w", err)
		}
		s.kind, s.registered = Kind(kind), true
		c.devices[id] = s
	}
	return rows.Err()
}

func (c *deviceCache) get(id string) (deviceState, bool) {
	c.mu.RLock()
	s, ok := c.devices[id]
	c.mu.RUnlock()
	return s, ok
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
		s := c.devices[d.id]
		s.kind, s.ward, s.touched, s.online, s.registered = d.kind, d.ward, now, true, true
		c.devices[d.id] = s
	}
	for _, st := range statuses {
		s := c.devices[st.id]
		if !s.registered {
			s.kind, s.registered, s.touched = "unknown", true, now
		}
		s.online = st.online
		c.devices[st.id] = s
	}
}

// forget drops a device so the next reading re-reads nothing and upserts;
// used when the database may disagree with the cache (after a failed batch).
func (c *deviceCache) forget(ids []string) {
	c.mu.Lock()
	for _, id := range ids {
		s := c.devices[id]
		s.touched = time.Time{}
		c.devices[id] = s
	}
	c.mu.Unlock()
}
