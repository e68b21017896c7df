package auth

import (
	"net/netip"
	"sync"
	"time"
)

// LoginLimits configure the login limiter, which slows guessing without
// locking anyone out for long:
//
//   - per account name (known or not): AccountFree failures cost nothing;
//     after them each attempt must wait AccountDelay after the last
//     failure, doubling with every further failure up to AccountMaxDelay.
//     The right password after the wait gets in and resets the account.
//   - per remote address (an IPv6 /64): past AddrMax failures on any
//     accounts the address loses the free attempts, and from it an
//     account's delay may grow to AddrMaxDelay instead: it gets one try
//     per account, then delays that grow longer than elsewhere. An account
//     with no failures (one not under attack) can still be signed in to
//     from there, and an account's own user at another address keeps the
//     short cap: one person's typos or a guesser behind a control room's
//     NAT do not lock the room out, and spraying from it is slowed.
//
// Every attempt is reserved before its password is checked and counted as
// a failure until it is known to be none, so parallel requests get no
// more checks than sequential ones. Failures are forgotten after Window
// without one (counted from the end of the delay they impose, so waiting
// out a delay does not wipe them); a success resets the account, not the
// address.
type LoginLimits struct {
	AccountFree     int
	AccountDelay    time.Duration
	AccountMaxDelay time.Duration
	AddrMax         int
	AddrMaxDelay    time.Duration
	Window          time.Duration
	// MaxKeys bounds the limiter's memory; when full, quiet entries are
	// swept and, if that is not enough, the least recently seen half is
	// forgotten.
	MaxKeys int
}

// DefaultLoginLimits: 5 free failures per account, then 1 s, 2 s, 4 s, ...
// up to 1 min between attempts (a locked-out operator during an emergency
// is itself a harm; 1 min still holds a guesser to 60 an hour per
// account); 20 failures from one address take its free attempts away and
// let delays from it grow to 15 min (a sprayer there gets about 4 tries an
// hour per account); forgotten after 15 quiet minutes. config.Default
// holds the same values.
var DefaultLoginLimits = LoginLimits{
	AccountFree: 5, AccountDelay: time.Second, AccountMaxDelay: time.Minute,
	AddrMax: 20, AddrMaxDelay: 15 * time.Minute, Window: 15 * time.Minute, MaxKeys: 100_000,
}

func (l *LoginLimits) defaults() {
	d := DefaultLoginLimits
	if l.AccountFree <= 0 {
		l.AccountFree = d.AccountFree
	}
	if l.AccountDelay <= 0 {
		l.AccountDelay = d.AccountDelay
	}
	if l.AccountMaxDelay < l.AccountDelay {
		l.AccountMaxDelay = max(d.AccountMaxDelay, l.AccountDelay)
	}
	if l.AddrMax <= 0 {
		l.AddrMax = d.AddrMax
	}
	if l.AddrMaxDelay < l.AccountMaxDelay {
		l.AddrMaxDelay = max(d.AddrMaxDelay, l.AccountMaxDelay)
	}
	if l.Window <= 0 {
		l.Window = d.Window
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = d.MaxKeys
	}
}

type failures struct {
	count   int       // failures since the key was last quiet for Window
	last    time.Time // the last failure
	pending int       // attempts reserved whose outcome is not known yet
	seen    time.Time
}

type limiter struct {
	lim LoginLimits
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

func newLimiter(l LoginLimits, now func() time.Time) *limiter {
	l.defaults()
	return &limiter{lim: l, now: now, keys: map[string]*failures{}}
}

func userKey(name string) string { return "u:" + name }

// addrKey groups IPv6 addresses by /64: one host usually holds a whole one.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "a:" + addr
	}
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return "a:" + p.String()
	}
	return "a:" + ip.Unmap().String()
}

// attempt is a reserved sign-in attempt; exactly one of failed, succeeded
// or cancel ends it.
type attempt struct {
	l          *limiter
	user, addr string
}

// reserve books an attempt for name from addr before its password is
// checked, or says how long to wait first.
func (l *limiter) reserve(name, addr string) (*attempt, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.keys) >= l.lim.MaxKeys {
		l.sweepLocked(now, true)
	}
	uk, ak := userKey(name), addrKey(addr)
	u, a := l.get(uk, now), l.get(ak, now)
	free, longest := l.lim.AccountFree, l.lim.AccountMaxDelay
	if a.count+a.pending >= l.lim.AddrMax {
		free, longest = 0, l.lim.AddrMaxDelay
	}
	if wait := l.wait(u, free, longest, now); wait > 0 {
		return nil, wait
	}
	u.pending++
	a.pending++
	return &attempt{l: l, user: uk, addr: ak}, 0
}

// wait: how long before account u may be tried, with free attempts free
// and delays capped at longest.
func (l *limiter) wait(u *failures, free int, longest time.Duration, now time.Time) time.Duration {
	if u.count+u.pending < free {
		return 0
	}
	if u.pending > 0 {
		// A check of this account is under way and its outcome decides.
		return time.Second
	}
	if next := u.last.Add(l.delay(u.count-free+1, longest)); next.After(now) {
		return next.Sub(now)
	}
	return 0
}

// delay is the wait after the k-th failure past the free ones: doubling
// from AccountDelay, at most longest.
func (l *limiter) delay(k int, longest time.Duration) time.Duration {
	if k <= 0 {
		return 0
	}
	d := l.lim.AccountDelay
	for ; k > 1 && d < longest; k-- {
		d *= 2
	}
	return min(d, longest)
}

func (l *limiter) get(k string, now time.Time) *failures {
	f := l.keys[k]
	if f == nil {
		f = &failures{}
		l.keys[k] = f
	}
	if l.forgotten(f, now) {
		f.count = 0
	}
	f.seen = now
	return f
}

// forgotten: f has been quiet for Window after the longest delay its
// failures could impose, so waiting out a delay never wipes the slate.
func (l *limiter) forgotten(f *failures, now time.Time) bool {
	return f.pending == 0 && now.Sub(f.last) > l.lim.Window+l.delay(f.count, l.lim.AddrMaxDelay)
}

// end releases the reservation on both keys; fn, if set, updates each.
func (a *attempt) end(fn func(k string, f *failures)) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{a.user, a.addr} {
		if f := l.keys[k]; f != nil {
			f.pending = max(0, f.pending-1)
			if fn != nil {
				fn(k, f)
			}
		}
	}
}

// failed counts a wrong password and reports whether the account now has
// to wait before its next attempt.
func (a *attempt) failed() (delayed bool) {
	now := a.l.now()
	a.end(func(k string, f *failures) {
		f.count++
		f.last = now
		if k == a.user && f.count >= a.l.lim.AccountFree {
			delayed = true
			limiterDelays.Inc()
		}
	})
	return delayed
}

// succeeded forgets the account's failures (not the address's).
func (a *attempt) succeeded() {
	a.end(func(k string, f *failures) {
		if k == a.user {
			f.count = 0
		}
	})
}

// cancel gives the reservation back: no password was checked.
func (a *attempt) cancel() { a.end(nil) }

// sweep forgets entries with nothing pending and nothing to remember.
func (l *limiter) sweep() {
	l.mu.Lock()
	l.sweepLocked(l.now(), false)
	l.mu.Unlock()
}

func (l *limiter) sweepLocked(now time.Time, full bool) {
	for k, f := range l.keys {
		if f.pending == 0 && (f.count == 0 || l.forgotten(f, now)) {
			delete(l.keys, k)
		}
	}
	if full && len(l.keys) >= l.lim.MaxKeys {
		// Under a flood of distinct keys, forget the least recently seen
		// half rather than grow without bound.
		cut := now
		for _, f := range l.keys {
			if f.seen.Before(cut) {
				cut = f.seen
			}
		}
		mid := cut.Add(now.Sub(cut) / 2)
		for k, f := range l.keys {
			if f.pending == 0 && !f.seen.After(mid) {
				delete(l.keys, k)
			}
		}
		limiterEvictions.Inc()
	}
}

// throttle rate-limits audit entries for refused requests and failed
// logins so a flood cannot flood the audit log: a token bucket per remote
// address and one for everyone. What is dropped is counted and reported in
// the next entry that is written (detail "suppressed") and in
// ioc_audit_suppressed_total.
type throttle struct {
	now                      func() time.Time
	perAddrBurst, perAddrRef float64 // tokens, tokens per second
	globalBurst, globalRef   float64

	mu         sync.Mutex
	global     bucket
	addrs      map[string]*bucket
	suppressed int64
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) take(now time.Time, burst, refill float64) bool {
	if b.at.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*refill)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// newThrottle: per address 10 at once then 6 a minute; overall 100 at
// once then 1 a second.
func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, perAddrBurst: 10, perAddrRef: 0.1, globalBurst: 100, globalRef: 1, addrs: map[string]*bucket{}}
}

// allow reports whether an entry from addr may be written now and, if so,
// how many were suppressed since the last one written.
func (t *throttle) allow(addr string) (ok bool, suppressed int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	k := addrKey(addr)
	b := t.addrs[k]
	if b == nil {
		if len(t.addrs) > 50_000 {
			clear(t.addrs)
		}
		b = &bucket{}
		t.addrs[k] = b
	}
	if !b.take(now, t.perAddrBurst, t.perAddrRef) || !t.global.take(now, t.globalBurst, t.globalRef) {
		t.suppressed++
		return false, 0
	}
	s := t.suppressed
	t.suppressed = 0
	return true, s
}

// sweep forgets full buckets (addresses quiet long enough to refill).
func (t *throttle) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, b := range t.addrs {
		if now.Sub(b.at).Seconds()*t.perAddrRef >= t.perAddrBurst {
			delete(t.addrs, k)
		}
	}
}
