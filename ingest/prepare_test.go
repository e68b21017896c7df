package ingest

import (
	"fmt"
	"testing"
	"time"
)

// A batch's status rows: a device's status (e.g. its last will) is
// written only when no reading of that device arrived after it in the
// batch; the reading says it is online. Of several statuses the latest by
// ts is the one kept.
func TestPrepareStatusAgainstReadings(t *testing.T) {
	now := time.Now()
	reading := func(dev string) Observation {
		return Observation{Kind: KindTraffic, DeviceID: dev, TS: now, HasPos: true, SpeedKmh: 30, IntervalS: 60}
	}
	status := func(dev string, online bool, age time.Duration) Observation {
		return Observation{Kind: KindStatus, DeviceID: dev, TS: now.Add(-age), Online: online}
	}
	cases := []struct {
		name string
		envs [][]Observation // one envelope per element
		want map[string]bool // device → online, of the status rows
	}{
		{"reading then status", [][]Observation{{reading("A")}, {status("A", false, 0)}}, map[string]bool{"A": false}},
		{"status then reading", [][]Observation{{status("A", false, 0)}, {reading("A")}}, map[string]bool{}},
		{"reading, status, reading", [][]Observation{{reading("A")}, {status("A", false, 0)}, {reading("A")}}, map[string]bool{}},
		{"another device's reading", [][]Observation{{status("A", false, 0)}, {reading("B")}}, map[string]bool{"A": false}},
		{"the later ts wins", [][]Observation{{status("A", true, 0)}, {status("A", false, time.Minute)}}, map[string]bool{"A": true}},
		{"an older status after a reading", [][]Observation{{status("A", true, 0)}, {reading("A")}, {status("A", false, time.Minute)}},
			map[string]bool{"A": true}},
		{"one envelope, status last", [][]Observation{{reading("A"), status("A", false, 0)}}, map[string]bool{"A": false}},
		{"one envelope, reading last", [][]Observation{{status("A", false, 0), reading("A")}}, map[string]bool{}},
		{"two devices", [][]Observation{{status("A", false, 0)}, {status("B", false, 0)}, {reading("A")}}, map[string]bool{"B": false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var envs []*envelope
			for _, obs := range c.envs {
				envs = append(envs, &envelope{received: now, obs: append([]Observation(nil), obs...)})
			}
			p := prepare(envs, newDeviceCache(0, 0, false), time.Second, now)
			got := map[string]bool{}
			for _, s := range p.statuses {
				got[s.id] = s.online
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("statuses %v, want %v", got, c.want)
			}
		})
	}
}

// BenchmarkPrepareEncode: the writer's own CPU per batch of 1000 traffic
// readings from 2000 devices (prepare and the binary COPY stream), without
// PostgreSQL; allocations per batch.
func BenchmarkPrepareEncode(b *testing.B) {
	now := time.Now()
	cache := newDeviceCache(0, 0, false)
	const per = 1000
	envs := make([]*envelope, per)
	for i := range envs {
		envs[i] = &envelope{topic: "city/traffic/S", received: now, obs: []Observation{{
			Kind: KindTraffic, DeviceID: fmt.Sprintf("S-%d", i*7%2000), TS: now.Add(-time.Duration(i) * time.Millisecond),
			MsgID: fmt.Sprint(i), HasPos: true, Lon: 105.8 + float64(i%2000)*1e-4, Lat: 21.0, Ward: "00004",
			SpeedKmh: 30, Volume: 10, Occupancy: 0.3, IntervalS: 60,
		}}}
	}
	p := prepare(envs, cache, time.Hour, now)
	cache.committed(p.devices, p.statuses, now) // steady state: no device needs a touch
	b.ReportAllocs()
	for b.Loop() {
		p := prepare(envs, cache, time.Hour, now)
		for k, rows := range p.rows {
			releaseCopy(encodeCopy(k, rows))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/observation")
}
