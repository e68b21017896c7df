package config

import (
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	os.WriteFile(file, []byte(`{"http_addr":":1","mqtt_topic_prefix":"file","ingest_batch_wait":"7ms"}`), 0o600)

	cfg, err := Load(flag.NewFlagSet("t", flag.ContinueOnError),
		[]string{"--config", file, "--mqtt-topic-prefix", "flag", "--http-addr", ":2"},
		env(map[string]string{"IOC_HTTP_ADDR": ":3"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":3" {
		t.Errorf("env should win over flag and file: http_addr = %q", cfg.HTTPAddr)
	}
	if cfg.MQTTTopicPrefix != "flag" {
		t.Errorf("flag should win over file: prefix = %q", cfg.MQTTTopicPrefix)
	}
	if cfg.IngestBatchWait.Std() != 7*time.Millisecond { // not the default (20ms)
		t.Errorf("file value lost: batch wait = %v", cfg.IngestBatchWait)
	}
	if cfg.DatabaseURL != Default().DatabaseURL {
		t.Errorf("default lost: %q", cfg.DatabaseURL)
	}
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "u.json")
	os.WriteFile(unknown, []byte(`{"http_adr":":1"}`), 0o600)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown file key", []string{"--config", unknown}, nil, `unknown field "http_adr"`},
		{"bad database url", nil, map[string]string{"IOC_DATABASE_URL": "mysql://x"}, "database_url"},
		{"bad mqtt url", []string{"--mqtt-url", "localhost"}, nil, "mqtt_url"},
		{"wildcard prefix", nil, map[string]string{"IOC_MQTT_TOPIC_PREFIX": "city/#"}, "mqtt_topic_prefix"},
		{"bad duration", nil, map[string]string{"IOC_LATE_WINDOW": "7days"}, "IOC_LATE_WINDOW"},
		{"bad number", []string{"--ingest-buffer", "lots"}, nil, "--ingest-buffer"},
		{"buffer below batch", nil, map[string]string{"IOC_INGEST_BUFFER": "10"}, "ingest_buffer"},
		{"missing areas file", nil, map[string]string{"IOC_AREAS_FILE": "/nonexistent.geojson"}, "areas_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), c.args, env(c.env))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.MQTTURL = "tcp://ioc:s3cret@broker:1883"
	if s := c.Redacted(); strings.Contains(s, "s3cret") {
		t.Fatalf("password leaked: %s", s)
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"postgres://ioc:s3cret@db:5432/ioc?sslmode=require", "postgres://ioc:xxxxx@db:5432/ioc?sslmode=require"},
		{"postgres://ioc@db/ioc?password=s3cret&sslmode=require", "postgres://ioc@db/ioc?password=xxxxx&sslmode=require"},
		{"postgres://db/ioc?sslpassword=s3cret&user=ioc", "postgres://db/ioc?sslpassword=xxxxx&user=ioc"},
		{"host=db user=ioc password=s3cret sslmode=require", "host=db user=ioc password=xxxxx sslmode=require"},
		{"host=db password='s3 cret' user=ioc", "host=db password=xxxxx user=ioc"},
		{"redis://:s3cret@cache:6379/0", "redis://:xxxxx@cache:6379/0"},
		{"redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=xxxxx"},
		{"rediss://default:s3cret@cache:6380", "rediss://default:xxxxx@cache:6380"},
		{"ssl://iocd:s3cret@broker:8884", "ssl://iocd:xxxxx@broker:8884"},
		{"tcp://127.0.0.1:1883", "tcp://127.0.0.1:1883"},
		{"https://hooks.example.vn/services/T0/B0/s3cretToken", "https://hooks.example.vn/services/xxxxx"},
		{"https://hooks.example.vn/notify?token=s3cret&room=ioc", "https://hooks.example.vn/notify?room=ioc&token=xxxxx"},
		{"https://hooks.example.vn/s3cretTokenLongerThanTwenty", "https://hooks.example.vn/xxxxx"},
		{"https://s3cret@hooks.example.vn/notify", "https://xxxxx@hooks.example.vn/notify"},
		{"https://hooks.example.vn/notify#s3cret", "https://hooks.example.vn/notify#xxxxx"},
		{"http://alerts.local/notify", "http://alerts.local/notify"},
		{"postgres://ioc:s3cret@db:bad port/ioc", "postgres://xxxxx (not a valid URL)"},
		{"redis://u:s3cret@cache:x%zz/0", "redis://xxxxx (not a valid URL)"},
		{"https://h/x?api_key=s3cret&a=%zz", "https://h/x?xxxxx"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(Redact(c.in), "s3cret") || strings.Contains(Redact(c.in), "s3 cret") {
			t.Errorf("Redact(%q) leaks", c.in)
		}
	}
}

func TestScrubAndCheckconfigOutput(t *testing.T) {
	c := Default()
	c.DatabaseURL = "postgres://ioc@db/ioc?password=dbS3cret"
	c.RedisURL = "redis://:redisS3cret@cache:6379/0"
	c.MQTTURL = "ssl://iocd:mqttS3cret@broker:8884"
	c.WebhookURL = "https://hooks.example.vn/services/T0/hookS3cret"
	out := c.Redacted()
	for _, s := range []string{"dbS3cret", "redisS3cret", "mqttS3cret", "hookS3cret"} {
		if strings.Contains(out, s) {
			t.Errorf("checkconfig output leaks %s: %s", s, out)
		}
	}
	msg := `connect postgres://ioc@db/ioc?password=dbS3cret: failed; auth "mqttS3cret" refused; url ` +
		url.QueryEscape("redisS3cret") + "; post hookS3cret"
	if got := c.Scrub(msg); strings.Contains(got, "S3cret") {
		t.Errorf("Scrub left a secret: %s", got)
	}
}

func TestValidateRedactsBadURLs(t *testing.T) {
	for k, v := range map[string]string{
		"IOC_DATABASE_URL": "mysql://ioc:s3cret@db/ioc?password=s3cret",
		"IOC_REDIS_URL":    "redis://u:s3cret@cache:bad/0",
		"IOC_MQTT_URL":     "localhost?password=s3cret",
		"IOC_WEBHOOK_URL":  "ftp://hooks/T/s3cret",
	} {
		_, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, env(map[string]string{k: v}))
		if err == nil {
			t.Errorf("%s=%s accepted", k, v)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the secret: %v", k, err)
		}
	}
}

func TestMetricsAddrLoopbackByDefault(t *testing.T) {
	load := func(e map[string]string) (Config, error) {
		return Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, env(e))
	}
	for addr, want := range map[string]string{":9090": "127.0.0.1:9090", "127.0.0.1:9090": "127.0.0.1:9090", "[::1]:9090": "[::1]:9090", "localhost:9090": "localhost:9090"} {
		c, err := load(map[string]string{"IOC_METRICS_ADDR": addr})
		if err != nil || c.MetricsAddr != want {
			t.Errorf("metrics_addr %q: %q, %v; want %q", addr, c.MetricsAddr, err, want)
		}
	}
	for _, addr := range []string{"0.0.0.0:9090", "10.1.2.3:9090", "[::]:9090", "metrics.internal:9090"} {
		if _, err := load(map[string]string{"IOC_METRICS_ADDR": addr}); err == nil || !strings.Contains(err.Error(), "metrics_allow_remote") {
			t.Errorf("non-loopback metrics_addr %q: %v", addr, err)
		}
		if c, err := load(map[string]string{"IOC_METRICS_ADDR": addr, "IOC_METRICS_ALLOW_REMOTE": "true"}); err != nil || c.MetricsAddr != addr {
			t.Errorf("allowed non-loopback metrics_addr %q: %q %v", addr, c.MetricsAddr, err)
		}
	}
}

func TestAuthSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	os.WriteFile(file, []byte(`{"trusted_proxies":["10.0.0.0/8","192.0.2.1"],"allowed_origins":["https://ioc.hanoi.gov.vn"],"session_ttl":"8h"}`), 0o600)
	c, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--config", file, "--login-account-free", "3"},
		env(map[string]string{"IOC_ALLOWED_ORIGINS": "https://a.example, https://b.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TrustedProxies, " ") != "10.0.0.0/8 192.0.2.1" || strings.Join(c.AllowedOrigins, " ") != "https://a.example https://b.example" ||
		c.SessionTTL.Std() != 8*time.Hour || c.LoginAccountFree != 3 {
		t.Fatalf("auth settings %+v", c)
	}
	for k, v := range map[string]string{
		"IOC_TRUSTED_PROXIES": "10.0.0.0/33", "IOC_ALLOWED_ORIGINS": "ioc.hanoi.gov.vn", "IOC_HASH_WAIT": "0s",
		"IOC_LOGIN_ACCOUNT_FREE": "0", "IOC_SESSION_TTL": "1s", "IOC_METRICS_ALLOW_REMOTE": "maybe",
	} {
		if _, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, env(map[string]string{k: v})); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}

// Redact sees whatever an operator types: it never panics, and a URL it
// keeps carries no password but the placeholder.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"postgres://u:p@h/db?password=x", "redis://:p@h:6379/0", "host=h password='a b'",
		"https://h/a/b?token=t#f", "ssl://u:p@h:8884", "x://%zz", "://", "postgres://u:p@[::1]:5432/db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := Redact(raw)
		if !strings.Contains(raw, "://") {
			return
		}
		u, err := url.Parse(out)
		if err != nil || u.User == nil {
			return
		}
		if p, ok := u.User.Password(); ok && p != Hidden {
			t.Fatalf("Redact(%q) = %q keeps password %q", raw, out, p)
		}
	})
}
