package sim

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// counter is a row of the summary.
type counter struct {
	sent, acked, failed, items atomic.Int64
}

// stats are the run's counters; safe for concurrent use.
type stats struct {
	start    time.Time
	kinds    [5]counter // by Kinds
	bad      map[string]*counter
	scenario atomic.Int64
	bytes    atomic.Int64
}

func newStats() *stats {
	s := &stats{start: time.Now(), bad: map[string]*counter{}}
	for _, r := range BadReasons {
		s.bad[r] = &counter{}
	}
	return s
}

func kindIndex(k string) int {
	switch k {
	case KindTraffic:
		return 0
	case KindCamera:
		return 1
	case KindEmergency:
		return 2
	case KindUnits:
		return 3
	}
	return 4
}

func (s *stats) row(m *Message) *counter {
	if m.Bad != "" {
		return s.bad[m.Bad]
	}
	return &s.kinds[kindIndex(m.Kind)]
}

func (s *stats) sent(m *Message) {
	c := s.row(m)
	c.sent.Add(1)
	c.items.Add(int64(m.Items))
	s.bytes.Add(int64(len(m.Payload)))
	if m.Scenario != "" {
		s.scenario.Add(1)
	}
}

func (s *stats) done(m *Message, err error) {
	if err != nil {
		s.row(m).failed.Add(1)
		return
	}
	s.row(m).acked.Add(1)
}

// Counts is a snapshot of one row.
type Counts struct {
	Sent   int64 `json:"sent"`
	Acked  int64 `json:"acked"`
	Failed int64 `json:"failed"`
	Items  int64 `json:"items"` // objects carried (a batch carries several)
}

// Summary is what a run did; Stats returns one at any time.
type Summary struct {
	RunID    string            `json:"run_id"`
	Seed     uint64            `json:"seed"`
	Elapsed  float64           `json:"elapsed_s"`
	Total    Counts            `json:"total"`
	Valid    Counts            `json:"valid"`
	Bad      Counts            `json:"bad"`
	ByKind   map[string]Counts `json:"by_kind"` // valid messages only
	ByReason map[string]Counts `json:"by_reason"`
	Scenario int64             `json:"scenario_messages"`
	Bytes    int64             `json:"payload_bytes"`
	Truth    []Truth           `json:"truth,omitempty"`
	SimStart time.Time         `json:"sim_start"`
	SimClock float64           `json:"clock_speed"`
	RatePerS float64           `json:"acked_per_s"`
	Devices  map[string]int    `json:"devices"`
}

func (c *counter) counts() Counts {
	return Counts{Sent: c.sent.Load(), Acked: c.acked.Load(), Failed: c.failed.Load(), Items: c.items.Load()}
}

func (a *Counts) add(b Counts) {
	a.Sent += b.Sent
	a.Acked += b.Acked
	a.Failed += b.Failed
	a.Items += b.Items
}

func (s *stats) summary() Summary {
	sum := Summary{ByKind: map[string]Counts{}, ByReason: map[string]Counts{}}
	for i, k := range Kinds {
		c := s.kinds[i].counts()
		sum.ByKind[k] = c
		sum.Valid.add(c)
	}
	for _, r := range BadReasons {
		c := s.bad[r].counts()
		if c.Sent > 0 {
			sum.ByReason[r] = c
		}
		sum.Bad.add(c)
	}
	sum.Total = sum.Valid
	sum.Total.add(sum.Bad)
	sum.Scenario = s.scenario.Load()
	sum.Bytes = s.bytes.Load()
	sum.Elapsed = time.Since(s.start).Seconds()
	if sum.Elapsed > 0 {
		sum.RatePerS = float64(sum.Total.Acked) / sum.Elapsed
	}
	return sum
}

// WriteText prints the summary as a table.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "iocsim run %s (seed %d): %.1f s, %d sent, %d acked, %d failed, %.0f acked/s, %.1f MB\n",
		s.RunID, s.Seed, s.Elapsed, s.Total.Sent, s.Total.Acked, s.Total.Failed, s.RatePerS, float64(s.Bytes)/1e6)
	fmt.Fprintf(w, "%-22s %10s %10s %8s %10s\n", "kind / bad reason", "sent", "acked", "failed", "items")
	for _, k := range Kinds {
		c := s.ByKind[k]
		fmt.Fprintf(w, "%-22s %10d %10d %8d %10d\n", k, c.Sent, c.Acked, c.Failed, c.Items)
	}
	reasons := make([]string, 0, len(s.ByReason))
	for r := range s.ByReason {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int { return slices.Index(BadReasons, a) - slices.Index(BadReasons, b) })
	for _, r := range reasons {
		c := s.ByReason[r]
		fmt.Fprintf(w, "%-22s %10d %10d %8d %10s\n", "bad:"+r, c.Sent, c.Acked, c.Failed, "-")
	}
	fmt.Fprintf(w, "%-22s %10d %10d %8d %10d\n", "total valid", s.Valid.Sent, s.Valid.Acked, s.Valid.Failed, s.Valid.Items)
	fmt.Fprintf(w, "%-22s %10d %10d %8d\n", "total bad", s.Bad.Sent, s.Bad.Acked, s.Bad.Failed)
	if s.Scenario > 0 || len(s.Truth) > 0 {
		fmt.Fprintf(w, "scenario messages: %d\n", s.Scenario)
		for _, t := range s.Truth {
			fmt.Fprintf(w, "  %-10s %-18s %-8s ward %s %s, %d devices, %d messages, complete=%v\n",
				t.Scenario, t.Kind, t.Severity, t.WardCode, t.WardName, len(t.Devices), len(t.Messages), t.Complete)
		}
	}
}

// progressLine is the one-line status printed while running.
func (s *stats) progressLine(prevAcked int64, dt time.Duration) (string, int64) {
	var sent, acked, failed int64
	for i := range s.kinds {
		c := &s.kinds[i]
		sent, acked, failed = sent+c.sent.Load(), acked+c.acked.Load(), failed+c.failed.Load()
	}
	var bad int64
	for _, c := range s.bad {
		sent, acked, failed = sent+c.sent.Load(), acked+c.acked.Load(), failed+c.failed.Load()
		bad += c.sent.Load()
	}
	rate := float64(acked-prevAcked) / dt.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "iocsim %6.0fs  rate %7.0f/s  sent %9d  acked %9d  in flight %5d  errors %d  bad %d",
		time.Since(s.start).Seconds(), rate, sent, acked, sent-acked-failed, failed, bad)
	return b.String(), acked
}
