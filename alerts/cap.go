package alerts

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// CAP 1.2 (OASIS Common Alerting Protocol) for one incident, and an Atom
// feed of current alerts: how other city systems, national warning systems
// and desktop tools take the centre's incidents in a standard form.
// Validated against ../shared/data/cap/CAP-v1.2.xsd in the tests.

// CAPSender names who publishes the alerts.
type CAPSender struct {
	// Sender is the CAP <sender>: a unique address of the centre, such as
	// ioc@hanoi.gov.vn.
	Sender string
	// NameVI and NameEN are the <senderName> of each info block.
	NameVI, NameEN string
	// Restriction is the <restriction> text: incidents are shared with
	// agencies, not published to the public by the centre.
	Restriction string
	// Web, if set, is the base URL of incident pages (…/incidents/ID).
	Web string
}

// DefaultCAPSender is Hanoi's operations centre.
var DefaultCAPSender = CAPSender{
	Sender:      "ioc@hanoi.gov.vn",
	NameVI:      "Trung tâm Điều hành Đô thị thông minh Hà Nội",
	NameEN:      "Hanoi City Operations Centre",
	Restriction: "Chỉ dành cho các cơ quan ứng phó của thành phố / For city response agencies only",
}

var hanoi = func() *time.Location {
	if l, err := time.LoadLocation("Asia/Ho_Chi_Minh"); err == nil {
		return l
	}
	return time.FixedZone("ICT", 7*3600)
}()

// capTime is CAP's dateTime: an explicit offset, never "Z" (CAP 1.2
// section 3.3.2), in Hanoi's time.
func capTime(t time.Time) string { return t.In(hanoi).Format("2006-01-02T15:04:05-07:00") }

type capAlert struct {
	XMLName     xml.Name  `xml:"urn:oasis:names:tc:emergency:cap:1.2 alert"`
	Identifier  string    `xml:"identifier"`
	Sender      string    `xml:"sender"`
	Sent        string    `xml:"sent"`
	Status      string    `xml:"status"`
	MsgType     string    `xml:"msgType"`
	Scope       string    `xml:"scope"`
	Restriction string    `xml:"restriction,omitempty"`
	Code        string    `xml:"code,omitempty"`
	Note        string    `xml:"note,omitempty"`
	Info        []capInfo `xml:"info"`
}

type capInfo struct {
	Language     string     `xml:"language"`
	Category     string     `xml:"category"`
	Event        string     `xml:"event"`
	ResponseType string     `xml:"responseType,omitempty"`
	Urgency      string     `xml:"urgency"`
	Severity     string     `xml:"severity"`
	Certainty    string     `xml:"certainty"`
	EventCode    capValue   `xml:"eventCode"`
	Effective    string     `xml:"effective"`
	SenderName   string     `xml:"senderName"`
	Headline     string     `xml:"headline"`
	Description  string     `xml:"description"`
	Web          string     `xml:"web,omitempty"`
	Parameter    []capValue `xml:"parameter"`
	Area         capArea    `xml:"area"`
}

type capValue struct {
	ValueName string `xml:"valueName"`
	Value     string `xml:"value"`
}

type capArea struct {
	AreaDesc string     `xml:"areaDesc"`
	Circle   string     `xml:"circle"`
	Geocode  []capValue `xml:"geocode,omitempty"`
}

// kindText names an incident kind for people, in Vietnamese and English,
// with its CAP category.
type kindText struct{ vi, en, category string }

var capKinds = map[string]kindText{
	"traffic_congestion": {"Ùn tắc giao thông", "Traffic congestion", "Transport"},
	"accident":           {"Tai nạn giao thông", "Road accident", "Transport"},
	"fire":               {"Cháy", "Fire", "Fire"},
	"medical":            {"Cấp cứu y tế", "Medical emergency", "Health"},
	"crime":              {"Vụ việc an ninh trật tự", "Crime", "Security"},
	"intrusion":          {"Xâm nhập trái phép", "Intrusion", "Security"},
	"crowd":              {"Tụ tập đông người", "Crowd", "Safety"},
	"flooding":           {"Ngập úng", "Flooding", "Met"},
	"hazmat":             {"Sự cố hóa chất độc hại", "Hazardous materials", "CBRNE"},
	"rescue":             {"Cứu nạn cứu hộ", "Rescue", "Rescue"},
	"device_offline":     {"Thiết bị mất kết nối", "Device offline", "Infra"},
}

func kindNames(kind string) kindText {
	if k, ok := capKinds[kind]; ok {
		return k
	}
	name := strings.ReplaceAll(kind, "_", " ")
	return kindText{name, name, "Other"}
}

var statusText = map[string][2]string{
	StatusNew:          {"mới", "new"},
	StatusAcknowledged: {"đã tiếp nhận", "acknowledged"},
	StatusDispatched:   {"đã điều lực lượng", "dispatched"},
	StatusResolved:     {"đã xử lý xong", "resolved"},
}

// capSeverity maps the incident's severity (CAP's own words, lower-case).
func capSeverity(s string) string {
	switch s {
	case "extreme", "severe", "moderate", "minor":
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return "Unknown"
}

// capUrgency: a resolved incident is Past; an open one needs action now
// when severe or extreme, and soon otherwise.
func capUrgency(x *Incident) string {
	switch {
	case x.Status == StatusResolved:
		return "Past"
	case x.Severity == "extreme" || x.Severity == "severe":
		return "Immediate"
	}
	return "Expected"
}

// capCertainty: what an operator confirmed (acknowledged, dispatched,
// opened by hand, resolved as handled) or several sources agree on is
// Observed; a false alarm is Unlikely; one automatic source is Likely.
func capCertainty(x *Incident) string {
	switch {
	case x.Resolution != nil && *x.Resolution == "false_alarm":
		return "Unlikely"
	case x.Status != StatusNew, !strings.HasPrefix(x.OpenedBy, "rule:"), x.EvidenceCount >= 2:
		return "Observed"
	}
	return "Likely"
}

func capResponse(x *Incident) string {
	switch {
	case x.Status == StatusResolved:
		return "AllClear"
	case x.Status == StatusDispatched:
		return "Monitor"
	}
	return "Assess"
}

// capIdentifier is unique per sender and message: each version of an
// incident is its own CAP message.
func capIdentifier(x *Incident) string { return fmt.Sprintf("vn.hanoi.ioc.%s.%d", x.ID, x.Version) }

// WriteCAP writes one incident as a CAP 1.2 alert with an info block in
// Vietnamese and one in English. The first version is an Alert, later ones
// Updates; a resolved incident says so with urgency Past and response
// AllClear.
func WriteCAP(w io.Writer, x *Incident, s CAPSender) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(capAlertOf(x, s)); err != nil {
		return fmt.Errorf("cap: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func capAlertOf(x *Incident, s CAPSender) capAlert {
	a := capAlert{
		Identifier: capIdentifier(x), Sender: s.Sender, Sent: capTime(x.UpdatedAt), Status: "Actual",
		MsgType: "Alert", Scope: "Restricted", Restriction: s.Restriction,
	}
	if a.Restriction == "" {
		a.Restriction = DefaultCAPSender.Restriction
	}
	if x.Version > 1 {
		a.MsgType = "Update"
	}
	k := kindNames(x.Kind)
	lon, lat := x.Location.Coordinates[0], x.Location.Coordinates[1]
	area := capArea{AreaDesc: "Hà Nội", Circle: fmt.Sprintf("%.6f,%.6f 0.5", lat, lon)}
	wardVI, wardEN := "Hà Nội", "Hanoi"
	if x.Ward != nil {
		area.AreaDesc = x.Ward.Name + ", Hà Nội"
		area.Geocode = []capValue{{"ward_code", x.Ward.Code}}
		wardVI, wardEN = x.Ward.Name, x.Ward.Name+", Hanoi"
	}
	st := statusText[x.Status]
	web := ""
	if s.Web != "" {
		web = strings.TrimRight(s.Web, "/") + "/incidents/" + x.ID
	}
	params := []capValue{{"incident_id", x.ID}, {"incident_status", x.Status}, {"incident_version", fmt.Sprint(x.Version)}}
	if len(x.Units) > 0 {
		params = append(params, capValue{"units", strings.Join(x.Units, " ")})
	}
	info := func(lang, event, sender, headline, desc string) capInfo {
		return capInfo{
			Language: lang, Category: k.category, Event: event, ResponseType: capResponse(x),
			Urgency: capUrgency(x), Severity: capSeverity(x.Severity), Certainty: capCertainty(x),
			EventCode: capValue{"ioc_kind", x.Kind}, Effective: capTime(x.OpenedAt), SenderName: sender,
			Headline: headline, Description: desc, Web: web, Parameter: params, Area: area,
		}
	}
	titleVI := k.vi + " tại " + wardVI
	if x.Title != "" {
		titleVI = x.Title + " – " + wardVI
	}
	descVI := fmt.Sprintf("%s tại %s, mở lúc %s, trạng thái: %s.", k.vi, wardVI,
		x.OpenedAt.In(hanoi).Format("15:04 02/01/2006"), st[0])
	descEN := fmt.Sprintf("%s in %s, opened %s (Hanoi time), status: %s.", k.en, wardEN,
		x.OpenedAt.In(hanoi).Format("15:04 02/01/2006"), st[1])
	if len(x.Units) > 0 {
		descVI += " Lực lượng: " + strings.Join(x.Units, ", ") + "."
		descEN += " Units: " + strings.Join(x.Units, ", ") + "."
	}
	a.Info = []capInfo{
		info("vi-VN", k.vi, s.NameVI, clipRunes(titleVI, 160), descVI),
		info("en-US", k.en, s.NameEN, clipRunes(k.en+" in "+wardEN, 160), descEN),
	}
	return a
}

// clipRunes shortens s to at most n characters (CAP advises headlines of
// 160 characters or fewer, for text messages).
func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomAuthor  `xml:"author"`
	Link    []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomAuthor struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID      string   `xml:"id"`
	Title   string   `xml:"title"`
	Updated string   `xml:"updated"`
	Summary string   `xml:"summary"`
	Link    atomLink `xml:"link"`
}

// WriteCAPFeed writes an Atom feed of the given (current) incidents, each
// entry linking to its CAP message at base/incidents/ID.cap, the way CAP
// aggregators (Google Public Alerts, WMO's register) read alert feeds.
// Titles are in Vietnamese.
func WriteCAPFeed(w io.Writer, incidents []*Incident, s CAPSender, base string, now time.Time) error {
	base = strings.TrimRight(base, "/")
	f := atomFeed{
		ID: "urn:vn.hanoi.ioc:cap-feed", Title: s.NameVI + " – cảnh báo hiện hành", Updated: capTime(now),
		Author: atomAuthor{Name: s.NameVI},
		Link:   []atomLink{{Rel: "self", Type: "application/atom+xml", Href: base + "/incidents.atom"}},
	}
	for _, x := range incidents {
		k := kindNames(x.Kind)
		where := "Hà Nội"
		if x.Ward != nil {
			where = x.Ward.Name
		}
		f.Entries = append(f.Entries, atomEntry{
			ID: "urn:" + capIdentifier(x), Title: k.vi + " tại " + where, Updated: capTime(x.UpdatedAt),
			Summary: fmt.Sprintf("%s · %s · %s", capSeverity(x.Severity), statusText[x.Status][0], x.ID),
			Link:    atomLink{Rel: "alternate", Type: "application/cap+xml", Href: base + "/incidents/" + x.ID + ".cap"},
		})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("atom: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
