package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Layer names.
const (
	LayerIncidents = "incidents"
	LayerDevices   = "devices"
	LayerUnits     = "units"
	LayerWards     = "wards"
)

// Close codes (RFC 6455 leaves 4000-4999 to applications).
const (
	CloseSlowConsumer = 4000 // resume with since
	CloseSessionEnded = 4001 // sign in again
)

// MaxMessageBytes caps a client's frame: a subscribe is small.
const MaxMessageBytes = 16 << 10

// maxWards caps a subscribe's ward list (Hanoi has 126).
const maxWards = 200

var severities = []string{"minor", "moderate", "severe", "extreme"}

// severityRank orders severities; -1 for an unknown one.
func severityRank(s string) int { return slices.Index(severities, s) }

// Subscribe is a client's subscribe message (CONTRACT section 4).
type Subscribe struct {
	Type        string    `json:"type"`
	Layers      []string  `json:"layers"`
	BBox        []float64 `json:"bbox"`
	Wards       []string  `json:"wards"`
	MinSeverity string    `json:"min_severity"`
	// Since is the seq of the last incident event the client handled;
	// with Epoch, it asks for the events missed instead of a snapshot.
	Since *int64 `json:"since"`
	Epoch string `json:"epoch"`
	// Batch asks for each round of device and unit updates as one
	// "updates" frame instead of one frame per device or unit (an
	// addition to the contract, docs/streams.md).
	Batch bool `json:"batch"`
}

// ErrBadMessage wraps every reason a client message is refused.
var ErrBadMessage = errors.New("bad message")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

// ParseSubscribe decodes and checks a client message. knownWard, if not
// nil, tells a ward code that exists.
func ParseSubscribe(raw []byte, knownWard func(string) bool) (Subscribe, error) {
	var s Subscribe
	if len(raw) > MaxMessageBytes {
		return s, bad("message larger than %d bytes", MaxMessageBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Subscribe{}, bad("not a subscribe message: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return Subscribe{}, bad("one JSON object per frame")
	}
	if s.Type != "subscribe" {
		return Subscribe{}, bad("type: want \"subscribe\", got %q", clip(s.Type))
	}
	if len(s.Layers) == 0 {
		s.Layers = []string{LayerIncidents}
	}
	if len(s.Layers) > 4 {
		return Subscribe{}, bad("layers: at most 4")
	}
	for i, l := range s.Layers {
		if !slices.Contains([]string{LayerIncidents, LayerDevices, LayerUnits, LayerWards}, l) {
			return Subscribe{}, bad("layers: unknown layer %q (want incidents, devices, units, wards)", clip(l))
		}
		if slices.Contains(s.Layers[:i], l) {
			return Subscribe{}, bad("layers: %q twice", l)
		}
	}
	if s.BBox != nil {
		b := s.BBox
		if len(b) != 4 {
			return Subscribe{}, bad("bbox: want [minLon,minLat,maxLon,maxLat]")
		}
		for _, v := range b {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Subscribe{}, bad("bbox: not a number")
			}
		}
		if b[0] < -180 || b[2] > 180 || b[1] < -90 || b[3] > 90 || b[0] >= b[2] || b[1] >= b[3] {
			return Subscribe{}, bad("bbox: want -180 <= minLon < maxLon <= 180 and -90 <= minLat < maxLat <= 90")
		}
	}
	if len(s.Wards) > maxWards {
		return Subscribe{}, bad("wards: at most %d", maxWards)
	}
	for _, w := range s.Wards {
		if w == "" || len(w) > 16 || (knownWard != nil && !knownWard(w)) {
			return Subscribe{}, bad("wards: unknown ward %q", clip(w))
		}
	}
	if s.MinSeverity != "" && severityRank(s.MinSeverity) < 0 {
		return Subscribe{}, bad("min_severity: want minor, moderate, severe or extreme, got %q", clip(s.MinSeverity))
	}
	if s.Since != nil && *s.Since < 0 {
		return Subscribe{}, bad("since: want a seq >= 0")
	}
	if len(s.Epoch) > 64 {
		return Subscribe{}, bad("epoch: too long")
	}
	return s, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Frames the server sends. Incident, device and unit frames are encoded
// by the gateway once per payload (see frame).
type (
	welcomeFrame struct {
		Type        string `json:"type"` // welcome
		User        any    `json:"user"`
		Epoch       string `json:"epoch"`
		Seq         int64  `json:"seq"`
		HeartbeatMS int64  `json:"heartbeat_ms"`
	}
	// The snapshot frame, {"type":"snapshot","seq":N,"epoch":"…",
	// "truncated":true (only when a part was cut at its maximum),
	// "incidents":[…],"devices":[…],"units":[…],"wards":[…]} with an
	// array for each layer subscribed, is written by Gateway.snapshot.
	heartbeatFrame struct {
		Type  string `json:"type"` // heartbeat
		Seq   int64  `json:"seq"`
		Epoch string `json:"epoch"`
		At    string `json:"at"`
	}
	resetFrame struct {
		Type   string `json:"type"` // reset
		Reason string `json:"reason"`
	}
	statusFrame struct {
		Type    string `json:"type"` // status
		Source  string `json:"source"`
		OK      bool   `json:"ok"`
		Message string `json:"message,omitempty"`
	}
	errorFrame struct {
		Type    string `json:"type"` // error
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	wardsFrame struct {
		Type  string        `json:"type"` // wards
		Wards []wardSummary `json:"wards"`
	}
)

// wardSummary is one ward at city zoom.
type wardSummary struct {
	Code      string         `json:"code"`
	Name      string         `json:"name"`
	Incidents map[string]int `json:"incidents"`
	Devices   struct {
		Online  int `json:"online"`
		Offline int `json:"offline"`
	} `json:"devices"`
}
