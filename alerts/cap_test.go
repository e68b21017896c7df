package alerts

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const capSchema = "../../shared/data/cap/CAP-v1.2.xsd"

// validateCAP runs xmllint against the OASIS schema.
func validateCAP(t *testing.T, doc []byte) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Fatalf("xmllint (Debian's libxml2-utils, installed by deploy/setup.sh) is needed: %v", err)
	}
	f := filepath.Join(t.TempDir(), "alert.xml")
	os.WriteFile(f, doc, 0o600)
	out, err := exec.Command("xmllint", "--noout", "--schema", capSchema, f).CombinedOutput()
	if err != nil {
		t.Fatalf("CAP not valid against %s: %v\n%s\n%s", capSchema, err, out, doc)
	}
}

func capFixture() *Incident {
	opened := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	return &Incident{
		ID: "01M8V3RH8BFKP3T3578F", Kind: "fire", Severity: "severe", Status: StatusNew,
		Title: "Cháy nhà dân <phố> & \"Hàng Bạc\"", Location: Point{"Point", [2]float64{105.8523, 21.0287}},
		Ward: &WardRef{"00070", "Phường Hoàn Kiếm"}, OpenedBy: "rule:camera-fire", OpenedAt: opened,
		UpdatedAt: opened, Version: 1, EvidenceCount: 1,
	}
}

func TestCAPValidAndMapped(t *testing.T) {
	handled, falseAlarm := "handled", "false_alarm"
	for _, c := range []struct {
		name                                      string
		edit                                      func(*Incident)
		msgType, urgency, severity, certainty, rt string
	}{
		{"new from one camera", func(*Incident) {}, "Alert", "Immediate", "Severe", "Likely", "Assess"},
		{"two sources", func(x *Incident) { x.EvidenceCount, x.Version = 2, 2 }, "Update", "Immediate", "Severe", "Observed", "Assess"},
		{"by hand, moderate", func(x *Incident) { x.OpenedBy, x.Severity = "dispatcher1", "moderate" }, "Alert", "Expected", "Moderate", "Observed", "Assess"},
		{"dispatched", func(x *Incident) { x.Status, x.Units, x.Version = StatusDispatched, []string{"fire-07"}, 3 }, "Update", "Immediate", "Severe", "Observed", "Monitor"},
		{"resolved", func(x *Incident) { x.Status, x.Resolution, x.Version = StatusResolved, &handled, 4 }, "Update", "Past", "Severe", "Observed", "AllClear"},
		{"false alarm", func(x *Incident) { x.Status, x.Resolution, x.Version = StatusResolved, &falseAlarm, 2 }, "Update", "Past", "Severe", "Unlikely", "AllClear"},
		{"unknown kind, no ward", func(x *Incident) { x.Kind, x.Ward, x.Severity = "sinkhole", nil, "extreme" }, "Alert", "Immediate", "Extreme", "Likely", "Assess"},
	} {
		x := capFixture()
		c.edit(x)
		var buf bytes.Buffer
		if err := WriteCAP(&buf, x, DefaultCAPSender); err != nil {
			t.Fatal(err)
		}
		validateCAP(t, buf.Bytes())
		var got capAlert
		if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.MsgType != c.msgType || len(got.Info) != 2 {
			t.Fatalf("%s: msgType %s with %d info blocks", c.name, got.MsgType, len(got.Info))
		}
		if got.Info[0].Language != "vi-VN" || got.Info[1].Language != "en-US" {
			t.Errorf("%s: languages %s, %s; want vi-VN first", c.name, got.Info[0].Language, got.Info[1].Language)
		}
		for _, in := range got.Info {
			if in.Urgency != c.urgency || in.Severity != c.severity || in.Certainty != c.certainty || in.ResponseType != c.rt {
				t.Errorf("%s (%s): urgency %s severity %s certainty %s response %s, want %s %s %s %s", c.name, in.Language,
					in.Urgency, in.Severity, in.Certainty, in.ResponseType, c.urgency, c.severity, c.certainty, c.rt)
			}
			if in.Area.Circle != "21.028700,105.852300 0.5" {
				t.Errorf("%s: circle %q (CAP wants lat,lon radius-km)", c.name, in.Area.Circle)
			}
		}
		if !strings.HasSuffix(got.Sent, "+07:00") {
			t.Errorf("%s: sent %q, want Hanoi time with an offset", c.name, got.Sent)
		}
	}
}

func TestCAPTextInVietnamese(t *testing.T) {
	var buf bytes.Buffer
	WriteCAP(&buf, capFixture(), DefaultCAPSender)
	doc := buf.String()
	for _, want := range []string{
		"<event>Cháy</event>", "<category>Fire</category>", "Phường Hoàn Kiếm", "10:04 02/12/2026",
		"<sent>2026-12-02T10:04:05+07:00</sent>", "&lt;phố&gt; &amp;", "<valueName>ward_code</valueName>",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("CAP lacks %q:\n%s", want, doc)
		}
	}
}

func TestCAPFeed(t *testing.T) {
	a, b := capFixture(), capFixture()
	b.ID, b.Kind, b.Ward = "01M8V3RH8BFKP3T3579G", "flooding", nil
	var buf bytes.Buffer
	if err := WriteCAPFeed(&buf, []*Incident{a, b}, DefaultCAPSender, "https://ioc.example/api/v1/", a.UpdatedAt); err != nil {
		t.Fatal(err)
	}
	var f atomFeed
	if err := xml.Unmarshal(buf.Bytes(), &f); err != nil {
		t.Fatalf("feed is not XML: %v\n%s", err, buf.String())
	}
	if f.XMLName.Space != "http://www.w3.org/2005/Atom" || len(f.Entries) != 2 {
		t.Fatalf("feed %+v", f)
	}
	if e := f.Entries[0]; e.Link.Href != "https://ioc.example/api/v1/incidents/01M8V3RH8BFKP3T3578F.cap" ||
		e.Link.Type != "application/cap+xml" || e.Title != "Cháy tại Phường Hoàn Kiếm" {
		t.Errorf("entry %+v", e)
	}
	if f.Entries[1].Title != "Ngập úng tại Hà Nội" {
		t.Errorf("entry without ward: %q", f.Entries[1].Title)
	}
	if _, err := time.Parse(time.RFC3339, f.Updated); err != nil {
		t.Errorf("updated %q: %v", f.Updated, err)
	}
}
