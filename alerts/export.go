package alerts

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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
//
// Features are appended by hand rather than through encoding/json's
// reflection (which was most of an export's CPU: docs/history.md); the
// bytes are the same as json.Encoder's with SetEscapeHTML(false) would
// write for the feature (TestGeoJSONExportAsEncodingJSON).
type GeoJSONExport struct {
	features int
	buf      []byte
}

func (*GeoJSONExport) ContentType() string { return "application/geo+json" }

func (*GeoJSONExport) Begin(w io.Writer) error {
	attr, _ := json.Marshal(WardAttribution)
	_, err := fmt.Fprintf(w, `{"type":"FeatureCollection","name":"incidents","attribution":%s,"features":[`+"\n", attr)
	return err
}

func (g *GeoJSONExport) Page(w io.Writer, items []*Incident) error {
	b := g.buf[:0]
	for _, x := range items {
		if g.features > 0 {
			b = append(b, ',')
		}
		g.features++
		var err error
		if b, err = appendFeature(b, x); err != nil {
			return fmt.Errorf("incident %s: %w", x.ID, err)
		}
		b = append(b, '\n')
		if len(b) >= 64<<10 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	g.buf = b
	_, err := w.Write(b)
	return err
}

// appendFeature appends x as a GeoJSON Feature: its point, and its fields
// but the location as properties (ward code and name null when none).
func appendFeature(b []byte, x *Incident) ([]byte, error) {
	b = append(b, `{"type":"Feature","id":`...)
	b = appendJSONString(b, x.ID)
	b = append(b, `,"geometry":{"type":`...)
	b = appendJSONString(b, x.Location.Type)
	b = append(b, `,"coordinates":[`...)
	var err error
	if b, err = appendJSONFloat(b, x.Location.Coordinates[0]); err != nil {
		return b, err
	}
	b = append(b, ',')
	if b, err = appendJSONFloat(b, x.Location.Coordinates[1]); err != nil {
		return b, err
	}
	b = append(b, `]},"properties":{"kind":`...)
	b = appendJSONString(b, x.Kind)
	b = append(b, `,"severity":`...)
	b = appendJSONString(b, x.Severity)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, x.Status)
	b = append(b, `,"resolution":`...)
	b = appendJSONStringOrNull(b, x.Resolution)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, x.Title)
	var code, name *string
	if x.Ward != nil {
		code, name = &x.Ward.Code, &x.Ward.Name
	}
	b = append(b, `,"ward_code":`...)
	b = appendJSONStringOrNull(b, code)
	b = append(b, `,"ward_name":`...)
	b = appendJSONStringOrNull(b, name)
	b = append(b, `,"opened_by":`...)
	b = appendJSONString(b, x.OpenedBy)
	for _, t := range []struct {
		key string
		at  *time.Time
	}{{`,"opened_at":`, &x.OpenedAt}, {`,"updated_at":`, &x.UpdatedAt}, {`,"acknowledged_at":`, x.AcknowledgedAt},
		{`,"dispatched_at":`, x.DispatchedAt}, {`,"resolved_at":`, x.ResolvedAt}} {
		b = append(b, t.key...)
		if t.at == nil {
			b = append(b, "null"...)
			continue
		}
		if y := t.at.Year(); y < 0 || y > 9999 {
			return b, fmt.Errorf("time %v outside RFC 3339", t.at)
		}
		b = append(b, '"')
		b = t.at.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"units":`...)
	if x.Units == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, u := range x.Units {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, u)
		}
		b = append(b, ']')
	}
	b = append(b, `,"evidence_count":`...)
	b = strconv.AppendInt(b, int64(x.EvidenceCount), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, x.Version, 10)
	return append(b, "}}"...), nil
}

func appendJSONStringOrNull(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendJSONString appends s as a JSON string as encoding/json writes it
// without HTML escaping: control characters, quote and backslash escaped,
// invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped (FuzzAppendJSONString).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat appends f as encoding/json writes a float64 (ES6 number
// formatting); NaN and infinities are errors, as there.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("coordinate %v is not a JSON number", f)
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		v, err := json.Marshal(f) // the exponent form's details are encoding/json's
		return append(b, v...), err
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), nil
}

func (*GeoJSONExport) End(w io.Writer) error {
	_, err := io.WriteString(w, "]}\n")
	return err
}
