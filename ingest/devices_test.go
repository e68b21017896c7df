package ingest

import (
	"fmt"
	"testing"
	"time"
)

// Device ids come from outside: the cache holds at most its cap, forgets
// devices not written for its ttl, and keeps fixed and registered ones.
func TestDeviceCacheIsBounded(t *testing.T) {
	c := newDeviceCache(100, time.Minute, false)
	now := time.Now()
	c.enroll("REG-1", true, false, 0, 0)
	c.enroll("FIX-1", true, true, 105.8, 21.0)
	var rows []deviceRow
	for i := range 10_000 {
		rows = append(rows, deviceRow{id: fmt.Sprintf("INVENTED-%d", i), kind: KindTraffic})
	}
	c.committed(rows, []statusRow{{id: "STATUS-ONLY", online: false}}, now)
	if n := c.size(); n > 100 {
		t.Fatalf("cache holds %d devices, cap 100", n)
	}
	// A device beyond the cap is still written: it looks new.
	o := &Observation{DeviceID: "INVENTED-9999", Kind: KindTraffic}
	if !c.needsTouch(o, now, time.Second) {
		t.Error("an uncached device must be upserted")
	}
	if n := c.sweep(now.Add(2 * time.Minute)); n != 2 {
		t.Errorf("after the ttl %d devices are left, want the 2 pinned ones", n)
	}
	if !c.enrolled("REG-1") {
		t.Error("registered device forgotten")
	}
	if s, ok := c.get("FIX-1"); !ok || !s.fixed {
		t.Error("fixed device forgotten")
	}
	c.enroll("REG-1", false, false, 0, 0)
	if c.enrolled("REG-1") {
		t.Error("registration not removed")
	}
}
