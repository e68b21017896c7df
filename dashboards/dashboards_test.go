package dashboards

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"ioc/api"
	"ioc/auth"
)

func newServer(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := api.New("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.Register(srv)
	return srv.Handler()
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

// The page names assets that are served, with long caching for hashed
// names and none for the page itself.
func TestPageAndAssets(t *testing.T) {
	h := newServer(t, Config{})
	w := get(h, "/")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if w.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("page Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	page := w.Body.String()
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("page references %d assets, want js, css and icon:\n%s", len(refs), page)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
		t.Error("the page has inline script or style, which the Content-Security-Policy refuses")
	}
	for _, r := range refs {
		a := get(h, r[1])
		if a.Code != 200 || a.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes", r[1], a.Code, a.Body.Len())
			continue
		}
		if strings.HasSuffix(r[1], ".js") {
			if ct := a.Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
				t.Errorf("%s Content-Type %q", r[1], ct)
			}
			if !strings.Contains(a.Header().Get("Cache-Control"), "immutable") {
				t.Errorf("%s Cache-Control %q, want immutable (hashed name)", r[1], a.Header().Get("Cache-Control"))
			}
		}
	}
	for _, p := range []string{"/assets/nope.js", "/assets/..%2findex.html", "/assets/", "/nope"} {
		if w := get(h, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

func TestAppConfig(t *testing.T) {
	h := newServer(t, Config{AckTarget: 90 * time.Second, Locale: "en"})
	w := get(h, "/app-config.json")
	if w.Code != 200 {
		t.Fatalf("GET /app-config.json: %d", w.Code)
	}
	var c appConfig
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	want := appConfig{AckTargetS: 90, DispatchTargetS: 600, Locale: "en", TimeZone: "Asia/Ho_Chi_Minh", HeartbeatStaleMs: 15000}
	if c != want {
		t.Errorf("config %+v, want %+v", c, want)
	}
	if w := get(h, "/app-config.json?x=1"); w.Code != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d, want 400", w.Code)
	}
}

func TestTileURL(t *testing.T) {
	for _, tc := range []struct {
		url, origin string
		ok          bool
	}{
		{"", "", true},
		{"https://tiles.example.vn/{z}/{x}/{y}.png", "https://tiles.example.vn", true},
		{"http://127.0.0.1:8081/osm/{z}/{x}/{y}.png", "http://127.0.0.1:8081", true},
		{"ftp://tiles/{z}/{x}/{y}", "", false},
		{"https://tiles.example/{z}/{x}.png", "", false},
		{"https://u:p@tiles.example/{z}/{x}/{y}.png", "", false},
		{"//tiles.example/{z}/{x}/{y}.png", "", false},
	} {
		got, err := TileOrigin(tc.url)
		if (err == nil) != tc.ok || got != tc.origin {
			t.Errorf("TileOrigin(%q) = %q, %v; want %q, ok=%v", tc.url, got, err, tc.origin, tc.ok)
		}
	}
	// With tiles, the page's policy lets MapLibre fetch them, and only them.
	h := newServer(t, Config{TileURL: "https://tiles.example.vn/{z}/{x}/{y}.png"})
	csp := get(h, "/").Header().Get("Content-Security-Policy")
	for _, d := range []string{"img-src 'self' data: blob: https://tiles.example.vn", "connect-src 'self' https://tiles.example.vn", "script-src 'self';"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if _, err := New(Config{Locale: "fr"}, slog.Default()); err == nil {
		t.Error("locale fr accepted")
	}
	if got := PolicyWithTiles(auth.ContentSecurityPolicy, "https://x"); strings.Count(got, "https://x") != 2 {
		t.Errorf("PolicyWithTiles: %q", got)
	}
}

// FuzzTileOrigin: the tile template is outside input (configuration) that
// ends up in a response header; whatever it is, the origin returned is a
// plain scheme://host without separators that could add a directive.
func FuzzTileOrigin(f *testing.F) {
	f.Add("https://tiles.example.vn/{z}/{x}/{y}.png")
	f.Add("http://a:1/{z}/{x}/{y}")
	f.Add("https://a;b/{z}/{x}/{y}")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := TileOrigin(s)
		if err != nil || o == "" {
			return
		}
		if strings.ContainsAny(o, " ;,'\"\r\n\t") || !(strings.HasPrefix(o, "https://") || strings.HasPrefix(o, "http://")) {
			t.Fatalf("TileOrigin(%q) = %q", s, o)
		}
	})
}
