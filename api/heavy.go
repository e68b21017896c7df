package api

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultHeavyPerCaller is how many expensive requests one caller may have
// running at once unless SetHeavyLimit says otherwise.
const DefaultHeavyPerCaller = 2

var heavyRefused = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "ioc_api_heavy_refused_total",
	Help: "Expensive requests refused with 429 because the caller already had its share running.",
})

// Collectors are the api package's metrics.
func Collectors() []prometheus.Collector { return []prometheus.Collector{heavyRefused} }

// heavyGate counts each caller's expensive requests in flight. A few
// searches, exports or long telemetry ranges from one analyst must not
// take every API connection (the pool is capped and its statements time
// out; this keeps one caller from holding all of it).
type heavyGate struct {
	mu       sync.Mutex
	perCall  int
	inflight map[string]int
}

func (g *heavyGate) enter(who string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight == nil {
		g.inflight = map[string]int{}
	}
	if g.inflight[who] >= g.limit() {
		return false
	}
	g.inflight[who]++
	return true
}

// limit is the share of one caller; g.mu is held.
func (g *heavyGate) limit() int {
	if g.perCall <= 0 {
		return DefaultHeavyPerCaller
	}
	return g.perCall
}

func (g *heavyGate) leave(who string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[who]--; g.inflight[who] <= 0 {
		delete(g.inflight, who)
	}
}

// SetHeavyLimit sets how many expensive requests one caller may run at once.
func (s *Server) SetHeavyLimit(n int) {
	s.heavy.mu.Lock()
	s.heavy.perCall = n
	s.heavy.mu.Unlock()
}

// HandleHeavy registers an authenticated route whose requests are
// expensive (text search, history, exports, telemetry ranges): a caller
// with its share already running gets 429 too_many_requests with
// Retry-After instead of a place in the queue.
func (s *Server) HandleHeavy(method, pattern, action string, h http.HandlerFunc) {
	s.Handle(method, pattern, action, func(w http.ResponseWriter, r *http.Request) {
		who := CallerFrom(r.Context()).Name
		if !s.heavy.enter(who) {
			heavyRefused.Inc()
			Fail(w, r, Problemf(http.StatusTooManyRequests, "too_many_requests",
				"you already have %d heavy requests running; wait for one to finish", s.heavyLimit()))
			return
		}
		defer s.heavy.leave(who)
		h(w, r)
	})
}

func (s *Server) heavyLimit() int {
	s.heavy.mu.Lock()
	defer s.heavy.mu.Unlock()
	return s.heavy.limit()
}
