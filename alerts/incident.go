package alerts

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Incident statuses (CONTRACT section 2).
const (
	StatusNew          = "new"
	StatusAcknowledged = "acknowledged"
	StatusDispatched   = "dispatched"
	StatusResolved     = "resolved"
)

// Resolutions.
var resolutions = []string{"handled", "false_alarm", "duplicate"}

// Point is a GeoJSON Point.
type Point struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

// WardRef names the ward covering an incident.
type WardRef struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Incident is what an operator works (CONTRACT section 2).
type Incident struct {
	ID              string     `json:"id"`
	Kind            string     `json:"kind"`
	Severity        string     `json:"severity"`
	Status          string     `json:"status"`
	Resolution      *string    `json:"resolution,omitempty"`
	Title           string     `json:"title,omitempty"`
	Location        Point      `json:"location"`
	Ward            *WardRef   `json:"ward"`
	OpenedBy        string     `json:"opened_by"`
	AutoResolve     bool       `json:"auto_resolve"`
	OpenedAt        time.Time  `json:"opened_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	AcknowledgedAt  *time.Time `json:"acknowledged_at"`
	DispatchedAt    *time.Time `json:"dispatched_at"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	EscalationLevel int        `json:"escalation_level"`
	Units           []string   `json:"units"`
	// Version moves with what an operator acts on (status, units,
	// resolution, kind, severity), not with evidence or comments: it is
	// what If-Match protects (docs/alerts.md, "Versions"). Order events by
	// their seq, not by this.
	Version       int64 `json:"version"`
	EvidenceCount int   `json:"evidence_count"`
	// Evidence and Timeline, in one incident's answer, are their first
	// pages; the cursors, when set, continue them
	// (GET /incidents/{id}/evidence, /timeline).
	Evidence     []Evidence      `json:"evidence,omitempty"`
	EvidenceNext string          `json:"evidence_next_cursor,omitempty"`
	Timeline     []TimelineEntry `json:"timeline,omitempty"`
	TimelineNext string          `json:"timeline_next_cursor,omitempty"`
}

// TimelineEntry is one change of an incident: who, what, when.
type TimelineEntry struct {
	At     time.Time      `json:"at"`
	Actor  string         `json:"actor"` // user name, "rule:<id>" or "system"
	Action string         `json:"action"`
	Detail map[string]any `json:"detail,omitempty"`
}

// newID makes a URL-safe, time-ordered id: 10 characters of milliseconds
// and 10 random, in Crockford's base 32 (the ULID alphabet).
func newID(t time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [20]byte
	ms := uint64(t.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	var r [8]byte
	rand.Read(r[:])
	x := binary.BigEndian.Uint64(r[:])
	for i := 19; i >= 10; i-- {
		b[i] = alphabet[x&31]
		x >>= 5
	}
	return string(b[:])
}

// validID reports whether s could be an incident id (before any lookup).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
