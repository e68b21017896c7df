package auth

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
	"ioc/db/dbtest"
)

func testLogger() *slog.Logger {
	if os.Getenv("IOC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type env struct {
	t    *testing.T
	pool *pgxpool.Pool
	sec  *Service
	h    http.Handler
	acks int
}

func newEnv(t *testing.T, lim LoginLimits) *env {
	t.Helper()
	return newEnvConfig(t, Config{Login: lim})
}

// newEnvConfig: a service with cfg (fast hashing unless cfg.Hash is set)
// on its own database.
func newEnvConfig(t *testing.T, cfg Config) *env {
	t.Helper()
	pool, _ := dbtest.New(t)
	if cfg.Hash == (HashParams{}) {
		cfg.Hash = fastHash
	}
	sec, err := New(cfg, pool, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, sec: sec}
	srv := api.New(":0", testLogger())
	// Stand-ins for domain routes, to exercise the guard and CSRF checks.
	srv.Handle("POST", "/api/v1/incidents/{id}/ack", ActIncidentsAck, func(w http.ResponseWriter, r *http.Request) {
		e.acks++
		w.WriteHeader(http.StatusNoContent)
	})
	srv.Handle("GET", "/ws", ActWSSubscribe, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	sec.Install(srv)
	e.h = srv.Handler()
	return e
}

type reqOpt func(*http.Request)

func bearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func cookie(tok string) reqOpt {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "ioc_session", Value: tok}) }
}
func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func from(addr string) reqOpt {
	return func(r *http.Request) { r.RemoteAddr = net.JoinHostPort(addr, "40000") }
}
func xhr() reqOpt { return header("X-Requested-With", "XMLHttpRequest") }

func (e *env) do(method, path string, body any, opts ...reqOpt) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "192.0.2.10:40000"
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) addUser(name, role string, wards ...string) {
	e.t.Helper()
	if _, err := e.sec.Store.AddUser(context.Background(), NewUser{Name: name, Role: role, Wards: wards, Password: pw(name)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) login(name string, opts ...reqOpt) string {
	e.t.Helper()
	w := e.do("POST", "/api/v1/login", map[string]string{"name": name, "password": pw(name)}, opts...)
	if w.Code != 200 {
		e.t.Fatalf("login %s: %d %s", name, w.Code, w.Body)
	}
	var a loginAnswer
	json.Unmarshal(w.Body.Bytes(), &a)
	return a.Token
}

func (e *env) audit(action string) []Entry {
	e.t.Helper()
	es, err := e.sec.Auditor.List(context.Background(), AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if code != "" {
		var b api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code != code {
			t.Fatalf("error code %q, want %q: %s", b.Error.Code, code, w.Body)
		}
	}
}

func TestLoginMeLogout(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("alice", RoleOperator, "00004", "00008")

	w := e.do("POST", "/api/v1/login", map[string]string{"name": "Alice", "password": pw("alice")})
	wantStatus(t, w, 200, "")
	var a loginAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Token, "iocs_") || a.User.Name != "alice" || a.User.Role != RoleOperator ||
		strings.Join(a.User.Wards, ",") != "00004,00008" || time.Until(a.ExpiresAt) < 11*time.Hour {
		t.Fatalf("login answer %+v", a)
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Value != a.Token || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Secure {
		t.Fatalf("cookie %+v", c)
	}
	// Behind TLS the cookie is Secure.
	w = e.do("POST", "/api/v1/login", map[string]string{"name": "alice", "password": pw("alice")}, header("X-Forwarded-Proto", "https"))
	if c := w.Result().Cookies(); len(c) != 1 || !c[0].Secure {
		t.Fatalf("cookie over https %+v", c)
	}
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over https")
	}
	// The hash, not the token, is stored.
	if n := e.count(`SELECT count(*) FROM sessions WHERE token_hash = $1`, tokenHash(a.Token)); n != 1 {
		t.Fatalf("sessions with the token's hash: %d", n)
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE position($1::bytea in token_hash) > 0`, []byte(a.Token)); n != 0 {
		t.Fatal("token stored in clear")
	}

	for _, o := range []reqOpt{bearer(a.Token), cookie(a.Token)} {
		w = e.do("GET", "/api/v1/me", nil, o)
		wantStatus(t, w, 200, "")
		var me meAnswer
		json.Unmarshal(w.Body.Bytes(), &me)
		if me.Name != "alice" || me.Role != RoleOperator || me.Via != "session" || len(me.Wards) != 2 {
			t.Fatalf("me %+v", me)
		}
		if strings.Contains(strings.Join(me.Actions, " "), ActIncidentsDispatch) || !strings.Contains(strings.Join(me.Actions, " "), ActIncidentsAck) {
			t.Fatalf("operator's actions %v", me.Actions)
		}
	}

	wantStatus(t, e.do("POST", "/api/v1/logout", nil, bearer(a.Token)), 204, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(a.Token)), 401, "unauthenticated")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, cookie(a.Token)), 401, "unauthenticated")

	if got := len(e.audit(AuditLogin)); got != 2 {
		t.Errorf("login audit entries: %d", got)
	}
	lo := e.audit(AuditLogout)
	if len(lo) != 1 || lo[0].Actor != "alice" || lo[0].Remote != "192.0.2.10" || lo[0].Role != RoleOperator {
		t.Errorf("logout audit %+v", lo)
	}
}

func TestLoginWrongPasswordThenDelay(t *testing.T) {
	e := newEnv(t, LoginLimits{AccountFree: 3, AccountDelay: time.Minute, AccountMaxDelay: time.Hour, AddrMax: 6, Window: time.Hour})
	e.addUser("bob", RoleDispatcher)
	bad := map[string]string{"name": "bob", "password": "not-his-password"}
	for range 3 {
		wantStatus(t, e.do("POST", "/api/v1/login", bad), 401, "invalid_credentials")
	}
	// Delayed: even the right password, from anywhere, gets 429 with
	// Retry-After, without its password being checked (no oracle).
	checks := e.sec.Store.checks.Load()
	w := e.do("POST", "/api/v1/login", map[string]string{"name": "bob", "password": pw("bob")}, from("198.51.100.7"))
	wantStatus(t, w, 429, "locked_out")
	if ra := w.Header().Get("Retry-After"); ra != "60" {
		t.Fatalf("Retry-After %q, want 60", ra)
	}
	if e.sec.Store.checks.Load() != checks {
		t.Fatal("a delayed attempt had its password checked")
	}
	// Unknown names answer exactly like wrong passwords.
	w = e.do("POST", "/api/v1/login", map[string]string{"name": "nobody", "password": "whatever-password"}, from("198.51.100.8"))
	wantStatus(t, w, 401, "invalid_credentials")

	// The address 192.0.2.10 has 3 failures; 3 more on other names use up
	// its free attempts, yet an account with no failures still gets in.
	for _, n := range []string{"carol", "dave", "erin"} {
		wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": n, "password": "guess-guess-guess"}), 401, "invalid_credentials")
	}
	e.addUser("frank", RoleAnalyst)
	e.login("frank")
	// carol already failed once: from this address she must wait.
	wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": "carol", "password": "guess-guess-guess"}), 429, "locked_out")

	failed := e.audit(AuditLoginFailed)
	if len(failed) != 7 {
		t.Fatalf("%d login_failed entries, want 7", len(failed))
	}
	for _, f := range failed {
		if f.Actor != "anonymous" || !strings.HasPrefix(f.Target, "user/") || f.Remote == "" {
			t.Errorf("failed login entry %+v", f)
		}
	}
	if len(e.audit(AuditLoginLocked)) != 2 {
		t.Errorf("login_locked entries: %d", len(e.audit(AuditLoginLocked)))
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions after one successful login", n)
	}
}

func TestDisabledUserCannotLogIn(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("root", RoleAdmin)
	e.addUser("gina", RoleOperator)
	tok := e.login("gina")
	admin := e.login("root")
	wantStatus(t, e.do("PATCH", "/api/v1/users/gina", map[string]any{"disabled": true}, bearer(admin)), 200, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(tok)), 401, "")
	wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": "gina", "password": pw("gina")}), 401, "invalid_credentials")
	f := e.audit(AuditLoginFailed)
	if len(f) != 1 || f[0].Detail == nil || !strings.Contains(fmt.Sprint(string(f[0].Detail.(json.RawMessage))), "disabled") {
		t.Errorf("failed-login entry %+v", f)
	}
}

func TestSessionRevocation(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("root", RoleAdmin)
	e.addUser("hoa", RoleOperator)
	admin := e.login("root")
	ctx := context.Background()

	// Admin ends all of hoa's sessions.
	t1, t2 := e.login("hoa"), e.login("hoa")
	w := e.do("DELETE", "/api/v1/users/hoa/sessions", nil, bearer(admin))
	wantStatus(t, w, 200, "")
	if !strings.Contains(w.Body.String(), `"revoked":2`) {
		t.Fatalf("revoke answer %s", w.Body)
	}
	for _, tok := range []string{t1, t2} {
		wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(tok)), 401, "")
	}

	// A password change ends sessions.
	t3 := e.login("hoa")
	wantStatus(t, e.do("PATCH", "/api/v1/users/hoa", map[string]any{"password": "a-brand-new-secret"}, bearer(admin)), 200, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(t3)), 401, "")
	if len(e.audit(AuditPasswd)) != 1 {
		t.Error("no passwd audit entry")
	}

	// A role change takes effect on the next request (and ends sessions).
	if _, err := e.sec.Store.UpdateUser(ctx, "hoa", UserChange{Password: ptr(pw("hoa"))}); err != nil {
		t.Fatal(err)
	}
	t4 := e.login("hoa")
	wantStatus(t, e.do("POST", "/api/v1/incidents/1/ack", nil, bearer(t4)), 204, "")
	wantStatus(t, e.do("PATCH", "/api/v1/users/hoa", map[string]any{"role": "analyst"}, bearer(admin)), 200, "")
	wantStatus(t, e.do("POST", "/api/v1/incidents/1/ack", nil, bearer(t4)), 401, "")

	// Expiry.
	t5 := e.login("hoa")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(t5)), 200, "")
	if _, err := e.pool.Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, tokenHash(t5)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(t5)), 401, "")
	// Cleanup removes long-ended sessions.
	if _, err := e.sec.Store.DeleteOldSessions(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.name = 'hoa'`); n != 0 {
		t.Errorf("%d of hoa's ended sessions left", n)
	}

	// Own password change: wrong current refused; right one ends sessions.
	e.sec.Store.UpdateUser(ctx, "hoa", UserChange{Password: ptr(pw("hoa"))})
	t6 := e.login("hoa")
	wantStatus(t, e.do("POST", "/api/v1/me/password", map[string]string{"current": "wrong-wrong-wrong", "new": "another-new-secret"}, bearer(t6)), 403, "wrong_password")
	wantStatus(t, e.do("POST", "/api/v1/me/password", map[string]string{"current": pw("hoa"), "new": "short"}, bearer(t6)), 400, "bad_parameter")
	wantStatus(t, e.do("POST", "/api/v1/me/password", map[string]string{"current": pw("hoa"), "new": "another-new-secret"}, bearer(t6)), 204, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(t6)), 401, "")
	wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": "hoa", "password": "another-new-secret"}), 200, "")

	// Garbage and foreign tokens.
	for _, tok := range []string{"", "iocs_", "iocs_AAAA", "ioct_nope", "x", strings.Repeat("iocs_a", 100), t1 + "x"} {
		wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(tok)), 401, "unauthenticated")
	}
	wantStatus(t, e.do("GET", "/api/v1/me", nil, header("Authorization", "Basic "+admin)), 401, "")
}

func pw(name string) string { return "password-" + hex.EncodeToString([]byte(name)) }

func ptr[T any](v T) *T { return &v }

func TestCSRFAndHeaders(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("ivy", RoleOperator)
	tok := e.login("ivy")

	// Cookie without the custom header: refused before the handler.
	wantStatus(t, e.do("POST", "/api/v1/incidents/7/ack", nil, cookie(tok)), 403, "csrf")
	wantStatus(t, e.do("POST", "/api/v1/logout", nil, cookie(tok)), 403, "csrf")
	// From another site's page, even with the header.
	wantStatus(t, e.do("POST", "/api/v1/incidents/7/ack", nil, cookie(tok), xhr(), header("Origin", "https://evil.example")), 403, "csrf")
	if e.acks != 0 {
		t.Fatalf("handler ran %d times for refused requests", e.acks)
	}
	// Same-origin dashboard request passes.
	wantStatus(t, e.do("POST", "/api/v1/incidents/7/ack", nil, cookie(tok), xhr(), header("Origin", "http://example.com")), 204, "")
	// Bearer clients need no header; a safe method needs none either.
	wantStatus(t, e.do("POST", "/api/v1/incidents/7/ack", nil, bearer(tok)), 204, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, cookie(tok)), 200, "")
	// Login from another site (login CSRF).
	wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": "ivy", "password": pw("ivy")}, header("Origin", "https://evil.example")), 403, "csrf")
	// Websocket handshake carrying the cookie from another site.
	wsFrom := func(origin string) *httptest.ResponseRecorder {
		return e.do("GET", "/ws", nil, cookie(tok), header("Upgrade", "websocket"), header("Connection", "Upgrade"), header("Origin", origin))
	}
	wantStatus(t, wsFrom("https://evil.example"), 403, "csrf")
	wantStatus(t, wsFrom("http://example.com"), 200, "")
	if len(e.audit(AuditRefused)) < 5 {
		t.Errorf("CSRF refusals audited: %d", len(e.audit(AuditRefused)))
	}

	// Security headers on every answer, errors included.
	for _, w := range []*httptest.ResponseRecorder{e.do("GET", "/api/v1/me", nil, cookie(tok)), e.do("GET", "/api/v1/me", nil), e.do("GET", "/nowhere", nil)} {
		h := w.Header()
		if h.Get("Content-Security-Policy") != ContentSecurityPolicy || !strings.Contains(ContentSecurityPolicy, "frame-ancestors 'none'") ||
			strings.Contains(ContentSecurityPolicy, "unsafe-inline") || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("headers %v", h)
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS over plain HTTP")
		}
	}

	// Header caps.
	many := make([]reqOpt, 0, 120)
	for i := range 120 {
		many = append(many, header(fmt.Sprintf("X-Pad-%d", i), "x"))
	}
	wantStatus(t, e.do("GET", "/api/v1/me", nil, many...), 431, "headers_too_large")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, header("X-Big", strings.Repeat("a", 9000))), 431, "headers_too_large")
}

// hostile bodies: each must get a specific 4xx, change nothing and never
// show database error text.
func TestHostileBodies(t *testing.T) {
	e := newEnv(t, LoginLimits{AccountFree: 1000, AddrMax: 1000, Window: time.Hour, MaxKeys: 1000})
	e.addUser("root", RoleAdmin)
	e.addUser("jan", RoleOperator, "00004")
	admin := e.login("root")
	ctx := context.Background()
	tk, err := e.sec.Store.CreateToken(ctx, NewAPIToken{Name: "cad", Role: RoleDispatcher, CreatedBy: "root"})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var s string
		_ = e.pool.QueryRow(ctx, `SELECT (SELECT string_agg(name||role||array_to_string(wards,',')||disabled||password_hash, ';' ORDER BY id) FROM users)
			|| (SELECT string_agg(name||role||coalesce(revoked_at::text,''), ';' ORDER BY id) FROM api_tokens)`).Scan(&s)
		return s
	}
	before := snapshot()
	if !strings.Contains(before, "jan") || !strings.Contains(before, "cad") {
		t.Fatalf("snapshot %q", before)
	}
	sqli := "x' OR '1'='1'; DROP TABLE users; --"
	huge := strings.Repeat("A", 100_000)
	cases := []struct {
		method, path string
		body         string
		status       int
	}{
		{"POST", "/api/v1/login", `{"name":"` + sqli + `","password":"whatever-it-is"}`, 400},
		{"POST", "/api/v1/login", `{"name":"root","password":"' OR 1=1 --"}`, 401},
		{"POST", "/api/v1/login", `{"name":"root' --","password":"x"}`, 400},
		{"POST", "/api/v1/login", `{"name":1e999,"password":"x"}`, 400},
		{"POST", "/api/v1/login", `{"name":["root"],"password":"x"}`, 400},
		{"POST", "/api/v1/login", `{"name":"root","password":{"$gt":""}}`, 400},
		{"POST", "/api/v1/login", `{"name":"root","password":"` + huge + `"}`, 400},
		{"POST", "/api/v1/login", `{"name":"` + huge + `","password":"x"}`, 400},
		{"POST", "/api/v1/login", `{"name":"root","password":"x","admin":true}`, 400},
		{"POST", "/api/v1/login", `{"name":"root"`, 400},
		{"POST", "/api/v1/login", `{"name":"root","password":"x"} {"x":1}`, 400},
		{"POST", "/api/v1/login", `[]`, 400},
		{"POST", "/api/v1/login", ``, 400},
		{"POST", "/api/v1/login", `null`, 400},
		{"POST", "/api/v1/login", "{\"name\":\"ro\u0000ot\",\"password\":\"x\"}", 400},
		{"POST", "/api/v1/users", `{"name":"` + sqli + `","role":"admin","password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"superuser","password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"admin' --","password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"operator","wards":["00004' OR 1=1"],"password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"operator","wards":"00004","password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"operator","wards":[4],"password":"long-enough-pass"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"operator","password":"short"}`, 400},
		{"POST", "/api/v1/users", `{"name":"eve","role":"operator","password":"` + huge + `"}`, 400},
		{"POST", "/api/v1/users", `{"name":"root","role":"operator","password":"long-enough-pass"}`, 409},
		{"PATCH", "/api/v1/users/jan", `{"role":"god"}`, 400},
		{"PATCH", "/api/v1/users/jan", `{"disabled":"yes"}`, 400},
		{"PATCH", "/api/v1/users/jan", `{"disabled":1}`, 400},
		{"PATCH", "/api/v1/users/jan", `{"wards":["1"]}`, 400},
		{"PATCH", "/api/v1/users/jan", `{}`, 400},
		{"PATCH", "/api/v1/users/jan", `{"name":"root"}`, 400},
		{"PATCH", "/api/v1/users/x'%20OR%20'1'='1", `{"disabled":true}`, 404},
		{"PATCH", "/api/v1/users/root", `{"role":"operator"}`, 409},
		{"PATCH", "/api/v1/users/root", `{"disabled":true}`, 409},
		{"POST", "/api/v1/tokens", `{"name":"bot","role":"admin"}`, 400},
		{"POST", "/api/v1/tokens", `{"name":"bot","role":"analyst","expires_at":"yesterday"}`, 400},
		{"POST", "/api/v1/tokens", `{"name":"bot","role":"analyst","expires_at":"2001-01-01T00:00:00Z"}`, 400},
		{"POST", "/api/v1/tokens", `{"name":"bot","role":"analyst","expires_at":"9999999999999999999999"}`, 400},
		{"POST", "/api/v1/tokens", `{"name":"bot","role":"analyst","expires_at":12}`, 400},
		{"POST", "/api/v1/tokens", `{"name":"cad","role":"analyst"}`, 409},
		{"DELETE", "/api/v1/tokens/99999999999999999999999", "", 400},
		{"DELETE", "/api/v1/tokens/-1", "", 400},
		{"DELETE", "/api/v1/tokens/1%20OR%201=1", "", 400},
		{"DELETE", "/api/v1/tokens/424242", "", 404},
		{"GET", "/api/v1/audit?limit=100000000000000000000", "", 400},
		{"GET", "/api/v1/audit?actor=" + strings.Repeat("a", 300), "", 400},
		{"GET", "/api/v1/audit?action=x'%20OR%201=1--&limit=0", "", 400},
		{"GET", "/api/v1/audit?from=2026-13-45", "", 400},
		{"GET", "/api/v1/audit?cursor=%27%3B--", "", 400},
		{"GET", "/api/v1/audit?where=1", "", 400},
		{"GET", "/api/v1/audit?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "", 400},
	}
	for _, c := range cases {
		w := e.do(c.method, c.path, c.body, bearer(admin))
		if w.Code != c.status {
			t.Errorf("%s %s %.80s: status %d, want %d: %.200s", c.method, c.path, c.body, w.Code, c.status, w.Body)
			continue
		}
		var b api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
			t.Errorf("%s %s: error not in the contract's shape: %.200s", c.method, c.path, w.Body)
		}
		low := strings.ToLower(w.Body.String())
		for _, leak := range []string{"sql", "pgx", "postgres", "syntax error", "violates", "relation", "select ", "insert ", "drop table", "sqlstate"} {
			if strings.Contains(low, leak) {
				t.Errorf("%s %s: answer leaks %q: %.300s", c.method, c.path, leak, w.Body)
			}
		}
		if len(w.Body.String()) > 600 {
			t.Errorf("%s %s: answer of %d bytes echoes input", c.method, c.path, w.Body.Len())
		}
	}
	// Wrong content type and oversized body.
	w := e.do("POST", "/api/v1/users", `name=eve&role=admin`, bearer(admin), header("Content-Type", "application/x-www-form-urlencoded"))
	wantStatus(t, w, 415, "unsupported_media_type")
	w = e.do("POST", "/api/v1/users", `{"name":"eve","role":"operator","password":"`+strings.Repeat("p", 2<<20)+`"}`, bearer(admin))
	wantStatus(t, w, 413, "too_large")

	if after := snapshot(); after != before {
		t.Errorf("hostile requests changed accounts or tokens:\n before %s\n after  %s", before, after)
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions; only the admin's should exist", n)
	}
	_ = tk
}

func TestUsersAndTokensAdmin(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("root", RoleAdmin)
	e.addUser("kim", RoleOperator)
	e.addUser("lan", RoleAdmin, "00004") // ward-scoped admin
	admin, op, scoped := e.login("root"), e.login("kim"), e.login("lan")

	w := e.do("POST", "/api/v1/users", map[string]any{"name": "Minh", "role": "dispatcher", "wards": []string{"00008", "00004"}, "password": pw("minh")}, bearer(admin))
	wantStatus(t, w, 201, "")
	var u User
	json.Unmarshal(w.Body.Bytes(), &u)
	if u.Name != "minh" || u.Role != RoleDispatcher || strings.Join(u.Wards, ",") != "00004,00008" || strings.Contains(w.Body.String(), "argon2") {
		t.Fatalf("created %s", w.Body)
	}
	wantStatus(t, e.do("GET", "/api/v1/users/minh", nil, bearer(admin)), 200, "")
	wantStatus(t, e.do("GET", "/api/v1/users/nobody", nil, bearer(admin)), 404, "not_found")
	w = e.do("GET", "/api/v1/users", nil, bearer(admin))
	wantStatus(t, w, 200, "")
	if !strings.Contains(w.Body.String(), `"items":[`) || strings.Contains(w.Body.String(), "password") {
		t.Fatalf("list %s", w.Body)
	}
	for _, tok := range []string{op, scoped} {
		wantStatus(t, e.do("GET", "/api/v1/users", nil, bearer(tok)), 403, "forbidden")
		wantStatus(t, e.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "analyst"}, bearer(tok)), 403, "forbidden")
		wantStatus(t, e.do("GET", "/api/v1/audit", nil, bearer(tok)), 403, "forbidden")
	}
	w = e.do("PATCH", "/api/v1/users/minh", map[string]any{"wards": []string{}}, bearer(admin))
	wantStatus(t, w, 200, "")
	if !strings.Contains(w.Body.String(), `"wards":[]`) {
		t.Fatalf("wards cleared: %s", w.Body)
	}

	// API token: scoped by role and wards, revocable.
	exp := time.Now().Add(24 * time.Hour).Format(time.RFC3339)
	w = e.do("POST", "/api/v1/tokens", map[string]any{"name": "cad-114", "role": "dispatcher", "wards": []string{"00004"}, "expires_at": exp}, bearer(admin))
	wantStatus(t, w, 201, "")
	var tk APIToken
	json.Unmarshal(w.Body.Bytes(), &tk)
	if !strings.HasPrefix(tk.Token, "ioct_") || tk.ID == 0 || tk.CreatedBy != "root" {
		t.Fatalf("token %s", w.Body)
	}
	w = e.do("GET", "/api/v1/me", nil, bearer(tk.Token))
	wantStatus(t, w, 200, "")
	var me meAnswer
	json.Unmarshal(w.Body.Bytes(), &me)
	if me.Name != "token:cad-114" || me.Via != "token" || me.Role != RoleDispatcher || strings.Join(me.Wards, ",") != "00004" {
		t.Fatalf("token me %+v", me)
	}
	wantStatus(t, e.do("POST", "/api/v1/incidents/1/ack", nil, bearer(tk.Token)), 204, "")
	wantStatus(t, e.do("GET", "/api/v1/users", nil, bearer(tk.Token)), 403, "")
	wantStatus(t, e.do("POST", "/api/v1/logout", nil, bearer(tk.Token)), 400, "not_a_session")
	// A token is never accepted from the cookie.
	wantStatus(t, e.do("GET", "/api/v1/me", nil, cookie(tk.Token)), 401, "")
	w = e.do("GET", "/api/v1/tokens", nil, bearer(admin))
	if !strings.Contains(w.Body.String(), `"cad-114"`) || strings.Contains(w.Body.String(), tk.Token) || !strings.Contains(w.Body.String(), "last_used_at") {
		t.Fatalf("token list %s", w.Body)
	}
	wantStatus(t, e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", tk.ID), nil, bearer(admin)), 204, "")
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(tk.Token)), 401, "")
	wantStatus(t, e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", tk.ID), nil, bearer(admin)), 404, "")
	// Expired token.
	tk2, err := e.sec.Store.CreateToken(context.Background(), NewAPIToken{Name: "old", Role: RoleAnalyst, CreatedBy: "root"})
	if err != nil {
		t.Fatal(err)
	}
	e.pool.Exec(context.Background(), `UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE id = $1`, tk2.ID)
	wantStatus(t, e.do("GET", "/api/v1/me", nil, bearer(tk2.Token)), 401, "")

	// Every change is audited with who, from where and what.
	for _, action := range []string{AuditUserAdd, AuditUserChange, AuditTokenCreate, AuditTokenRevoke} {
		es := e.audit(action)
		if len(es) != 1 || es[0].Actor != "root" || es[0].Role != RoleAdmin || es[0].Remote != "192.0.2.10" || es[0].Target == "" {
			t.Errorf("%s entries %+v", action, es)
		}
	}
	if es := e.audit(AuditTokenCreate); len(es) == 1 && strings.Contains(string(es[0].Detail.(json.RawMessage)), "ioct_") {
		t.Error("token secret in the audit log")
	}
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("root", RoleAdmin)
	admin := e.login("root")
	ctx := context.Background()
	for i := range 5 {
		if err := e.sec.Auditor.Record(ctx, Entry{Actor: "rule:7", Action: ActIncidentsOpen, Target: fmt.Sprintf("incident/%d", i), Detail: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// Keyset paging, newest first.
	var seen []string
	cursor := ""
	for range 10 {
		path := "/api/v1/audit?action=incidents:open&limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		w := e.do("GET", path, nil, bearer(admin))
		wantStatus(t, w, 200, "")
		var page api.List[Entry]
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen = append(seen, it.Target)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "incident/4,incident/3,incident/2,incident/1,incident/0" {
		t.Fatalf("pages: %v", seen)
	}
	w := e.do("GET", "/api/v1/audit?actor=root&action=login&from="+time.Now().Add(-time.Hour).Format(time.RFC3339Nano), nil, bearer(admin))
	if !strings.Contains(w.Body.String(), `"action":"login"`) || strings.Contains(w.Body.String(), "next_cursor") {
		t.Fatalf("filtered %s", w.Body)
	}

	// In a caller's transaction: rolls back with it.
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.sec.Auditor.RecordTx(ctx, tx, Entry{Actor: "kim", Action: ActIncidentsAck, Target: "incident/9"}); err != nil {
			return err
		}
		return fmt.Errorf("the incident change failed")
	})
	if err == nil || e.count(`SELECT count(*) FROM audit_log WHERE target = 'incident/9'`) != 0 {
		t.Fatal("audit entry outlived its rolled-back transaction")
	}

	// Append-only, for every statement that would change history.
	for _, sql := range []string{
		`UPDATE audit_log SET actor = 'someone-else'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		if _, err := e.pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", sql, err)
		}
	}
	if e.count(`SELECT count(*) FROM audit_log WHERE actor = 'rule:7'`) != 5 {
		t.Error("audit rows changed")
	}
}

func TestRefusalsAuditedAndThrottled(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("nam", RoleAnalyst)
	tok := e.login("nam")
	wantStatus(t, e.do("POST", "/api/v1/incidents/1/ack", nil, bearer(tok)), 403, "forbidden")
	es := e.audit(AuditRefused)
	if len(es) != 1 || es[0].Actor != "nam" || es[0].Target != "POST /api/v1/incidents/1/ack" {
		t.Fatalf("refusal %+v", es)
	}
	// A flood from one address writes at most the burst.
	for range 200 {
		e.do("GET", "/api/v1/me", nil, from("203.0.113.66"))
	}
	n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'refused' AND remote_addr = '203.0.113.66'`)
	if n < 5 || n > 10 {
		t.Fatalf("%d refusal entries from a flood of 200", n)
	}
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	ctx := context.Background()
	var out bytes.Buffer
	if err := e.sec.Bootstrap(ctx, "", &out); err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(out.String())
	pw := ""
	for i, f := range fields {
		if f == "password:" && i+1 < len(fields) {
			pw = fields[i+1]
		}
	}
	if len(pw) < 20 {
		t.Fatalf("no one-time password in %q", out.String())
	}
	wantStatus(t, e.do("POST", "/api/v1/login", map[string]string{"name": "admin", "password": pw}), 200, "")
	// Second start: nothing printed, nothing created.
	out.Reset()
	if err := e.sec.Bootstrap(ctx, "", &out); err != nil || out.Len() != 0 {
		t.Fatalf("second bootstrap: %v %q", err, out.String())
	}
	if len(e.audit(AuditBootstrap)) != 1 {
		t.Error("bootstrap not audited once")
	}

	// From a password file, on another empty database.
	e2 := newEnv(t, LoginLimits{})
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from-a-secret-file\n"), 0o600)
	if err := e2.sec.Bootstrap(ctx, file, &out); err != nil || out.Len() != 0 {
		t.Fatalf("file bootstrap: %v %q", err, out.String())
	}
	wantStatus(t, e2.do("POST", "/api/v1/login", map[string]string{"name": "admin", "password": "from-a-secret-file"}), 200, "")
	os.WriteFile(file, []byte("weak\n"), 0o600)
	e3 := newEnv(t, LoginLimits{})
	if err := e3.sec.Bootstrap(ctx, file, &out); err == nil {
		t.Fatal("weak bootstrap password accepted")
	}
}

// With the database away, a valid session cannot be checked: the answer is
// 503 (retry), not 401 (sign in again), and a bad token is still refused
// once the database is back.
func TestDatabaseDownIsNotUnauthenticated(t *testing.T) {
	e := newEnv(t, LoginLimits{})
	e.addUser("alice", RoleOperator)
	w := e.do("POST", "/api/v1/login", map[string]string{"name": "alice", "password": pw("alice")})
	wantStatus(t, w, 200, "")
	var a loginAnswer
	json.Unmarshal(w.Body.Bytes(), &a)

	e.pool.Close() // every query now fails: the database is unreachable
	w = e.do("POST", "/api/v1/incidents/x/ack", nil, bearer(a.Token))
	wantStatus(t, w, 503, "unavailable")
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if e.acks != 0 {
		t.Fatal("the action ran without a checked caller")
	}
	// No credentials at all is still a plain 401, database or not.
	w = e.do("POST", "/api/v1/incidents/x/ack", nil)
	wantStatus(t, w, 401, "unauthenticated")
}
