package alerts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// refFeature and refProps are the structs the GeoJSON export encoded
// through encoding/json before appendFeature: the reference its bytes are
// held to.
type refFeature struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Geometry   Point    `json:"geometry"`
	Properties refProps `json:"properties"`
}

type refProps struct {
	Kind           string     `json:"kind"`
	Severity       string     `json:"severity"`
	Status         string     `json:"status"`
	Resolution     *string    `json:"resolution"`
	Title          string     `json:"title"`
	WardCode       *string    `json:"ward_code"`
	WardName       *string    `json:"ward_name"`
	OpenedBy       string     `json:"opened_by"`
	OpenedAt       time.Time  `json:"opened_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	DispatchedAt   *time.Time `json:"dispatched_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	Units          []string   `json:"units"`
	EvidenceCount  int        `json:"evidence_count"`
	Version        int64      `json:"version"`
}

// refPage is the old Page: one encoded feature per line, comma first.
func refPage(w io.Writer, features *int, items []*Incident) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, x := range items {
		f := refFeature{Type: "Feature", ID: x.ID, Geometry: x.Location, Properties: refProps{
			Kind: x.Kind, Severity: x.Severity, Status: x.Status, Resolution: x.Resolution, Title: x.Title,
			OpenedBy: x.OpenedBy, OpenedAt: x.OpenedAt, UpdatedAt: x.UpdatedAt, AcknowledgedAt: x.AcknowledgedAt,
			DispatchedAt: x.DispatchedAt, ResolvedAt: x.ResolvedAt, Units: x.Units, EvidenceCount: x.EvidenceCount, Version: x.Version,
		}}
		if x.Ward != nil {
			f.Properties.WardCode, f.Properties.WardName = &x.Ward.Code, &x.Ward.Name
		}
		if *features > 0 {
			bw.WriteString(",")
		}
		*features++
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// The hand-written GeoJSON feature is byte for byte what encoding/json
// wrote: Vietnamese and hostile titles, nulls, times in other zones and
// with nanoseconds, units or none, coordinates of every shape.
func TestGeoJSONExportAsEncodingJSON(t *testing.T) {
	hanoiT := time.Date(2026, 12, 2, 16, 4, 5, 123456789, time.FixedZone("ICT", 7*3600))
	utcT := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	res := "false_alarm"
	items := []*Incident{
		{ID: "01JABCDEF", Kind: "fire", Severity: "extreme", Status: "new", Title: "Cháy nhà dân – Phường Ba Đình",
			Location: Point{Type: "Point", Coordinates: [2]float64{105.8412345, 21.0356789}},
			Ward:     &WardRef{Code: "00004", Name: "Phường Ba Đình"}, OpenedBy: "rule:fire", OpenedAt: hanoiT, UpdatedAt: utcT,
			Units: []string{}, EvidenceCount: 3, Version: 1},
		{ID: "x\"y\\z", Kind: "crime", Severity: "minor", Status: "resolved", Resolution: &res,
			Title:    "<script>&\u2028\u2029\x00\x01\x1f\x7f\t\n\r\b\f \xff\xfe tail \U0001F692",
			Location: Point{Type: "Point", Coordinates: [2]float64{0, -0.0000001}}, OpenedBy: "op.lan",
			OpenedAt: utcT, UpdatedAt: hanoiT, AcknowledgedAt: &utcT, DispatchedAt: &hanoiT, ResolvedAt: &utcT,
			Units: []string{"unit-1", "đơn vị \"2\""}, EvidenceCount: 0, Version: 9},
		{ID: "nil-units", Kind: "medical", Severity: "severe", Status: "dispatched", Title: "",
			Location: Point{Type: "Point", Coordinates: [2]float64{1e21, 123456789.125}},
			Ward:     &WardRef{Code: "00008"}, OpenedBy: "", OpenedAt: time.Unix(0, 1).UTC(), UpdatedAt: utcT, Version: math.MaxInt64},
	}
	var want bytes.Buffer
	n := 0
	refPage(&want, &n, items[:1])
	refPage(&want, &n, items[1:])
	var got bytes.Buffer
	g := &GeoJSONExport{}
	if err := g.Page(&got, items[:1]); err != nil {
		t.Fatal(err)
	}
	if err := g.Page(&got, items[1:]); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("appendFeature:\n%s\nencoding/json:\n%s", got.String(), want.String())
	}
	// What encoding/json refuses, so does the export.
	bad := *items[0]
	bad.Location.Coordinates[0] = math.NaN()
	if err := (&GeoJSONExport{}).Page(io.Discard, []*Incident{&bad}); err == nil {
		t.Error("NaN coordinate encoded")
	}
	bad = *items[0]
	bad.OpenedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := (&GeoJSONExport{}).Page(io.Discard, []*Incident{&bad}); err == nil {
		t.Error("year 10000 encoded")
	}
}

// A page larger than the write buffer comes out whole and in order.
func TestGeoJSONExportLongPage(t *testing.T) {
	x := &Incident{ID: "a", Kind: "fire", Severity: "minor", Status: "new", Title: strings.Repeat("Đ", 300),
		Location: Point{Type: "Point", Coordinates: [2]float64{105.8, 21}}, Units: []string{}}
	items := make([]*Incident, 1000)
	for i := range items {
		items[i] = x
	}
	var got, want bytes.Buffer
	n := 0
	refPage(&want, &n, items)
	if err := (&GeoJSONExport{}).Page(&got, items); err != nil || got.String() != want.String() {
		t.Errorf("%d bytes (err %v), want %d", got.Len(), err, want.Len())
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "Phường Hoàn Kiếm", "\"\\/\b\f\n\r\t", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xc3", "<>&", "\U0001F692"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := string(appendJSONString(nil, s)); got != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("%q: got %s, want %s", s, got, want.String())
		}
	})
}

func FuzzAppendJSONFloat(f *testing.F) {
	for _, v := range []float64{0, -0.0, 105.8412345, 21.0356789, 1e-7, -1e-6, 1e20, 1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		got, err := appendJSONFloat(nil, v)
		want, werr := json.Marshal(v)
		if (err != nil) != (werr != nil) || string(got) != string(want) {
			t.Errorf("%v: got %s (%v), want %s (%v)", v, got, err, want, werr)
		}
	})
}
