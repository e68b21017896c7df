package auth

import (
	"net/netip"
	"sync"
	"time"
)

// LoginLimits configure the login limiter. A key (an account name or a
// remote address) that fails Max times within Window is locked for Lock;
// a success resets the name's count but not the address's, so one good
// account cannot be used to keep spraying guesses from one address.
type LoginLimits struct {
	UserMax    int
	UserWindow time.Duration
	UserLock   time.Duration
	AddrMax    int
	AddrWindow time.Duration
	AddrLock   time.Duration
	// MaxKeys bounds the limiter's memory; when full, expired entries are
	// swept and, if that is not enough, the oldest half is forgotten.
	MaxKeys int
}

// DefaultLoginLimits: 5 wrong passwords for one account in 15 minutes lock
// it for 5 minutes (short, because a locked operator during an emergency
// is itself a harm); 20 failures from one address (an IPv6 /64) in 15
// minutes lock the address for 15 minutes.
var DefaultLoginLimits = LoginLimits{
	UserMax: 5, UserWindow: 15 * time.Minute, UserLock: 5 * time.Minute,
	AddrMax: 20, AddrWindow: 15 * time.Minute, AddrLock: 15 * time.Minute,
	MaxKeys: 100_000,
}

type failures struct {
	first  time.Time // start of the current window
	count  int
	locked time.Time // locked until
	seen   time.Time
}

type limiter struct {
	lim LoginLimits
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

func newLimiter(l LoginLimits, now func() time.Time) *limiter {
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

// locked returns how long until both name and addr may try again; zero if
// they may now.
func (l *limiter) locked(name, addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range []string{userKey(name), addrKey(addr)} {
		if f := l.keys[k]; f != nil && f.locked.After(now) {
			wait = max(wait, f.locked.Sub(now))
		}
	}
	return wait
}

// fail counts a failure and reports whether it locked name or addr.
func (l *limiter) fail(name, addr string) (lockedNow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.keys) >= l.lim.MaxKeys {
		l.sweepLocked(now, true)
	}
	lockedNow = l.bump(userKey(name), now, l.lim.UserMax, l.lim.UserWindow, l.lim.UserLock)
	if l.bump(addrKey(addr), now, l.lim.AddrMax, l.lim.AddrWindow, l.lim.AddrLock) {
		lockedNow = true
	}
	return lockedNow
}

func (l *limiter) bump(k string, now time.Time, maxFails int, window, lock time.Duration) bool {
	f := l.keys[k]
	if f == nil || now.Sub(f.first) > window {
		f = &failures{first: now}
		l.keys[k] = f
	}
	f.seen = now
	f.count++
	if f.count >= maxFails {
		f.locked = now.Add(lock)
		f.count = 0
		f.first = now
		limiterLocks.Inc()
		return true
	}
	return false
}

// success forgets name's failures.
func (l *limiter) success(name string) {
	l.mu.Lock()
	delete(l.keys, userKey(name))
	l.mu.Unlock()
}

// sweep forgets entries that are neither locked nor inside a window.
func (l *limiter) sweep() {
	l.mu.Lock()
	l.sweepLocked(l.now(), false)
	l.mu.Unlock()
}

func (l *limiter) sweepLocked(now time.Time, full bool) {
	window := max(l.lim.UserWindow, l.lim.AddrWindow)
	for k, f := range l.keys {
		if !f.locked.After(now) && now.Sub(f.first) > window {
			delete(l.keys, k)
		}
	}
	if full && len(l.keys) >= l.lim.MaxKeys {
		// Under a flood of distinct keys, forget the least recently seen
		// half rather than grow without bound.
		cut := now
		var n int
		for _, f := range l.keys {
			if f.seen.Before(cut) {
				cut = f.seen
			}
			n++
		}
		mid := cut.Add(now.Sub(cut) / 2)
		for k, f := range l.keys {
			if f.seen.Before(mid) {
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
