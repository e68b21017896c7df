package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ioc/api"
	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
)

func TestUsersCommand(t *testing.T) {
	pool, dbURL := dbtest.New(t)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := usersCommand(ctx, cfg, args, strings.NewReader(stdin), &out, quietLog())
		return out.String(), err
	}
	if _, err := run("first-admin-secret\n", "add", "--name", "Chief", "--role", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	out, err := run("", "add", "--name", "op7", "--role", "operator", "--wards", "00004,00008", "--generate-password")
	if err != nil || !strings.Contains(out, "shown once") {
		t.Fatalf("generate: %v %q", err, out)
	}
	out, err = run("", "list")
	if err != nil || !strings.Contains(out, "chief") || !strings.Contains(out, "00004,00008") || strings.Contains(out, "argon2") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	store := auth.NewStore(pool, auth.HashParams{}, 1)
	if _, _, err := store.CheckLogin(ctx, "chief", "first-admin-secret"); err != nil {
		t.Fatalf("password from stdin: %v", err)
	}
	if _, err := run("a-second-secret-pw\n", "passwd", "--name", "chief", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CheckLogin(ctx, "chief", "a-second-secret-pw"); err != nil {
		t.Fatalf("after passwd: %v", err)
	}
	if _, err := run("", "disable", "--name", "op7"); err != nil {
		t.Fatal(err)
	}
	// The last city-wide admin cannot be disabled or narrowed.
	if _, err := run("", "disable", "--name", "chief"); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("disabling the last admin: %v", err)
	}
	if _, err := run("", "set", "--name", "chief", "--wards", "00004"); err == nil {
		t.Fatal("scoping the last admin accepted")
	}

	for _, bad := range [][]string{
		{"add", "--name", "x' OR 1=1", "--role", "operator", "--generate-password"},
		{"add", "--name", "eve", "--role", "root", "--generate-password"},
		{"add", "--name", "eve", "--role", "operator"},
		{"add", "--name", "eve", "--role", "operator", "--wards", "4;DROP TABLE users", "--generate-password"},
		{"add", "--name", "chief", "--role", "operator", "--generate-password"},
		{"passwd", "--name", "nobody", "--generate-password"},
		{"frobnicate"},
		{"add", "--bogus"},
	} {
		if _, err := run("", bad...); err == nil {
			t.Errorf("users %q accepted", bad)
		}
	}
	if _, err := run("short\n", "add", "--name", "eve", "--role", "operator", "--password-stdin"); err == nil {
		t.Error("short password accepted")
	}
	es, err := auth.NewAuditor(pool).List(ctx, auth.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, e := range es {
		if strings.HasPrefix(e.Actor, "cli") {
			n++
		}
	}
	if n != 4 { // 2 adds, passwd, disable; nothing for refused commands
		t.Errorf("%d CLI audit entries, want 4: %+v", n, es)
	}
}

// auth.Config knobs come from iocd's configuration, and iocd's defaults
// are auth's own.
func TestAuthDefaults(t *testing.T) {
	ac := authConfig(config.Default())
	if ac.Login.AccountFree != auth.DefaultLoginLimits.AccountFree || ac.Login.AccountDelay != auth.DefaultLoginLimits.AccountDelay ||
		ac.Login.AccountMaxDelay != auth.DefaultLoginLimits.AccountMaxDelay || ac.Login.AddrMax != auth.DefaultLoginLimits.AddrMax || ac.Login.AddrMaxDelay != auth.DefaultLoginLimits.AddrMaxDelay ||
		ac.Login.Window != auth.DefaultLoginLimits.Window || ac.HashWait != auth.DefaultHashWait ||
		ac.SessionTTL != 12*time.Hour || ac.HashConcurrency != 2 {
		t.Fatalf("config.Default and auth's defaults differ: %+v", ac)
	}
	cfg := config.Default()
	cfg.TrustedProxies, cfg.AllowedOrigins = []string{"10.0.0.0/8"}, []string{"https://ioc.hanoi.gov.vn"}
	ac = authConfig(cfg)
	if len(ac.TrustedProxies) != 1 || len(ac.AllowedOrigins) != 1 {
		t.Fatalf("lists not carried: %+v", ac)
	}
}

// trusted_proxies and allowed_origins set in iocd's configuration reach
// the running security layer.
func TestSecuritySettingsReachTheServer(t *testing.T) {
	pool, _ := dbtest.New(t)
	cfg := config.Default()
	cfg.BootstrapAdminPasswordFile = filepath.Join(t.TempDir(), "pw")
	os.WriteFile(cfg.BootstrapAdminPasswordFile, []byte("chief-of-shift-pw\n"), 0o600)
	cfg.TrustedProxies = []string{"10.9.0.0/16"}
	cfg.AllowedOrigins = []string{"https://ioc.hanoi.gov.vn"}
	srv := api.New(":0", quietLog())
	if _, err := setupSecurity(context.Background(), cfg, pool, srv, quietLog()); err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	post := func(peer, xff, origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"name":"nobody","password":"whatever-password"}`))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = peer + ":40000"
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := post("10.9.1.1", "203.0.113.8", "https://ioc.hanoi.gov.vn"); w.Code != 401 {
		t.Fatalf("allowed origin through a trusted proxy: %d %s", w.Code, w.Body)
	}
	if w := post("10.9.1.1", "203.0.113.8", "https://evil.example"); w.Code != 403 {
		t.Fatalf("foreign origin: %d %s", w.Code, w.Body)
	}
	var remote string
	if err := pool.QueryRow(context.Background(), `SELECT remote_addr FROM audit_log WHERE action = 'login_failed' ORDER BY id DESC LIMIT 1`).Scan(&remote); err != nil || remote != "203.0.113.8" {
		t.Fatalf("remote of the failed login: %q %v; want the client behind the proxy", remote, err)
	}
}

// Finding 11: checkconfig, the log and the errors iocd prints hide the
// passwords in the database and Redis URLs (user:password@ and
// ?password=), the broker URL and the webhook token.
func TestCheckconfigLogsAndErrorsHideSecrets(t *testing.T) {
	t.Setenv("IOC_DATABASE_URL", "postgres://ioc@127.0.0.1:1/ioc?password=dbS3cret&connect_timeout=1")
	t.Setenv("IOC_REDIS_URL", "redis://:redisS3cret@127.0.0.1:6379/0")
	t.Setenv("IOC_MQTT_URL", "ssl://iocd:mqttS3cret@broker:8884")
	t.Setenv("IOC_WEBHOOK_URL", "https://hooks.example.vn/services/T0/hookS3cret")
	var out bytes.Buffer
	stdout = &out
	defer func() { stdout = os.Stdout }()
	if err := run([]string{"checkconfig"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "S3cret") || !strings.Contains(out.String(), "127.0.0.1:1") {
		t.Fatalf("checkconfig output:\n%s", out.String())
	}

	cfg, err := config.Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		cfg.LogFormat = format
		var logs bytes.Buffer
		log := newLoggerTo(cfg, &logs)
		log.Error("connect "+cfg.MQTTURL+" failed", "err", fmt.Errorf("dial %s: refused", cfg.DatabaseURL),
			"redis", cfg.RedisURL, "webhook", cfg.WebhookURL)
		if strings.Contains(logs.String(), "S3cret") {
			t.Errorf("%s log leaks: %s", format, logs.String())
		}
	}

	// An error on the way out is scrubbed, and still matches errors.Is.
	base := errors.New("boom")
	err = scrubbed{cfg.Scrub(fmt.Sprintf("open %s: %v", cfg.DatabaseURL, base)), base}
	if strings.Contains(err.Error(), "S3cret") || !errors.Is(err, base) {
		t.Fatalf("scrubbed error %v", err)
	}
	if err := run([]string{"migrate"}); err == nil || strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("migrate against nothing: %v", err)
	}
}

// A metrics_addr off loopback (allowed only with metrics_allow_remote) is
// announced loudly at every start.
func TestRemoteMetricsWarned(t *testing.T) {
	cfg := config.Default()
	for addr, warn := range map[string]bool{"": false, "127.0.0.1:9464": false, "[::1]:9464": false, "localhost:9464": false,
		"10.0.0.5:9464": true, "0.0.0.0:9464": true} {
		cfg.MetricsAddr = addr
		var logs bytes.Buffer
		warnRemoteMetrics(cfg, newLoggerTo(cfg, &logs))
		if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "pprof"); got != warn {
			t.Errorf("metrics_addr %q: warned %v, want %v: %s", addr, got, warn, logs.String())
		}
	}
}
