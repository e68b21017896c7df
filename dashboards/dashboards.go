package dashboards

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"ioc/api"
	"ioc/auth"
)

//go:embed all:web/dist
var dist embed.FS

// Config is what the app is told at start (GET /app-config.json).
type Config struct {
	// TileURL is an XYZ raster tile template (https://host/{z}/{x}/{y}.png).
	// Empty: the map shows only the ward boundaries (works offline).
	TileURL string
	// TileAttribution is shown on the map when TileURL is set.
	TileAttribution string
	// AckTarget and DispatchTarget: how long an incident may wait to be
	// acknowledged, and then to be dispatched, before the queue shows a
	// breach.
	AckTarget      time.Duration
	DispatchTarget time.Duration
	// Locale is the default language, "vi" or "en".
	Locale string
}

// Defaults: 2 min to acknowledge, 10 min from acknowledgement to dispatch,
// Vietnamese first.
const (
	DefaultAckTarget      = 2 * time.Minute
	DefaultDispatchTarget = 10 * time.Minute
	DefaultLocale         = "vi"
)

// Dashboard serves the embedded app.
type Dashboard struct {
	cfg    Config
	log    *slog.Logger
	assets fs.FS
	index  []byte
	config []byte
	csp    string
}

// appConfig is the JSON of GET /app-config.json.
type appConfig struct {
	TileURL          string `json:"tile_url"`
	TileAttribution  string `json:"tile_attribution,omitempty"`
	AckTargetS       int    `json:"ack_target_s"`
	DispatchTargetS  int    `json:"dispatch_target_s"`
	Locale           string `json:"locale"`
	TimeZone         string `json:"time_zone"`
	HeartbeatStaleMs int    `json:"heartbeat_stale_ms"`
}

// New checks cfg, fills in defaults and loads the embedded bundle.
func New(cfg Config, log *slog.Logger) (*Dashboard, error) {
	if cfg.AckTarget <= 0 {
		cfg.AckTarget = DefaultAckTarget
	}
	if cfg.DispatchTarget <= 0 {
		cfg.DispatchTarget = DefaultDispatchTarget
	}
	if cfg.Locale == "" {
		cfg.Locale = DefaultLocale
	}
	if cfg.Locale != "vi" && cfg.Locale != "en" {
		return nil, fmt.Errorf("dashboards: locale: want vi or en, got %q", cfg.Locale)
	}
	origin, err := TileOrigin(cfg.TileURL)
	if err != nil {
		return nil, fmt.Errorf("dashboards: tile_url: %w", err)
	}
	assets, err := fs.Sub(dist, "web/dist")
	if err != nil {
		return nil, fmt.Errorf("dashboards: bundle: %w", err)
	}
	index, err := fs.ReadFile(assets, "index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboards: the bundle has no index.html (run npm run build in dashboards/web): %w", err)
	}
	conf, err := json.Marshal(appConfig{TileURL: cfg.TileURL, TileAttribution: cfg.TileAttribution,
		AckTargetS: int(cfg.AckTarget / time.Second), DispatchTargetS: int(cfg.DispatchTarget / time.Second),
		Locale: cfg.Locale, TimeZone: "Asia/Ho_Chi_Minh", HeartbeatStaleMs: 15000})
	if err != nil {
		return nil, err
	}
	d := &Dashboard{cfg: cfg, log: log, assets: assets, index: index, config: conf, csp: auth.ContentSecurityPolicy}
	if origin != "" {
		d.csp = PolicyWithTiles(auth.ContentSecurityPolicy, origin)
	}
	return d, nil
}

// TileOrigin checks a tile URL template and returns its origin
// (scheme://host[:port]); "" for an empty template.
func TileOrigin(tile string) (string, error) {
	if tile == "" {
		return "", nil
	}
	u, err := url.Parse(strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(tile))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("want an http(s) URL without credentials such as https://tiles.example/{z}/{x}/{y}.png, got %q", tile)
	}
	for _, p := range []string{"{z}", "{x}", "{y}"} {
		if !strings.Contains(tile, p) {
			return "", fmt.Errorf("%q lacks %s", tile, p)
		}
	}
	if strings.ContainsAny(u.Host, " ;,'\"\t\r\n") {
		return "", fmt.Errorf("bad host in %q", tile)
	}
	return u.Scheme + "://" + u.Host, nil
}

// PolicyWithTiles adds a tile server's origin to the image and connect
// sources of a Content-Security-Policy, so MapLibre may fetch its tiles;
// the page's own policy is otherwise unchanged.
func PolicyWithTiles(csp, origin string) string {
	parts := strings.Split(csp, ";")
	for i, p := range parts {
		f := strings.Fields(p)
		if len(f) > 0 && (f[0] == "img-src" || f[0] == "connect-src") {
			parts[i] = " " + strings.Join(append(f, origin), " ")
		}
	}
	return strings.Join(parts, ";")
}

// Register adds the app's public routes to srv.
func (d *Dashboard) Register(srv *api.Server) {
	srv.HandlePublic("GET", "/{$}", http.HandlerFunc(d.page))
	srv.HandlePublic("GET", "/assets/{file}", http.HandlerFunc(d.asset))
	srv.HandlePublic("GET", "/app-config.json", http.HandlerFunc(d.appConfig))
}

func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", d.csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page names the hashed assets of this build: never cache it, so a
	// new release is picked up by a reload.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(d.index))
}

func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "" || strings.Contains(name, "..") || path.Clean(name) != name {
		api.NotFound(w, "asset")
		return
	}
	b, err := fs.ReadFile(d.assets, "assets/"+name)
	if err != nil {
		api.NotFound(w, "asset")
		return
	}
	if isHashed(name) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// isHashed tells a content-hashed bundle name (app-ABCD1234.js) from a
// fixed one (icon.svg).
func isHashed(name string) bool {
	base := strings.TrimSuffix(name, path.Ext(name))
	i := strings.LastIndexByte(base, '-')
	return i > 0 && len(base)-i-1 >= 8
}

func (d *Dashboard) appConfig(w http.ResponseWriter, r *http.Request) {
	if api.BadParam(w, api.NewQuery(r).Err()) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(d.config)
}
