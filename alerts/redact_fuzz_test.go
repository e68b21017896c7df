package alerts

import (
	"encoding/json"
	"strings"
	"testing"
)

// redactWebhook takes the stored rule document, whose webhook URL an
// admin typed: whatever it holds, others see at most its scheme and host,
// and the document stays valid JSON.
func FuzzRedactWebhook(f *testing.F) {
	for _, s := range []string{"https://hooks.example.org/services/T0/B0/SECRET", "http://u:p@h:8080/x?token=abc",
		"https://h", "not a url", "https://h/%zz", "", "//host/path?q=1", "https://[::1]:443/k#frag"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, webhook string) {
		doc, _ := json.Marshal(map[string]any{"rules": []any{}, "notify": map[string]any{"webhook_url": webhook, "min_severity": "severe"}})
		out := redactWebhook(doc)
		var got struct {
			Notify struct {
				WebhookURL  string `json:"webhook_url"`
				MinSeverity string `json:"min_severity"`
			} `json:"notify"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("redacted document is not JSON: %v: %s", err, out)
		}
		if got.Notify.MinSeverity != "severe" {
			t.Fatalf("other notify settings lost: %s", out)
		}
		w := got.Notify.WebhookURL
		if webhook == "" {
			if w != "" {
				t.Fatalf("empty URL became %q", w)
			}
			return
		}
		if w != "(redacted)" && !strings.HasSuffix(w, "/(redacted)") {
			t.Fatalf("webhook %q shown as %q", webhook, w)
		}
		if i := strings.Index(w, "://"); i >= 0 && strings.ContainsAny(strings.TrimSuffix(w[i+3:], "/(redacted)"), "@?#/") {
			t.Fatalf("webhook %q shown as %q: more than scheme and host", webhook, w)
		}
	})
}
