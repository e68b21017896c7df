package alerts

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestDefaultRulesValidAndInStepWithDeploy(t *testing.T) {
	if _, err := ParseRules(DefaultRules); err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	b, err := os.ReadFile("../deploy/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, DefaultRules) {
		t.Fatal("deploy/rules.json and alerts/default_rules.json differ: copy one onto the other")
	}
}

func TestBadRuleSetsNameRuleAndProblem(t *testing.T) {
	base := string(DefaultRules)
	for _, c := range []struct{ name, doc, want string }{
		{"not json", `{"rules":`, "(document)"},
		{"unknown field", strings.Replace(base, `"hold": "5m"`, `"hold": "5m", "hodl": "1m"`, 1), "unknown field"},
		{"bad duration", strings.Replace(base, `"hold": "5m"`, `"hold": "five minutes"`, 1), "duration"},
		{"bad severity", strings.Replace(base, `"severity": "moderate"`, `"severity": "catastrophic"`, 1), `rule "congestion": severity`},
		{"bad event", strings.Replace(base, `"events": ["accident"]`, `"events": ["explosion"]`, 1), `rule "camera-accident": events: "explosion"`},
		{"duplicate id", strings.Replace(base, `"id": "camera-fire"`, `"id": "camera-accident"`, 1), "id used twice"},
		{"bad field", strings.Replace(base, `"field": "speed_kmh"`, `"field": "spede"`, 1), `rule "congestion": where: field "spede"`},
		{"count too small", strings.Replace(base, `"count": 3`, `"count": 1`, 1), `rule "crowd-cluster": count`},
		{"missing priority", strings.Replace(base, `"5": "minor"}`, `"6": "minor"}`, 1), `priority 5`},
		{"bad type", strings.Replace(base, `"type": "silence"`, `"type": "quiet"`, 1), `rule "device-offline": type "quiet"`},
		{"bad webhook", strings.Replace(base, `"min_severity": "severe"`, `"min_severity": "severe", "webhook_url": "ftp://x"`, 1), `rule "notify": webhook_url`},
		{"no rules", `{"rules": [], "escalation": {"after": {}}, "notify": {}}`, "no rules"},
	} {
		_, err := ParseRules([]byte(c.doc))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
	}
}
