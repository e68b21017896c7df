package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// The ingest-hardening settings: defaults valid, environment and flags
// read, bad values refused with the setting named.
func TestIngestHardeningSettings(t *testing.T) {
	c, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--require-registered-devices", "true", "--units-max", "50"},
		env(map[string]string{"IOC_REJECTS_MAX_AGE": "48h", "IOC_UNIT_EXPIRY": "2h"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.RequireRegisteredDevices || c.UnitsMax != 50 || c.RejectsMaxAge.Std() != 48*time.Hour || c.UnitExpiry.Std() != 2*time.Hour {
		t.Errorf("settings not read: %+v", c)
	}
	if d := Default(); d.RequireRegisteredDevices || d.IngestMaxHeldBytes != 64<<20 || d.RejectsMaxRows != 1_000_000 {
		t.Errorf("defaults: %+v", d)
	}
	for key, v := range map[string]string{
		"IOC_REQUIRE_REGISTERED_DEVICES": "maybe",
		"IOC_INGEST_MAX_HELD_BYTES":      "1000",
		"IOC_DEVICE_STATE_MAX":           "5",
		"IOC_DEVICE_STATE_TTL":           "1s",
		"IOC_UNITS_MAX":                  "0",
		"IOC_UNIT_EXPIRY":                "1s",
		"IOC_REJECTS_MAX_AGE":            "1m",
		"IOC_REJECTS_MAX_ROWS":           "-1",
		"IOC_REJECTS_PRUNE_INTERVAL":     "0s",
	} {
		_, err := Load(flag.NewFlagSet("t", flag.ContinueOnError), nil, env(map[string]string{key: v}))
		want := strings.ToLower(strings.TrimPrefix(key, "IOC_"))
		if err == nil || !(strings.Contains(err.Error(), want) || strings.Contains(err.Error(), key)) {
			t.Errorf("%s=%s: err = %v, want mention of %s", key, v, err, want)
		}
	}
}
