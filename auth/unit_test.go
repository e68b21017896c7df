package auth

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var fastHash = HashParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", fastHash)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q not PHC argon2id", h)
	}
	if ok, err := VerifyPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(h, "correct horse batterY"); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse battery", fastHash)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	parts := strings.Split(h, "$")
	for _, bad := range []string{
		"", "plain", "$2a$10$abc", strings.Replace(h, "argon2id", "argon2i", 1),
		strings.Replace(h, "m=64", "m=99999999", 1), strings.Replace(h, "t=1", "t=0", 1),
		strings.Join(append(parts[:4:4], "!!", parts[5]), "$"),
	} {
		if ok, err := VerifyPassword(bad, "correct horse battery"); ok || err == nil {
			t.Errorf("hash %q: ok=%v err=%v", bad, ok, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, c := range []struct {
		name, pw string
		ok       bool
	}{
		{"alice", "long enough pass", true},
		{"alice", "short", false},
		{"alice", strings.Repeat("a", 20), false},
		{"alice", "xxALICExx-secret", false},
		{"alice", strings.Repeat("ab", 129), false},
		{"alice", "line\nbreak in it", false},
		{"alice", "bad utf8 \xff\xfe here", false},
	} {
		if err := CheckPassword(c.name, c.pw); (err == nil) != c.ok {
			t.Errorf("%q: %v", c.pw, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"Alice": "alice", "op.1@hn": "op.1@hn", "a": "a"} {
		if got, err := NormalizeName("name", in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "admin' OR '1'='1", "x;DROP TABLE users", strings.Repeat("a", 65), "ä", "a/b"} {
		if _, err := NormalizeName("name", bad); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	w, err := NormalizeWards([]string{"00008", "00004", "00008"})
	if err != nil || strings.Join(w, ",") != "00004,00008" {
		t.Errorf("wards: %v %v", w, err)
	}
	for _, bad := range [][]string{{"4"}, {"0000a"}, {"00004'--"}, make([]string, MaxWards+1)} {
		if _, err := NormalizeWards(bad); err == nil {
			t.Errorf("wards %q accepted", bad)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }
func limits(free, addrMax int) LoginLimits {
	return LoginLimits{AccountFree: free, AccountDelay: time.Second, AccountMaxDelay: time.Minute,
		AddrMax: addrMax, Window: 15 * time.Minute, MaxKeys: 1000}
}

// fail reserves and fails one attempt, which must be allowed.
func fail(t *testing.T, l *limiter, name, addr string) {
	t.Helper()
	at, wait := l.reserve(name, addr)
	if at == nil {
		t.Fatalf("%s from %s refused for %v", name, addr, wait)
	}
	at.failed()
}

func TestLimiterReservesBeforeTheCheck(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(3, 100), c.now)
	var held []*attempt
	for range 10 {
		if at, _ := l.reserve("alice", "198.51.100.1"); at != nil {
			held = append(held, at)
		}
	}
	if len(held) != 3 {
		t.Fatalf("%d attempts in flight at once, want the 3 free ones", len(held))
	}
	// Given back (no check ran): they cost nothing.
	for _, at := range held {
		at.cancel()
	}
	for range 3 {
		fail(t, l, "alice", "198.51.100.1")
	}
	if at, wait := l.reserve("alice", "198.51.100.1"); at != nil || wait != time.Second {
		t.Fatalf("after 3 failures: %v, wait %v; want 1 s", at, wait)
	}
}

func TestLimiterGrowingDelayNotLock(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(3, 100), c.now)
	for range 3 {
		fail(t, l, "alice", "198.51.100.1")
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range want {
		// From any address: the delay is the account's.
		_, wait := l.reserve("alice", "203.0.113."+string(rune('1'+i)))
		if wait != w*time.Second {
			t.Fatalf("delay %d: %v, want %v", i, wait, w*time.Second)
		}
		c.add(wait)
		fail(t, l, "alice", "198.51.100.1")
	}
	c.add(time.Minute)
	at, _ := l.reserve("alice", "198.51.100.1")
	if at == nil {
		t.Fatal("refused after waiting the longest delay")
	}
	at.succeeded()
	// A success resets the account: the free attempts are back.
	for range 3 {
		fail(t, l, "alice", "198.51.100.1")
	}
	if w := l.delay(100, time.Minute); w != time.Minute {
		t.Fatalf("delay after 100 failures %v", w)
	}
}

func TestLimiterAddressLosesFreeAttempts(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(5, 4), c.now)
	for i := range 4 {
		fail(t, l, "user"+string(rune('a'+i)), "2001:db8:1:2::1")
	}
	// Same /64, an account nobody has failed on: still gets in (one try).
	at, wait := l.reserve("fresh", "2001:db8:1:2::ffff")
	if at == nil {
		t.Fatalf("clean account refused from a spraying address: %v", wait)
	}
	at.succeeded()
	// An account with a failure: no free attempts from this address, only
	// the growing delay (seconds, not a lock).
	fail(t, l, "typo", "2001:db8:1:2::ffff")
	if _, wait := l.reserve("typo", "2001:db8:1:2::ffff"); wait != 2*time.Second {
		t.Fatalf("account with one failure from a spraying address: wait %v, want 2 s", wait)
	}
	// From another /64 the same account still has its free attempts.
	if at, wait := l.reserve("typo", "2001:db8:1:3::1"); at == nil {
		t.Fatalf("neighbouring /64 refused for %v", wait)
	} else {
		at.cancel()
	}
	// Sprayed accounts: from the spraying address the delay grows past
	// the account cap (1 min) to the address cap (15 min); the account's
	// user elsewhere waits at most the account cap.
	for range 12 {
		_, wait := l.reserve("typo", "2001:db8:1:2::ffff")
		c.add(wait)
		fail(t, l, "typo", "2001:db8:1:2::ffff")
	}
	if _, wait := l.reserve("typo", "2001:db8:1:2::ffff"); wait != 15*time.Minute {
		t.Fatalf("spraying address, account with 13 failures: wait %v, want 15 min", wait)
	}
	if _, wait := l.reserve("typo", "2001:db8:1:3::1"); wait != time.Minute {
		t.Fatalf("same account from elsewhere: wait %v, want 1 min", wait)
	}
	// Waiting the delay out does not wipe the failures (the window counts
	// from the end of the delay): the next one still waits 15 min.
	c.add(15*time.Minute + time.Second)
	fail(t, l, "typo", "2001:db8:1:2::ffff")
	if _, wait := l.reserve("typo", "2001:db8:1:2::ffff"); wait != 15*time.Minute {
		t.Fatalf("after waiting out the delay: wait %v, want 15 min again", wait)
	}
}

func TestLimiterWindowExpires(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(3, 100), c.now)
	for range 3 {
		fail(t, l, "alice", "a")
	}
	c.add(16 * time.Minute)
	for range 3 {
		fail(t, l, "alice", "a")
	}
	l.sweep()
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(5, 5), c.now)
	for i := range 5000 {
		c.add(time.Millisecond)
		if at, _ := l.reserve("n"+time.Duration(i).String(), "10.0.0.1"); at != nil {
			at.failed()
		}
	}
	if n := len(l.keys); n > 1000 {
		t.Fatalf("limiter holds %d keys, cap 1000", n)
	}
}

func TestThrottle(t *testing.T) {
	c := newClock()
	th := newThrottle(c.now)
	allowed := 0
	for range 50 {
		if ok, _ := th.allow("192.0.2.7"); ok {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("one address got %d entries through, want the burst of 10", allowed)
	}
	c.add(10 * time.Second)
	ok, suppressed := th.allow("192.0.2.7")
	if !ok || suppressed != 40 {
		t.Fatalf("after refill: ok=%v suppressed=%d, want true 40", ok, suppressed)
	}
	// Many addresses: the global bucket holds.
	allowed = 0
	for i := range 1000 {
		if ok, _ := th.allow("10.1." + string(rune('0'+i/250)) + "." + string(rune('0'+i%10))); ok {
			allowed++
		}
	}
	if allowed > 100 {
		t.Fatalf("%d entries through the global bucket of 100", allowed)
	}
}

// X-Forwarded-For is outside input: whatever it holds, the answer is the
// peer when the peer is not a trusted proxy, and otherwise an address.
func FuzzClientAddr(f *testing.F) {
	s := &Service{}
	for _, p := range []string{"10.0.0.0/8", "2001:db8::/32"} {
		pre, _ := netip.ParsePrefix(p)
		s.proxies = append(s.proxies, pre)
	}
	f.Add("10.1.1.1:4000", "203.0.113.1, 10.2.2.2")
	f.Add("198.51.100.1:4000", "10.0.0.1")
	f.Add("[2001:db8::1]:4000", "[2001:db8::2]:99, ::ffff:1.2.3.4")
	f.Add("10.1.1.1:4000", ",,, ,garbage,")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		got := s.clientAddr(r)
		p := peerAddr(r)
		ip, err := netip.ParseAddr(p)
		if err != nil || !s.trusted(ip) {
			if got != p {
				t.Fatalf("untrusted peer %q: client %q", p, got)
			}
			return
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("peer %q xff %q: client %q is not an address", peer, xff, got)
		}
	})
}
