package alerts

import (
	"encoding/json"
	"errors"
	"testing"
)

// Storing the set in force again (a SIGHUP with the file unchanged) keeps
// its version, so no instance restarts its windows; a real change bumps
// it, and a stale If-Match is refused either way.
func TestSetRulesUnchangedKeepsVersion(t *testing.T) {
	v := newEnv(t, nil)
	raw, v1 := v.e.RulesDocument()
	<-v.e.reload // New's first set
	got, err := v.e.SetRules(v.ctx, raw, 0, "test", nil)
	if err != nil || got != v1 {
		t.Fatalf("same set again: version %d, %v; want %d", got, err, v1)
	}
	if len(v.e.reload) != 0 {
		t.Fatal("the same set again asked the evaluator to reload")
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["rules"] = doc["rules"].([]any)[1:]
	changed, _ := json.Marshal(doc)
	if got, err = v.e.SetRules(v.ctx, changed, v1, "test", nil); err != nil || got != v1+1 {
		t.Fatalf("changed set: version %d, %v; want %d", got, err, v1+1)
	}
	if _, err := v.e.SetRules(v.ctx, changed, v1, "test", nil); !errors.Is(err, ErrRulesConflict) {
		t.Fatalf("stale If-Match: %v, want a version conflict", err)
	}
}
