package auth

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// loginBody is a login request for name with password.
func loginBody(name, password string) map[string]string {
	return map[string]string{"name": name, "password": password}
}

// Finding 1 and 2: 60 wrong passwords for one account sent at once cost at
// most the free attempts' password checks (the attempt is reserved before
// hashing), and afterwards another account's right password from the same
// address still gets in.
func TestParallelWrongPasswordsCostAtMostTheFreeChecks(t *testing.T) {
	// A real (if smaller) argon2 cost, so the requests overlap.
	e := newEnvConfig(t, Config{Hash: HashParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}})
	e.addUser("bob", RoleDispatcher)
	e.addUser("frank", RoleAnalyst)
	const n = 60
	before := e.sec.Store.checks.Load()
	codes := make([]int, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			codes[i] = e.do("POST", "/api/v1/login", loginBody("bob", "not-his-password")).Code
		}()
	}
	start.Done()
	done.Wait()
	checks := e.sec.Store.checks.Load() - before
	byCode := map[int]int{}
	for _, c := range codes {
		byCode[c]++
	}
	t.Logf("%d parallel wrong passwords: %d password checks, answers %v", n, checks, byCode)
	if free := int64(DefaultLoginLimits.AccountFree); checks > free {
		t.Fatalf("%d password checks for %d parallel attempts, want at most %d", checks, n, free)
	}
	if byCode[401] > DefaultLoginLimits.AccountFree || byCode[401]+byCode[429]+byCode[503] != n {
		t.Fatalf("answers %v", byCode)
	}
	// Same address (a control room's NAT), another account, right password.
	e.login("frank")
}

// The wait for a hashing slot is capped: past hash_wait the answer is 503
// with Retry-After, and the attempt is given back (it checked nothing).
func TestHashWaitIsCapped(t *testing.T) {
	e := newEnvConfig(t, Config{HashWait: 50 * time.Millisecond, HashConcurrency: 2, Login: LoginLimits{AccountFree: 1}})
	e.addUser("bob", RoleDispatcher)
	// Both slots taken, as by a flood of sign-ins.
	for range cap(e.sec.Store.hashing) {
		e.sec.Store.hashing <- struct{}{}
	}
	for range 3 {
		t0 := time.Now()
		w := e.do("POST", "/api/v1/login", loginBody("bob", "wrong-password"))
		wantStatus(t, w, 503, "unavailable")
		if w.Header().Get("Retry-After") == "" || time.Since(t0) > 2*time.Second {
			t.Fatalf("busy answer after %v, Retry-After %q", time.Since(t0), w.Header().Get("Retry-After"))
		}
	}
	for range cap(e.sec.Store.hashing) {
		<-e.sec.Store.hashing
	}
	// The busy attempts checked nothing and were given back: bob's one
	// free attempt is still there.
	e.login("bob")
}

// Finding 2: an account under attack is slowed by a delay that grows with
// its failures and is capped (1 min by default), never locked for 15
// minutes; the right password gets in once the delay has passed.
func TestAccountUnderAttackGetsGrowingDelayNotLock(t *testing.T) {
	c := newClock()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return c.now() }
	advance := func(d time.Duration) { mu.Lock(); c.add(d); mu.Unlock() }
	e := newEnvConfig(t, Config{Now: now})
	e.addUser("bob", RoleDispatcher)
	attacker := from("203.0.113.66")
	for range DefaultLoginLimits.AccountFree {
		wantStatus(t, e.do("POST", "/api/v1/login", loginBody("bob", "guess-guess-guess"), attacker), 401, "invalid_credentials")
	}
	var waits []string
	for range 10 {
		w := e.do("POST", "/api/v1/login", loginBody("bob", "guess-guess-guess"), attacker)
		wantStatus(t, w, 429, "locked_out")
		ra := w.Header().Get("Retry-After")
		waits = append(waits, ra)
		d, _ := time.ParseDuration(ra + "s")
		if d > time.Minute {
			t.Fatalf("delay %v past the 1 min cap", d)
		}
		advance(d)
		wantStatus(t, e.do("POST", "/api/v1/login", loginBody("bob", "guess-guess-guess"), attacker), 401, "invalid_credentials")
	}
	if got := strings.Join(waits, ","); got != "1,2,4,8,16,32,60,60,60,60" {
		t.Fatalf("delays %s", got)
	}
	// Bob, from his desk: during the delay he is told how long to wait ...
	w := e.do("POST", "/api/v1/login", loginBody("bob", pw("bob")), from("192.0.2.50"))
	wantStatus(t, w, 429, "locked_out")
	if w.Header().Get("Retry-After") != "60" {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	// ... and a minute later, not 15, he is in.
	advance(time.Minute)
	e.login("bob", from("192.0.2.50"))
}

// Finding 2: X-Forwarded-For is believed only from trusted proxies, and
// the limiter counts the client it names.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	if _, err := New(Config{TrustedProxies: []string{"10.0.0.0/33"}}, nil, testLogger()); err == nil {
		t.Fatal("bad trusted proxy accepted")
	}
	e := newEnvConfig(t, Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ff::1"},
		Login: LoginLimits{AccountFree: 5, AddrMax: 3}})
	xff := func(v string) reqOpt { return header("X-Forwarded-For", v) }
	lastRemote := func() string {
		t.Helper()
		es := e.audit(AuditLoginFailed)
		if len(es) == 0 {
			t.Fatal("no login_failed entry")
		}
		return es[0].Remote
	}
	for _, c := range []struct {
		name string
		opts []reqOpt
		want string
	}{
		{"untrusted peer", []reqOpt{from("198.51.100.9"), xff("203.0.113.1")}, "198.51.100.9"},
		{"trusted proxy", []reqOpt{from("10.1.1.1"), xff("203.0.113.1")}, "203.0.113.1"},
		{"two trusted hops", []reqOpt{from("10.1.1.1"), xff("203.0.113.2, 10.2.2.2")}, "203.0.113.2"},
		{"client-written hops ignored", []reqOpt{from("10.1.1.1"), xff("6.6.6.6, 203.0.113.3")}, "203.0.113.3"},
		{"two headers", []reqOpt{from("10.1.1.1"), xff("6.6.6.6"), func(r *http.Request) { r.Header.Add("X-Forwarded-For", "203.0.113.4") }}, "203.0.113.4"},
		{"garbage hop", []reqOpt{from("10.1.1.1"), xff("not-an-ip")}, "10.1.1.1"},
		{"IPv6 proxy", []reqOpt{from("2001:db8:ff::1"), xff("2001:db8:1::7")}, "2001:db8:1::7"},
		{"IPv6 untrusted", []reqOpt{from("2001:db8:ff::2"), xff("203.0.113.5")}, "2001:db8:ff::2"},
	} {
		e.do("POST", "/api/v1/login", loginBody("nobody"+strings.ReplaceAll(c.name, " ", "-"), "whatever-password"), c.opts...)
		if got := lastRemote(); got != c.want {
			t.Errorf("%s: remote %q, want %q", c.name, got, c.want)
		}
	}

	// Behind the proxy, client A uses up its address's free attempts;
	// client B, behind the same proxy, keeps its own.
	viaA, viaB := []reqOpt{from("10.1.1.1"), xff("203.0.113.100")}, []reqOpt{from("10.1.1.1"), xff("203.0.113.200")}
	for _, n := range []string{"x1", "x2", "x3"} {
		wantStatus(t, e.do("POST", "/api/v1/login", loginBody(n, "guess-guess-guess"), viaA...), 401, "invalid_credentials")
	}
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("typo", "guess-guess-guess"), viaB...), 401, "invalid_credentials")
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("typo", "guess-guess-guess"), viaB...), 401, "invalid_credentials")
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("typo", "guess-guess-guess"), viaA...), 429, "locked_out")

	// An untrusted peer cannot shed its address by writing the header.
	for i, n := range []string{"y1", "y2", "y3"} {
		wantStatus(t, e.do("POST", "/api/v1/login", loginBody(n, "guess-guess-guess"),
			from("198.51.100.77"), xff("203.0.113."+string(rune('1'+i)))), 401, "invalid_credentials")
	}
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("y1", "guess-guess-guess"), from("198.51.100.77"), xff("203.0.113.9")), 429, "locked_out")
}

// Finding 11: a failed sign-in with a name no account has does not store
// what was typed (often a password typed into the name field).
func TestLoginFailedAuditKeepsNoUnknownName(t *testing.T) {
	e := newEnv(t, LoginLimits{AccountFree: 2, AddrMax: 100})
	e.addUser("bob", RoleDispatcher)
	for _, n := range []string{"correct-horse-9", "correct-horse-9", "other.secret"} {
		wantStatus(t, e.do("POST", "/api/v1/login", loginBody(n, "whatever-password")), 401, "invalid_credentials")
	}
	// Refused by the limiter (no password check): also not stored.
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("correct-horse-9", "whatever-password")), 429, "locked_out")
	wantStatus(t, e.do("POST", "/api/v1/login", loginBody("bob", "not-his-password")), 401, "invalid_credentials")

	if n := e.count(`SELECT count(*) FROM audit_log WHERE target || detail::text LIKE '%horse%' OR target || detail::text LIKE '%secret%'`); n != 0 {
		t.Fatalf("%d audit entries keep the typed name", n)
	}
	tags := map[string]int{}
	for _, a := range []string{AuditLoginFailed, AuditLoginLocked} {
		for _, en := range e.audit(a) {
			var d map[string]any
			json.Unmarshal(en.Detail.(json.RawMessage), &d)
			if en.Target == "user/bob" {
				continue
			}
			if en.Target != UnknownUser {
				t.Errorf("%s entry target %q", a, en.Target)
			}
			tag, _ := d["name_tag"].(string)
			if len(tag) != 12 {
				t.Errorf("%s entry without a name tag: %s", a, en.Detail)
			}
			tags[tag]++
		}
	}
	if len(tags) != 2 || tags[e.sec.nameTag("correct-horse-9")] != 3 {
		t.Errorf("name tags %v: repeats of one name should share a tag", tags)
	}
	if got := e.audit(AuditLoginFailed); got[0].Target != "user/bob" {
		t.Errorf("a known account's failure: target %q", got[0].Target)
	}
}
