package auth

import (
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
func limits(userMax, addrMax int) LoginLimits {
	return LoginLimits{UserMax: userMax, UserWindow: 15 * time.Minute, UserLock: 5 * time.Minute,
		AddrMax: addrMax, AddrWindow: 15 * time.Minute, AddrLock: 15 * time.Minute, MaxKeys: 1000}
}

func TestLimiterLocksUserThenReleases(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(3, 100), c.now)
	for i := range 2 {
		if l.fail("alice", "198.51.100.1") {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	if !l.fail("alice", "198.51.100.2") {
		t.Fatal("third failure (any address) did not lock the account")
	}
	if w := l.locked("alice", "203.0.113.9"); w != 5*time.Minute {
		t.Fatalf("alice locked for %v", w)
	}
	if w := l.locked("bob", "198.51.100.1"); w != 0 {
		t.Fatalf("bob locked for %v", w)
	}
	c.add(5*time.Minute + time.Second)
	if w := l.locked("alice", "198.51.100.1"); w != 0 {
		t.Fatalf("still locked after the lock: %v", w)
	}
}

func TestLimiterLocksAddressAcrossNames(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(100, 4), c.now)
	for i := range 4 {
		l.fail("user"+string(rune('a'+i)), "2001:db8:1:2::1")
	}
	// Another address in the same /64, trying a fresh name.
	if w := l.locked("fresh", "2001:db8:1:2::ffff"); w != 15*time.Minute {
		t.Fatalf("spraying /64 locked for %v", w)
	}
	if w := l.locked("fresh", "2001:db8:1:3::1"); w != 0 {
		t.Fatalf("neighbouring /64 locked for %v", w)
	}
	// A success resets the name but not the address.
	l.success("usera")
	if w := l.locked("usera", "2001:db8:1:2::1"); w == 0 {
		t.Fatal("success unlocked the address")
	}
}

func TestLimiterWindowExpires(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(3, 100), c.now)
	l.fail("alice", "a")
	l.fail("alice", "a")
	c.add(16 * time.Minute)
	if l.fail("alice", "a") {
		t.Fatal("failures from an old window counted")
	}
	l.sweep()
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := newClock()
	l := newLimiter(limits(5, 5), c.now)
	for i := range 5000 {
		c.add(time.Millisecond)
		l.fail("n"+time.Duration(i).String(), "10.0.0.1")
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
