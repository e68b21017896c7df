package config

import (
	"flag"
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
	os.WriteFile(file, []byte(`{"http_addr":":1","mqtt_topic_prefix":"file","ingest_batch_wait":"5ms"}`), 0o600)

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
	if cfg.IngestBatchWait.Std() != 5*time.Millisecond {
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
