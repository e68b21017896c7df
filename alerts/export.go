package alerts

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Exports: any incident query as GeoJSON or CSV, streamed a page of List
// at a time, so a million rows take the memory of one page.

// ExportPage is how many incidents an export reads per query.
const ExportPage = 2000

// WardAttribution goes with every export that carries ward names: the
// ward boundaries and names come from OpenStreetMap.
const WardAttribution = "Ward data © OpenStreetMap contributors (ODbL 1.0)"

// Export calls each with every page of the incidents matching f, in List's
// order, until the last page or an error, and returns how many it passed.
// pageCtx gives the context of each page's query (an export outlives any
// one request deadline, page by page).
//
// The next page is read while each writes this one, so PostgreSQL and the
// encoder work at once (two pages in memory, never more); the read ahead
// is cancelled when Export returns.
func (s *Store) Export(pageCtx func() (context.Context, context.CancelFunc), f IncidentFilter, each func([]*Incident) error) (int, error) {
	f.Limit, f.Cursor = ExportPage, ""
	type page struct {
		items []*Incident
		err   error
	}
	pages := make(chan page) // unbuffered: one page read ahead, held by the reader
	done, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pages)
		for {
			ctx, cancel := pageCtx()
			unhook := context.AfterFunc(done, cancel)
			items, next, err := s.List(ctx, f)
			unhook()
			cancel()
			select {
			case pages <- page{items, err}:
			case <-done.Done():
				return
			}
			if err != nil || next == "" {
				return
			}
			f.Cursor = next
		}
	}()
	n := 0
	for p := range pages {
		if p.err != nil {
			return n, p.err
		}
		if err := each(p.items); err != nil {
			return n, err
		}
		n += len(p.items)
	}
	return n, nil
}

// ExportFormat writes an export: its start, each page, its end.
type ExportFormat interface {
	ContentType() string
	Begin(w io.Writer) error
	Page(w io.Writer, items []*Incident) error
	End(w io.Writer) error
}

// CSVExport writes UTF-8 with a byte-order mark (so Excel reads the
// Vietnamese as UTF-8), CRLF line ends, and text cells that a spreadsheet
// would take for a formula prefixed with an apostrophe.
type CSVExport struct{}

var csvHeader = []string{"id", "kind", "severity", "status", "resolution", "title", "lon", "lat", "ward_code", "ward_name",
	"opened_by", "opened_at", "updated_at", "acknowledged_at", "dispatched_at", "resolved_at", "units", "evidence_count", "version"}

func (CSVExport) ContentType() string { return "text/csv; charset=utf-8" }

func (CSVExport) Begin(w io.Writer) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	cw.Write(csvHeader)
	cw.Flush()
	return cw.Error()
}

func (CSVExport) Page(w io.Writer, items []*Incident) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	rec := make([]string, len(csvHeader))
	for _, x := range items {
		code, name := "", ""
		if x.Ward != nil {
			code, name = x.Ward.Code, x.Ward.Name
		}
		res := ""
		if x.Resolution != nil {
			res = *x.Resolution
		}
		rec[0], rec[1], rec[2], rec[3], rec[4], rec[5] = cell(x.ID), cell(x.Kind), cell(x.Severity), cell(x.Status), cell(res), cell(x.Title)
		rec[6] = strconv.FormatFloat(x.Location.Coordinates[0], 'f', -1, 64)
		rec[7] = strconv.FormatFloat(x.Location.Coordinates[1], 'f', -1, 64)
		rec[8], rec[9], rec[10] = cell(code), cell(name), cell(x.OpenedBy)
		rec[11], rec[12] = exportTime(&x.OpenedAt), exportTime(&x.UpdatedAt)
		rec[13], rec[14], rec[15] = exportTime(x.AcknowledgedAt), exportTime(x.DispatchedAt), exportTime(x.ResolvedAt)
		rec[16] = cell(strings.Join(x.Units, " "))
		rec[17], rec[18] = strconv.Itoa(x.EvidenceCount), strconv.FormatInt(x.Version, 10)
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func (CSVExport) End(io.Writer) error { return nil }

// cell guards a text cell against formula injection (OWASP "CSV
// Injection"): a spreadsheet runs a cell starting with = + - @, tab or
// carriage return as a formula, so such a cell gets a leading apostrophe.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// exportTime is RFC 3339 in Hanoi's time ("" for none).
func exportTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.In(hanoi).Format(time.RFC3339)
}

// GeoJSONExport writes one FeatureCollection (RFC 7946) with the
// OpenStreetMap attribution, a Feature per incident, one per line. Use a
// new one per export.
type GeoJSONExport struct{ features int }

func (*GeoJSONExport) ContentType() string { return "application/geo+json" }

func (*GeoJSONExport) Begin(w io.Writer) error {
	attr, _ := json.Marshal(WardAttribution)
	_, err := fmt.Fprintf(w, `{"type":"FeatureCollection","name":"incidents","attribution":%s,"features":[`+"\n", attr)
	return err
}

type exportFeature struct {
	Type       string      `json:"type"`
	ID         string      `json:"id"`
	Geometry   Point       `json:"geometry"`
	Properties exportProps `json:"properties"`
}

type exportProps struct {
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

func (g *GeoJSONExport) Page(w io.Writer, items []*Incident) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, x := range items {
		f := exportFeature{Type: "Feature", ID: x.ID, Geometry: x.Location, Properties: exportProps{
			Kind: x.Kind, Severity: x.Severity, Status: x.Status, Resolution: x.Resolution, Title: x.Title,
			OpenedBy: x.OpenedBy, OpenedAt: x.OpenedAt, UpdatedAt: x.UpdatedAt, AcknowledgedAt: x.AcknowledgedAt,
			DispatchedAt: x.DispatchedAt, ResolvedAt: x.ResolvedAt, Units: x.Units, EvidenceCount: x.EvidenceCount, Version: x.Version,
		}}
		if x.Ward != nil {
			f.Properties.WardCode, f.Properties.WardName = &x.Ward.Code, &x.Ward.Name
		}
		if g.features > 0 {
			bw.WriteString(",")
		}
		g.features++
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (*GeoJSONExport) End(w io.Writer) error {
	_, err := io.WriteString(w, "]}\n")
	return err
}
