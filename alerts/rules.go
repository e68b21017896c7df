package alerts

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// DefaultRules is the rule set shipped with the service (a copy of
// deploy/rules.json; a test keeps the two identical).
//
//go:embed default_rules.json
var DefaultRules []byte

// Severities, least to most (CAP 1.2).
var severities = []string{"minor", "moderate", "severe", "extreme"}

func sevRank(s string) int { return slices.Index(severities, s) }

// RuleSet is the declared alerting configuration (deploy/rules.json).
type RuleSet struct {
	// Rules raise incidents from observations.
	Rules []Rule `json:"rules"`
	// Correlation says, per incident kind, which open incidents an
	// observation of that kind joins instead of opening a new one.
	Correlation []Correlation `json:"correlation,omitempty"`
	// JoinRaisesSeverity: evidence that joins an incident with a higher
	// severity than the incident's raises it. Off by default: severity is
	// set by the opening evidence, escalation and people.
	JoinRaisesSeverity bool       `json:"join_raises_severity,omitempty"`
	Escalation         Escalation `json:"escalation"`
	Notify             Notify     `json:"notify"`
}

// Rule is one alert rule. Type selects which fields apply:
//
//	threshold  a predicate on a device's readings held for Hold (congestion)
//	count      Count matching events within RadiusM and Window (crowds)
//	match      one matching event (camera accident, fire, smoke)
//	emergency  an emergency signal: opens or joins at once
//	silence    a device silent for K × its interval (device_offline)
type Rule struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	Disabled     bool   `json:"disabled,omitempty"`
	Source       string `json:"source,omitempty"`        // observation kind: traffic, camera, emergency, unit
	IncidentKind string `json:"incident_kind,omitempty"` // not for emergency (see Types)
	Severity     string `json:"severity,omitempty"`
	Title        string `json:"title,omitempty"`

	// match, count: camera events (any if empty) and a minimum confidence.
	Events        []string   `json:"events,omitempty"`
	MinConfidence float64    `json:"min_confidence,omitempty"`
	Where         []Cond     `json:"where,omitempty"`
	Geofence      *FenceCond `json:"geofence,omitempty"`

	// threshold
	Hold     Duration `json:"hold,omitempty"`
	ClearFor Duration `json:"clear_for,omitempty"` // threshold, silence: how long clear before the incident resolves itself

	// count
	Count   int      `json:"count,omitempty"`
	RadiusM float64  `json:"radius_m,omitempty"`
	Window  Duration `json:"window,omitempty"`

	// emergency: signal type → incident kind; priority → severity.
	Types              map[string]string `json:"types,omitempty"`
	SeverityByPriority map[string]string `json:"severity_by_priority,omitempty"`

	// silence
	DeviceKinds     []string `json:"device_kinds,omitempty"`
	K               float64  `json:"k,omitempty"`
	DefaultInterval Duration `json:"default_interval,omitempty"`
}

// Cond is one comparison on an observation's numeric field.
type Cond struct {
	Field string  `json:"field"` // speed_kmh, occupancy, volume, confidence, count, priority
	Op    string  `json:"op"`    // < <= > >= ==
	Value float64 `json:"value"`
}

// FenceCond restricts a rule to observations inside (or entering, or
// leaving) an active geofence carrying Tag.
type FenceCond struct {
	Tag  string `json:"tag"`
	Mode string `json:"mode"` // inside, enter, exit
}

// Correlation is the joining policy of one incident kind.
type Correlation struct {
	Kind    string   `json:"kind"`
	RadiusM float64  `json:"radius_m"`
	Window  Duration `json:"window"`
	// Joins lists the kinds of open incidents an observation of Kind may
	// join (Kind itself is always included).
	Joins []string `json:"joins,omitempty"`
	// Rank orders kinds by how specific they are: when evidence of a
	// higher rank joins, the incident takes its kind (a congestion joined
	// by a camera accident becomes an accident).
	Rank int `json:"rank,omitempty"`
}

// Escalation of incidents nobody acknowledged.
type Escalation struct {
	// After: per severity, how long an incident may stay new.
	After         map[string]Duration `json:"after"`
	RaiseSeverity bool                `json:"raise_severity"`
	MaxSteps      int                 `json:"max_steps,omitempty"`
}

// Notify configures the outbox.
type Notify struct {
	WebhookURL  string `json:"webhook_url,omitempty"` // IOC_WEBHOOK_URL overrides
	MinSeverity string `json:"min_severity,omitempty"`
	MaxAttempts int    `json:"max_attempts,omitempty"`
}

// Duration is a time.Duration written as "5m" in JSON.
type Duration time.Duration

func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"5m\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// RuleError names the rule (or section) and what is wrong with it.
type RuleError struct {
	Rule    string `json:"rule"`
	Problem string `json:"problem"`
}

func (e RuleError) Error() string { return fmt.Sprintf("rule %q: %s", e.Rule, e.Problem) }

// ValidationError lists every problem of a refused rule set.
type ValidationError struct {
	Problems []RuleError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// ErrInvalidRules is matched by errors.Is for any refused rule set.
var ErrInvalidRules = errors.New("invalid rule set")

func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRules }

// maxRulesBytes caps a rule set document.
const maxRulesBytes = 256 << 10

var (
	ruleIDRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	knownSources   = []string{"traffic", "camera", "emergency", "unit"}
	cameraEvents   = []string{"accident", "fire", "smoke", "crowd", "intrusion", "fight", "wrong_way", "stalled_vehicle", "flooding", "illegal_parking", "camera_tamper"}
	emergencyTypes = []string{"fire", "medical", "police", "rescue", "flood", "panic", "hazmat", "other"}
	condFields     = []string{"speed_kmh", "occupancy", "volume", "confidence", "count", "priority"}
	condOps        = []string{"<", "<=", ">", ">=", "=="}
	kindRe         = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
)

// ParseRules decodes and validates a rule set document. Unknown fields
// are refused, so a misspelt setting is an error, not a silent default.
func ParseRules(b []byte) (*RuleSet, error) {
	if len(b) > maxRulesBytes {
		return nil, &ValidationError{[]RuleError{{"(document)", fmt.Sprintf("larger than %d bytes", maxRulesBytes)}}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rs RuleSet
	if err := dec.Decode(&rs); err != nil {
		return nil, &ValidationError{[]RuleError{{"(document)", "not a rule set: " + err.Error()}}}
	}
	if dec.More() {
		return nil, &ValidationError{[]RuleError{{"(document)", "trailing data after the rule set"}}}
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	return &rs, nil
}

// LoadRulesFile reads a rule set from path; "" or a missing default path
// gives the embedded default.
func LoadRulesFile(path string) (*RuleSet, []byte, error) {
	if path == "" {
		rs, err := ParseRules(DefaultRules)
		return rs, DefaultRules, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("rules file: %w", err)
	}
	rs, err := ParseRules(b)
	if err != nil {
		return nil, nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return rs, b, nil
}

// Validate checks the whole set and reports every problem.
func (rs *RuleSet) Validate() error {
	var ps []RuleError
	bad := func(rule, f string, args ...any) { ps = append(ps, RuleError{rule, fmt.Sprintf(f, args...)}) }
	seen := map[string]bool{}
	if len(rs.Rules) == 0 {
		bad("(rules)", "no rules")
	}
	if len(rs.Rules) > 500 {
		bad("(rules)", "more than 500 rules")
	}
	for i, r := range rs.Rules {
		name := r.ID
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		if !ruleIDRe.MatchString(r.ID) {
			bad(name, "id: want 1-64 of a-z 0-9 _ . - starting with a letter or digit")
		} else if seen[r.ID] {
			bad(name, "id used twice")
		}
		seen[r.ID] = true
		needKind := func() {
			if !kindRe.MatchString(r.IncidentKind) {
				bad(name, "incident_kind: want a lower-case word such as traffic_congestion")
			}
		}
		needSev := func() {
			if sevRank(r.Severity) < 0 {
				bad(name, "severity: want one of %s", strings.Join(severities, ", "))
			}
		}
		checkConds := func() {
			for _, c := range r.Where {
				if !slices.Contains(condFields, c.Field) {
					bad(name, "where: field %q: want one of %s", c.Field, strings.Join(condFields, ", "))
				}
				if !slices.Contains(condOps, c.Op) {
					bad(name, "where: op %q: want one of %s", c.Op, strings.Join(condOps, " "))
				}
				if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
					bad(name, "where: value is not a number")
				}
			}
			if len(r.Where) > 16 {
				bad(name, "where: more than 16 conditions")
			}
		}
		checkEvents := func() {
			for _, e := range r.Events {
				if !slices.Contains(cameraEvents, e) {
					bad(name, "events: %q is not a camera event (%s)", e, strings.Join(cameraEvents, ", "))
				}
			}
			if r.MinConfidence < 0 || r.MinConfidence > 1 {
				bad(name, "min_confidence: want 0 to 1")
			}
		}
		checkSource := func() {
			if r.Source == "" {
				return
			}
			if !slices.Contains(knownSources, r.Source) {
				bad(name, "source %q: want one of %s", r.Source, strings.Join(knownSources, ", "))
			}
			if len(r.Events) > 0 && r.Source != "camera" {
				bad(name, "events apply to camera sources only")
			}
		}
		checkFence := func() {
			if r.Geofence == nil {
				return
			}
			if r.Geofence.Tag == "" || len(r.Geofence.Tag) > 64 {
				bad(name, "geofence.tag: want a tag such as pedestrian_zone")
			}
			if !slices.Contains([]string{"inside", "enter", "exit"}, r.Geofence.Mode) {
				bad(name, "geofence.mode: want inside, enter or exit")
			}
		}
		switch r.Type {
		case "threshold":
			needKind()
			needSev()
			checkSource()
			checkConds()
			checkFence()
			if len(r.Where) == 0 {
				bad(name, "where: a threshold needs at least one condition")
			}
			if r.Hold.Std() < 0 || r.Hold.Std() > 24*time.Hour {
				bad(name, "hold: want 0 to 24h")
			}
			if r.ClearFor.Std() < 0 || r.ClearFor.Std() > 24*time.Hour {
				bad(name, "clear_for: want 0 to 24h")
			}
		case "count":
			needKind()
			needSev()
			checkSource()
			checkEvents()
			checkConds()
			checkFence()
			if r.Count < 2 || r.Count > 10000 {
				bad(name, "count: want 2 to 10000")
			}
			if r.RadiusM <= 0 || r.RadiusM > 50000 || math.IsNaN(r.RadiusM) {
				bad(name, "radius_m: want more than 0 and at most 50000")
			}
			if r.Window.Std() <= 0 || r.Window.Std() > 24*time.Hour {
				bad(name, "window: want more than 0 and at most 24h")
			}
		case "match":
			needKind()
			needSev()
			checkSource()
			checkEvents()
			checkConds()
			checkFence()
		case "emergency":
			if len(r.Types) == 0 {
				bad(name, "types: map each emergency type to an incident kind")
			}
			for t, k := range r.Types {
				if !slices.Contains(emergencyTypes, t) {
					bad(name, "types: %q is not an emergency type (%s)", t, strings.Join(emergencyTypes, ", "))
				}
				if !kindRe.MatchString(k) {
					bad(name, "types: %q maps to %q, not an incident kind", t, k)
				}
			}
			for p := 1; p <= 5; p++ {
				s, ok := r.SeverityByPriority[fmt.Sprint(p)]
				if !ok || sevRank(s) < 0 {
					bad(name, "severity_by_priority: priority %d needs one of %s", p, strings.Join(severities, ", "))
				}
			}
			for p := range r.SeverityByPriority {
				if !slices.Contains([]string{"1", "2", "3", "4", "5"}, p) {
					bad(name, "severity_by_priority: %q is not a priority 1-5", p)
				}
			}
		case "silence":
			needKind()
			needSev()
			if len(r.DeviceKinds) == 0 {
				bad(name, "device_kinds: which kinds of device to watch")
			}
			for _, k := range r.DeviceKinds {
				if !slices.Contains(knownSources, k) {
					bad(name, "device_kinds: %q: want one of %s", k, strings.Join(knownSources, ", "))
				}
			}
			if r.K < 1 || r.K > 1000 {
				bad(name, "k: want 1 to 1000 (times the device's interval)")
			}
			if r.DefaultInterval.Std() < time.Second || r.DefaultInterval.Std() > 24*time.Hour {
				bad(name, "default_interval: want 1s to 24h")
			}
		default:
			bad(name, "type %q: want threshold, count, match, emergency or silence", r.Type)
		}
		if len(r.Title) > 200 {
			bad(name, "title: longer than 200 bytes")
		}
	}
	kinds := map[string]bool{}
	for _, c := range rs.Correlation {
		name := "correlation:" + c.Kind
		if !kindRe.MatchString(c.Kind) {
			bad(name, "kind: want a lower-case incident kind")
		} else if kinds[c.Kind] {
			bad(name, "listed twice")
		}
		kinds[c.Kind] = true
		if c.RadiusM < 0 || c.RadiusM > 50000 || math.IsNaN(c.RadiusM) {
			bad(name, "radius_m: want 0 to 50000")
		}
		if c.Window.Std() < 0 || c.Window.Std() > 7*24*time.Hour {
			bad(name, "window: want 0 to 168h")
		}
		for _, j := range c.Joins {
			if !kindRe.MatchString(j) {
				bad(name, "joins: %q is not an incident kind", j)
			}
		}
	}
	for s, d := range rs.Escalation.After {
		if sevRank(s) < 0 {
			bad("escalation", "after: %q is not a severity", s)
		}
		if d.Std() < time.Second {
			bad("escalation", "after[%s]: want at least 1s", s)
		}
	}
	if rs.Escalation.MaxSteps < 0 || rs.Escalation.MaxSteps > 10 {
		bad("escalation", "max_steps: want 0 to 10")
	}
	if rs.Notify.MinSeverity != "" && sevRank(rs.Notify.MinSeverity) < 0 {
		bad("notify", "min_severity: want one of %s", strings.Join(severities, ", "))
	}
	if u := rs.Notify.WebhookURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("notify", "webhook_url: want an http or https URL")
	}
	if rs.Notify.MaxAttempts < 0 || rs.Notify.MaxAttempts > 100 {
		bad("notify", "max_attempts: want 0 to 100")
	}
	if len(ps) > 0 {
		return &ValidationError{ps}
	}
	return nil
}

// correlationFor returns the joining policy of kind, with defaults for
// kinds the set does not list.
func (rs *RuleSet) correlationFor(kind string) Correlation {
	for _, c := range rs.Correlation {
		if c.Kind == kind {
			if !slices.Contains(c.Joins, kind) {
				c.Joins = append(slices.Clone(c.Joins), kind)
			}
			return c
		}
	}
	return Correlation{Kind: kind, RadiusM: 200, Window: Duration(10 * time.Minute), Joins: []string{kind}}
}

func (rs *RuleSet) rank(kind string) int {
	for _, c := range rs.Correlation {
		if c.Kind == kind {
			return c.Rank
		}
	}
	return 0
}

// maxWindow is how far back the engine must replay observations after a
// restart to rebuild every rule's state.
func (rs *RuleSet) maxWindow() time.Duration {
	w := time.Minute
	for _, r := range rs.Rules {
		w = max(w, r.Hold.Std()+time.Minute, r.Window.Std())
	}
	return w
}

func (rs *RuleSet) rule(id string) *Rule {
	for i := range rs.Rules {
		if rs.Rules[i].ID == id {
			return &rs.Rules[i]
		}
	}
	return nil
}

// contractKinds are the incident kinds CONTRACT section 2 names; a
// deployment's rules may add more.
var contractKinds = []string{"traffic_congestion", "accident", "fire", "medical", "crime", "crowd", "intrusion",
	"flooding", "hazmat", "device_offline", "rescue", "other"}

// IncidentKinds lists, sorted, every kind an incident can have under this
// set: the contract's and those the rules and correlation name. A kind
// filter or a hand-opened incident of any other kind is refused.
func (rs *RuleSet) IncidentKinds() []string {
	out := slices.Clone(contractKinds)
	add := func(k string) {
		if k != "" && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, r := range rs.Rules {
		add(r.IncidentKind)
		for _, k := range r.Types {
			add(k)
		}
	}
	for _, c := range rs.Correlation {
		add(c.Kind)
		for _, k := range c.Joins {
			add(k)
		}
	}
	slices.Sort(out)
	return out
}
