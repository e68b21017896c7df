package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of iocd. JSON names are the file's keys.
type Config struct {
	DatabaseURL string `json:"database_url"`

	MQTTURL         string `json:"mqtt_url"`
	MQTTTopicPrefix string `json:"mqtt_topic_prefix"`
	MQTTSharedGroup string `json:"mqtt_shared_group"`
	MQTTClientID    string `json:"mqtt_client_id"`
	MQTTCAFile      string `json:"mqtt_ca_file"`
	MQTTCertFile    string `json:"mqtt_cert_file"`
	MQTTKeyFile     string `json:"mqtt_key_file"`

	RedisURL string `json:"redis_url"`
	HTTPAddr string `json:"http_addr"`
	// MetricsAddr, if set, serves /metrics and /debug/pprof without
	// credentials on a second listener for Prometheus and operators on the
	// host. It must be a loopback address (a bare ":9090" means
	// 127.0.0.1:9090) unless MetricsAllowRemote is set. /metrics on
	// HTTPAddr always needs metrics:read.
	MetricsAddr string `json:"metrics_addr"`

	AreasFile          string  `json:"areas_file"`
	CityFile           string  `json:"city_file"`
	ServiceAreaMarginM float64 `json:"service_area_margin_m"`

	// Ingest limits (CONTRACT section 1).
	MaxPayloadBytes int      `json:"max_payload_bytes"`
	MaxBatchItems   int      `json:"max_batch_items"`
	LateWindow      Duration `json:"late_window"`
	FutureSkew      Duration `json:"future_skew"`

	// Ingest batching is group commit: a batch goes to a database writer as
	// soon as one is free, holding at most IngestBatchSize observations.
	// IngestBatchWait > 0 makes a batch linger that long for company: at
	// moderate rates a batch of a few messages per transaction costs
	// PostgreSQL and iocd more than twice the CPU per message of one that
	// waited 5 ms (docs/ingest.md, sixth sitting), and at 10,000 msg/s one
	// that waited 20 ms costs 28 % less again than one of 5 ms (eighth
	// sitting). Emergency signals do not wait.
	IngestBatchSize int      `json:"ingest_batch_size"`
	IngestBatchWait Duration `json:"ingest_batch_wait"`
	// IngestBuffer caps the messages held between the broker and the
	// database (received, not yet committed). When full, ingest stops
	// reading and acknowledging until the database catches up.
	IngestBuffer  int `json:"ingest_buffer"`
	IngestWriters int `json:"ingest_writers"`
	// DeviceTouchInterval: how stale devices.last_seen may get before a
	// reading refreshes it. Keeps one UPDATE per reading off the hot path.
	DeviceTouchInterval Duration `json:"device_touch_interval"`

	// The API reads through a pool of its own, so no number of slow API
	// queries can take the connections ingest writes with. Every API
	// statement is cancelled after APIStatementTimeout, and one caller may
	// run at most APIHeavyPerCaller expensive requests (searches,
	// telemetry ranges, exports) at once; more get 429.
	APIMaxConns         int      `json:"api_max_conns"`
	APIStatementTimeout Duration `json:"api_statement_timeout"`
	APIHeavyPerCaller   int      `json:"api_heavy_per_caller"`

	// RulesFile: the alert rules loaded at first start (later the stored set
	// wins; SIGHUP or PUT /api/v1/rules replaces it). Empty: deploy/rules.json
	// if present in the working directory, else the built-in defaults.
	RulesFile string `json:"rules_file"`
	// WebhookURL overrides the rules' notify.webhook_url.
	WebhookURL string `json:"webhook_url"`
	// BootstrapAdminPasswordFile: the first admin's password, used only
	// when there are no accounts. Empty: a random one printed once.
	BootstrapAdminPasswordFile string `json:"bootstrap_admin_password_file"`

	// RetentionDays: daily telemetry partitions older than this are dropped.
	RetentionDays int `json:"retention_days"`

	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`

	// Auth (auth.Config): sessions, sign-in limits, client addresses and
	// the browser checks. See docs/security.md.
	//
	// MetricsAllowRemote lets metrics_addr name a non-loopback address;
	// its /debug/pprof has no authentication.
	MetricsAllowRemote bool     `json:"metrics_allow_remote"`
	SessionTTL         Duration `json:"session_ttl"`
	// AllowedOrigins: extra scheme://host[:port] whose pages may send
	// unsafe requests (a proxy that rewrites Host).
	AllowedOrigins []string `json:"allowed_origins"`
	// TrustedProxies: CIDRs (or addresses) of reverse proxies whose
	// X-Forwarded-For is believed; from anyone else it is ignored.
	TrustedProxies  []string `json:"trusted_proxies"`
	HashConcurrency int      `json:"hash_concurrency"`
	// HashWait caps how long a sign-in waits for a hashing slot (then 503).
	HashWait Duration `json:"hash_wait"`
	// Per account: LoginAccountFree failures without delay, then a delay
	// from LoginAccountDelay doubling per failure up to
	// LoginAccountMaxDelay. Per address: past LoginAddrMax failures the
	// address gets no free attempts on any account and its delays may grow
	// to LoginAddrMaxDelay. Failures are forgotten after LoginWindow
	// without one.
	LoginAccountFree     int      `json:"login_account_free"`
	LoginAccountDelay    Duration `json:"login_account_delay"`
	LoginAccountMaxDelay Duration `json:"login_account_max_delay"`
	LoginAddrMax         int      `json:"login_addr_max"`
	LoginAddrMaxDelay    Duration `json:"login_addr_max_delay"`
	LoginWindow          Duration `json:"login_window"`
	// Alert engine (alerts). AlertQueueSize: committed batches waiting for
	// evaluation; when full, ingest's writers wait for room (backpressure,
	// docs/alerts.md) rather than the engine skipping observations.
	AlertQueueSize int `json:"alert_queue_size"`
	// Ingest hardening (issue 9): bounds on what the outside can make
	// ingest hold.
	// RequireRegisteredDevices: only devices an admin registered
	// (POST /api/v1/devices) are accepted; others are rejected as
	// unknown_device.
	RequireRegisteredDevices bool `json:"require_registered_devices"`
	// IngestMaxHeldBytes caps the payload bytes received from the broker
	// and not yet acknowledged (whatever the broker's max_inflight_bytes).
	IngestMaxHeldBytes int `json:"ingest_max_held_bytes"`
	// DeviceStateMax and DeviceStateTTL bound the per-device state ingest
	// keeps in memory.
	DeviceStateMax int      `json:"device_state_max"`
	DeviceStateTTL Duration `json:"device_state_ttl"`
	// UnitsMax and UnitExpiry bound the responder-unit registry (/units):
	// a unit not heard from for UnitExpiry is forgotten; new units beyond
	// UnitsMax are not taken.
	UnitsMax   int      `json:"units_max"`
	UnitExpiry Duration `json:"unit_expiry"`
	// RejectsMaxAge and RejectsMaxRows bound ingest_rejects, pruned every
	// RejectsPruneInterval.
	RejectsMaxAge        Duration `json:"rejects_max_age"`
	RejectsMaxRows       int      `json:"rejects_max_rows"`
	RejectsPruneInterval Duration `json:"rejects_prune_interval"`

	// ClockOffset shifts this instance's clock (what ingest, the alert
	// engine and sessions take as now) by a fixed amount. It exists for
	// the fault suite, which runs one instance 30 s off: a Go binary reads
	// the real-time clock through the vDSO, out of reach of libfaketime.
	ClockOffset Duration `json:"clock_offset"`

	// Websocket streams (/ws, docs/streams.md).
	WSQueueBytes     int      `json:"ws_queue_bytes"`
	WSUpdateInterval Duration `json:"ws_update_interval"`
	WSHeartbeat      Duration `json:"ws_heartbeat"`
	// EventRetention and EventRetentionCount bound the incident event log
	// a reconnecting client can resume from.
	EventRetention      Duration `json:"event_retention"`
	EventRetentionCount int      `json:"event_retention_count"`
	// History (issue 11): the response-time targets of GET
	// /api/v1/stats/response-times, measured from an incident's opening.
	// Defaults from NFPA 1225: acknowledge within 60 s, dispatch within
	// 120 s; resolve within an hour.
	ResponseTargetAcknowledge Duration `json:"response_target_acknowledge"`
	ResponseTargetDispatch    Duration `json:"response_target_dispatch"`
	ResponseTargetResolve     Duration `json:"response_target_resolve"`
	// Dashboard (dashboards): an XYZ tile template for the map's base
	// layer (empty: ward boundaries only, works offline), and the targets
	// the incident queue measures time in state against.
	DashboardTileURL         string   `json:"dashboard_tile_url"`
	DashboardTileAttribution string   `json:"dashboard_tile_attribution"`
	DashboardAckTarget       Duration `json:"dashboard_ack_target"`
	DashboardDispatchTarget  Duration `json:"dashboard_dispatch_target"`
	DashboardLocale          string   `json:"dashboard_locale"`
}

// Default returns the settings used when nothing overrides them.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "local"
	}
	return Config{
		DatabaseURL:         "postgres://localhost:5432/ioc",
		MQTTURL:             "tcp://127.0.0.1:1883",
		MQTTTopicPrefix:     "city",
		MQTTClientID:        "iocd-" + host,
		HTTPAddr:            ":8080",
		ServiceAreaMarginM:  5000,
		MaxPayloadBytes:     256 << 10,
		MaxBatchItems:       1000,
		LateWindow:          Duration(7 * 24 * time.Hour),
		FutureSkew:          Duration(5 * time.Minute),
		IngestBatchSize:     2000,
		IngestBatchWait:     Duration(20 * time.Millisecond),
		IngestBuffer:        20000,
		IngestWriters:       2,
		DeviceTouchInterval: Duration(15 * time.Second),
		APIMaxConns:         8,
		APIStatementTimeout: Duration(10 * time.Second),
		APIHeavyPerCaller:   2,
		RetentionDays:       90,
		LogLevel:            "info",
		LogFormat:           "text",

		// Auth; keep in step with auth's defaults (cmd/iocd TestAuthDefaults).
		SessionTTL:           Duration(12 * time.Hour),
		HashConcurrency:      2,
		HashWait:             Duration(2 * time.Second),
		LoginAccountFree:     5,
		LoginAccountDelay:    Duration(time.Second),
		LoginAccountMaxDelay: Duration(time.Minute),
		LoginAddrMax:         20,
		LoginAddrMaxDelay:    Duration(15 * time.Minute),
		LoginWindow:          Duration(15 * time.Minute),
		// Alert engine.
		AlertQueueSize: 4096,
		// Ingest hardening.
		RequireRegisteredDevices: false,
		IngestMaxHeldBytes:       64 << 20,
		DeviceStateMax:           100_000,
		DeviceStateTTL:           Duration(time.Hour),
		UnitsMax:                 10_000,
		UnitExpiry:               Duration(24 * time.Hour),
		RejectsMaxAge:            Duration(30 * 24 * time.Hour),
		RejectsMaxRows:           1_000_000,
		RejectsPruneInterval:     Duration(10 * time.Minute),
		WSQueueBytes:             4 << 20,
		WSUpdateInterval:         Duration(500 * time.Millisecond),
		WSHeartbeat:              Duration(5 * time.Second),
		EventRetention:           Duration(24 * time.Hour),
		EventRetentionCount:      1_000_000,
		// History.
		ResponseTargetAcknowledge: Duration(60 * time.Second),
		ResponseTargetDispatch:    Duration(120 * time.Second),
		ResponseTargetResolve:     Duration(time.Hour),
		// Dashboard.
		DashboardAckTarget:      Duration(2 * time.Minute),
		DashboardDispatchTarget: Duration(10 * time.Minute),
		DashboardLocale:         "vi",
	}
}

// setting ties one field to its file key, flag and environment variable.
type setting struct {
	key, env, usage string
	set             func(string) error
}

func (c *Config) settings() []setting {
	str := func(p *string) func(string) error { return func(s string) error { *p = s; return nil } }
	num := func(p *int) func(string) error {
		return func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("not an integer: %q", s)
			}
			*p = n
			return nil
		}
	}
	flt := func(p *float64) func(string) error {
		return func(s string) error {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("not a number: %q", s)
			}
			*p = f
			return nil
		}
	}
	dur := func(p *Duration) func(string) error { return p.Set }
	list := func(p *[]string) func(string) error {
		return func(s string) error {
			*p = nil
			for _, v := range strings.Split(s, ",") {
				if v = strings.TrimSpace(v); v != "" {
					*p = append(*p, v)
				}
			}
			return nil
		}
	}
	boolean := func(p *bool) func(string) error {
		return func(s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", s)
			}
			*p = v
			return nil
		}
	}
	return []setting{
		{"database_url", "IOC_DATABASE_URL", "PostgreSQL with PostGIS", str(&c.DatabaseURL)},
		{"mqtt_url", "IOC_MQTT_URL", "MQTT broker (tcp:// or ssl://; user:password@ allowed)", str(&c.MQTTURL)},
		{"mqtt_topic_prefix", "IOC_MQTT_TOPIC_PREFIX", "topic prefix", str(&c.MQTTTopicPrefix)},
		{"mqtt_shared_group", "IOC_MQTT_SHARED_GROUP", "share the subscription among instances ($share/<group>/...)", str(&c.MQTTSharedGroup)},
		{"mqtt_client_id", "IOC_MQTT_CLIENT_ID", "stable client id; names the persistent session", str(&c.MQTTClientID)},
		{"mqtt_ca_file", "IOC_MQTT_CA_FILE", "CA certificate for ssl:// brokers", str(&c.MQTTCAFile)},
		{"mqtt_cert_file", "IOC_MQTT_CERT_FILE", "client certificate for ssl:// brokers", str(&c.MQTTCertFile)},
		{"mqtt_key_file", "IOC_MQTT_KEY_FILE", "client key for ssl:// brokers", str(&c.MQTTKeyFile)},
		{"redis_url", "IOC_REDIS_URL", "Redis for fan-out across instances; empty: in-process", str(&c.RedisURL)},
		{"http_addr", "IOC_HTTP_ADDR", "API, websocket, dashboard and metrics address", str(&c.HTTPAddr)},
		{"metrics_addr", "IOC_METRICS_ADDR", "optional second listener serving /metrics without credentials", str(&c.MetricsAddr)},
		{"areas_file", "IOC_AREAS_FILE", "GeoJSON of wards loaded at start when the table is empty", str(&c.AreasFile)},
		{"city_file", "IOC_CITY_FILE", "GeoJSON outline of the service area; empty: no area check", str(&c.CityFile)},
		{"service_area_margin_m", "IOC_SERVICE_AREA_MARGIN_M", "metres outside the outline still accepted", flt(&c.ServiceAreaMarginM)},
		{"max_payload_bytes", "IOC_MAX_PAYLOAD_BYTES", "largest MQTT payload accepted", num(&c.MaxPayloadBytes)},
		{"max_batch_items", "IOC_MAX_BATCH_ITEMS", "largest JSON array accepted in one payload", num(&c.MaxBatchItems)},
		{"late_window", "IOC_LATE_WINDOW", "oldest observation accepted (e.g. 168h)", dur(&c.LateWindow)},
		{"future_skew", "IOC_FUTURE_SKEW", "how far in the future a ts may be", dur(&c.FutureSkew)},
		{"ingest_batch_size", "IOC_INGEST_BATCH_SIZE", "observations per database write", num(&c.IngestBatchSize)},
		{"ingest_batch_wait", "IOC_INGEST_BATCH_WAIT", "linger before a partial batch is written (0: as soon as a writer is free; emergency signals never linger)", dur(&c.IngestBatchWait)},
		{"ingest_buffer", "IOC_INGEST_BUFFER", "messages held between broker and database", num(&c.IngestBuffer)},
		{"ingest_writers", "IOC_INGEST_WRITERS", "concurrent database writers", num(&c.IngestWriters)},
		{"device_touch_interval", "IOC_DEVICE_TOUCH_INTERVAL", "how stale a device's last_seen may get", dur(&c.DeviceTouchInterval)},
		{"api_max_conns", "IOC_API_MAX_CONNS", "connections of the API's own database pool", num(&c.APIMaxConns)},
		{"api_statement_timeout", "IOC_API_STATEMENT_TIMEOUT", "longest an API query may run before PostgreSQL cancels it", dur(&c.APIStatementTimeout)},
		{"api_heavy_per_caller", "IOC_API_HEAVY_PER_CALLER", "expensive API requests one caller may run at once (more get 429)", num(&c.APIHeavyPerCaller)},
		{"retention_days", "IOC_RETENTION_DAYS", "days of telemetry kept", num(&c.RetentionDays)},
		{"rules_file", "IOC_RULES_FILE", "alert rules loaded at first start (default deploy/rules.json if present)", str(&c.RulesFile)},
		{"webhook_url", "IOC_WEBHOOK_URL", "notification webhook, overriding the rules' notify.webhook_url", str(&c.WebhookURL)},
		{"bootstrap_admin_password_file", "IOC_BOOTSTRAP_ADMIN_PASSWORD_FILE", "first admin's password when there are no accounts", str(&c.BootstrapAdminPasswordFile)},
		{"log_level", "IOC_LOG_LEVEL", "debug, info, warn or error", str(&c.LogLevel)},
		{"log_format", "IOC_LOG_FORMAT", "text or json", str(&c.LogFormat)},

		{"metrics_allow_remote", "IOC_METRICS_ALLOW_REMOTE", "let metrics_addr be a non-loopback address (pprof has no authentication)", boolean(&c.MetricsAllowRemote)},
		{"session_ttl", "IOC_SESSION_TTL", "sign-in session lifetime", dur(&c.SessionTTL)},
		{"allowed_origins", "IOC_ALLOWED_ORIGINS", "comma-separated extra origins (scheme://host[:port]) allowed to send unsafe requests", list(&c.AllowedOrigins)},
		{"trusted_proxies", "IOC_TRUSTED_PROXIES", "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted", list(&c.TrustedProxies)},
		{"hash_concurrency", "IOC_HASH_CONCURRENCY", "simultaneous password hashes", num(&c.HashConcurrency)},
		{"hash_wait", "IOC_HASH_WAIT", "longest wait for a hashing slot before 503", dur(&c.HashWait)},
		{"login_account_free", "IOC_LOGIN_ACCOUNT_FREE", "failed sign-ins per account before delays start", num(&c.LoginAccountFree)},
		{"login_account_delay", "IOC_LOGIN_ACCOUNT_DELAY", "first delay once the free attempts are used (doubles per failure)", dur(&c.LoginAccountDelay)},
		{"login_account_max_delay", "IOC_LOGIN_ACCOUNT_MAX_DELAY", "longest delay between attempts on one account", dur(&c.LoginAccountMaxDelay)},
		{"login_addr_max", "IOC_LOGIN_ADDR_MAX", "failed sign-ins from one address before it loses the free attempts", num(&c.LoginAddrMax)},
		{"login_addr_max_delay", "IOC_LOGIN_ADDR_MAX_DELAY", "longest delay for an account from an address past login_addr_max", dur(&c.LoginAddrMaxDelay)},
		{"login_window", "IOC_LOGIN_WINDOW", "quiet time after which failures are forgotten", dur(&c.LoginWindow)},
		// Alert engine.
		{"alert_queue_size", "IOC_ALERT_QUEUE_SIZE", "committed batches waiting for the alert engine; when full, ingest waits", num(&c.AlertQueueSize)},
		// Ingest hardening.
		{"require_registered_devices", "IOC_REQUIRE_REGISTERED_DEVICES", "accept only devices an admin registered (true or false)", boolean(&c.RequireRegisteredDevices)},
		{"ingest_max_held_bytes", "IOC_INGEST_MAX_HELD_BYTES", "payload bytes held unacknowledged before ingest stops reading the broker", num(&c.IngestMaxHeldBytes)},
		{"device_state_max", "IOC_DEVICE_STATE_MAX", "devices whose state ingest keeps in memory", num(&c.DeviceStateMax)},
		{"device_state_ttl", "IOC_DEVICE_STATE_TTL", "forget a device's in-memory state after this long unseen", dur(&c.DeviceStateTTL)},
		{"units_max", "IOC_UNITS_MAX", "responder units kept in the registry", num(&c.UnitsMax)},
		{"unit_expiry", "IOC_UNIT_EXPIRY", "forget a unit not heard from for this long", dur(&c.UnitExpiry)},
		{"rejects_max_age", "IOC_REJECTS_MAX_AGE", "delete rejections older than this", dur(&c.RejectsMaxAge)},
		{"rejects_max_rows", "IOC_REJECTS_MAX_ROWS", "keep at most this many rejections", num(&c.RejectsMaxRows)},
		{"rejects_prune_interval", "IOC_REJECTS_PRUNE_INTERVAL", "how often rejections are pruned", dur(&c.RejectsPruneInterval)},
		{"clock_offset", "IOC_CLOCK_OFFSET", "testing only: run as if this instance's clock were off by this much (the fault suite's clock-skew fault)", dur(&c.ClockOffset)},
		{"ws_queue_bytes", "IOC_WS_QUEUE_BYTES", "bytes a websocket client may fall behind before it is closed as a slow consumer", num(&c.WSQueueBytes)},
		{"ws_update_interval", "IOC_WS_UPDATE_INTERVAL", "device and unit updates reach a websocket client at most this often (latest per id)", dur(&c.WSUpdateInterval)},
		{"ws_heartbeat", "IOC_WS_HEARTBEAT", "how often websocket clients get a heartbeat with the latest seq", dur(&c.WSHeartbeat)},
		{"event_retention", "IOC_EVENT_RETENTION", "keep incident events this long for resuming clients", dur(&c.EventRetention)},
		{"event_retention_count", "IOC_EVENT_RETENTION_COUNT", "keep at most this many incident events (0: no count limit)", num(&c.EventRetentionCount)},
		// History.
		{"response_target_acknowledge", "IOC_RESPONSE_TARGET_ACKNOWLEDGE", "response-time target from opening to acknowledgement (NFPA 1225: 60s)", dur(&c.ResponseTargetAcknowledge)},
		{"response_target_dispatch", "IOC_RESPONSE_TARGET_DISPATCH", "response-time target from opening to dispatch (NFPA 1225: 120s)", dur(&c.ResponseTargetDispatch)},
		{"response_target_resolve", "IOC_RESPONSE_TARGET_RESOLVE", "response-time target from opening to resolution", dur(&c.ResponseTargetResolve)},
		// Dashboard.
		{"dashboard_tile_url", "IOC_DASHBOARD_TILE_URL", "XYZ tile template for the dashboard map (https://host/{z}/{x}/{y}.png); empty: ward boundaries only", str(&c.DashboardTileURL)},
		{"dashboard_tile_attribution", "IOC_DASHBOARD_TILE_ATTRIBUTION", "attribution shown with the tiles", str(&c.DashboardTileAttribution)},
		{"dashboard_ack_target", "IOC_DASHBOARD_ACK_TARGET", "time to acknowledge a new incident before the queue shows a breach", dur(&c.DashboardAckTarget)},
		{"dashboard_dispatch_target", "IOC_DASHBOARD_DISPATCH_TARGET", "time from acknowledgement to dispatch before the queue shows a breach", dur(&c.DashboardDispatchTarget)},
		{"dashboard_locale", "IOC_DASHBOARD_LOCALE", "the dashboard's default language: vi or en", str(&c.DashboardLocale)},
	}
}

// Load builds the configuration from the file named by --config (if any),
// the flags in args and the environment, then validates it. fs receives
// the flags so subcommands can add their own before calling Load.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	cfg := Default()
	file := fs.String("config", "", "JSON configuration file")
	// Flags are recorded, not applied, so the file can be read first.
	type pending struct {
		s setting
		v string
	}
	var fromFlags []pending
	for _, s := range cfg.settings() {
		s := s
		fs.Func(strings.ReplaceAll(s.key, "_", "-"), s.usage+" (env "+s.env+")", func(v string) error {
			fromFlags = append(fromFlags, pending{s, v})
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *file != "" {
		if err := cfg.readFile(*file); err != nil {
			return cfg, err
		}
	}
	// The settings' setters close over cfg's fields, so rebuild them now
	// that cfg holds the file's values; apply flags, then environment.
	byKey := map[string]setting{}
	for _, s := range cfg.settings() {
		byKey[s.key] = s
	}
	for _, p := range fromFlags {
		if err := byKey[p.s.key].set(p.v); err != nil {
			return cfg, fmt.Errorf("flag --%s: %w", strings.ReplaceAll(p.s.key, "_", "-"), err)
		}
	}
	for _, s := range cfg.settings() {
		if v := getenv(s.env); v != "" {
			if err := s.set(v); err != nil {
				return cfg, fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	cfg.MetricsAddr = loopbackByDefault(cfg.MetricsAddr)
	return cfg, cfg.Validate()
}

// loopbackByDefault gives a port-only listen address (":9090") the
// loopback host, so profiles are not served to the network by accident.
func loopbackByDefault(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

func (c *Config) readFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate reports every problem at once, each naming its setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("database_url", "want postgres://..., got %q", Redact(c.DatabaseURL))
	}
	if u, err := url.Parse(c.MQTTURL); err != nil || !oneOf(u.Scheme, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss") || u.Host == "" {
		bad("mqtt_url", "want tcp://host:port or ssl://host:port, got %q", Redact(c.MQTTURL))
	}
	if c.MQTTTopicPrefix == "" || strings.ContainsAny(c.MQTTTopicPrefix, "+#") {
		bad("mqtt_topic_prefix", "must be non-empty without wildcards, got %q", c.MQTTTopicPrefix)
	}
	if strings.ContainsAny(c.MQTTSharedGroup, "/+#") {
		bad("mqtt_shared_group", "must not contain / + or #, got %q", c.MQTTSharedGroup)
	}
	if c.MQTTClientID == "" || len(c.MQTTClientID) > 128 {
		bad("mqtt_client_id", "must be 1-128 characters")
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("redis_url", "want redis://host:port, got %q", Redact(c.RedisURL))
		}
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhook_url", "want an http or https URL, got %q", Redact(c.WebhookURL))
		}
	}
	if c.HTTPAddr == "" {
		bad("http_addr", "must be set")
	}
	for key, path := range map[string]string{"areas_file": c.AreasFile, "city_file": c.CityFile, "mqtt_ca_file": c.MQTTCAFile,
		"mqtt_cert_file": c.MQTTCertFile, "mqtt_key_file": c.MQTTKeyFile, "rules_file": c.RulesFile,
		"bootstrap_admin_password_file": c.BootstrapAdminPasswordFile} {
		if path != "" {
			if _, err := os.Stat(path); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	if c.ServiceAreaMarginM < 0 || c.ServiceAreaMarginM > 100_000 {
		bad("service_area_margin_m", "want 0-100000, got %v", c.ServiceAreaMarginM)
	}
	if c.MaxPayloadBytes < 1024 || c.MaxPayloadBytes > 16<<20 {
		bad("max_payload_bytes", "want 1 KiB-16 MiB, got %d", c.MaxPayloadBytes)
	}
	if c.MaxBatchItems < 1 || c.MaxBatchItems > 100_000 {
		bad("max_batch_items", "want 1-100000, got %d", c.MaxBatchItems)
	}
	if c.LateWindow < Duration(time.Minute) || c.LateWindow > Duration(60*24*time.Hour) {
		bad("late_window", "want 1m-60 days, got %v", c.LateWindow)
	}
	if c.FutureSkew < 0 || c.FutureSkew > Duration(24*time.Hour) {
		bad("future_skew", "want 0-24h, got %v", c.FutureSkew)
	}
	if c.APIMaxConns < 1 || c.APIMaxConns > 200 {
		bad("api_max_conns", "want 1-200, got %d", c.APIMaxConns)
	}
	if c.APIStatementTimeout < Duration(100*time.Millisecond) || c.APIStatementTimeout > Duration(10*time.Minute) {
		bad("api_statement_timeout", "want 100ms-10m, got %v", c.APIStatementTimeout)
	}
	if c.APIHeavyPerCaller < 1 || c.APIHeavyPerCaller > 100 {
		bad("api_heavy_per_caller", "want 1-100, got %d", c.APIHeavyPerCaller)
	}
	if c.IngestBatchSize < 1 || c.IngestBatchSize > 50_000 {
		bad("ingest_batch_size", "want 1-50000, got %d", c.IngestBatchSize)
	}
	if c.IngestBatchWait < 0 || c.IngestBatchWait > Duration(10*time.Second) {
		bad("ingest_batch_wait", "want 0-10s, got %v", c.IngestBatchWait)
	}
	if c.IngestBuffer < c.IngestBatchSize {
		bad("ingest_buffer", "must hold at least one batch (%d), got %d", c.IngestBatchSize, c.IngestBuffer)
	}
	if c.IngestWriters < 1 || c.IngestWriters > 32 {
		bad("ingest_writers", "want 1-32, got %d", c.IngestWriters)
	}
	if c.DeviceTouchInterval < 0 || c.DeviceTouchInterval > Duration(10*time.Minute) {
		bad("device_touch_interval", "want 0-10m, got %v", c.DeviceTouchInterval)
	}
	if c.RetentionDays < 1 || c.RetentionDays > 3650 {
		bad("retention_days", "want 1-3650, got %d", c.RetentionDays)
	}
	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		bad("log_level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if !oneOf(c.LogFormat, "text", "json") {
		bad("log_format", "want text or json, got %q", c.LogFormat)
	}

	// Auth.
	if c.MetricsAddr != "" {
		if host, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics_addr", "want host:port, got %q", c.MetricsAddr)
		} else if !isLoopback(host) && !c.MetricsAllowRemote {
			bad("metrics_addr", "%q is not a loopback address and /debug/pprof there has no authentication; "+
				"bind 127.0.0.1:PORT, or set metrics_allow_remote to expose it on purpose", c.MetricsAddr)
		}
	}
	if c.SessionTTL < Duration(5*time.Minute) || c.SessionTTL > Duration(7*24*time.Hour) {
		bad("session_ttl", "want 5m-168h, got %v", c.SessionTTL)
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			bad("allowed_origins", "want scheme://host[:port], got %q", o)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad("trusted_proxies", "%v", err)
		}
	}
	if c.HashConcurrency < 1 || c.HashConcurrency > 64 {
		bad("hash_concurrency", "want 1-64, got %d", c.HashConcurrency)
	}
	if c.HashWait < Duration(10*time.Millisecond) || c.HashWait > Duration(30*time.Second) {
		bad("hash_wait", "want 10ms-30s, got %v", c.HashWait)
	}
	if c.LoginAccountFree < 1 || c.LoginAccountFree > 100 {
		bad("login_account_free", "want 1-100, got %d", c.LoginAccountFree)
	}
	if c.LoginAccountDelay < Duration(10*time.Millisecond) || c.LoginAccountDelay > c.LoginAccountMaxDelay {
		bad("login_account_delay", "want 10ms up to login_account_max_delay, got %v", c.LoginAccountDelay)
	}
	if c.LoginAccountMaxDelay > Duration(time.Hour) {
		bad("login_account_max_delay", "want at most 1h, got %v", c.LoginAccountMaxDelay)
	}
	if c.LoginAddrMax < 1 || c.LoginAddrMax > 100_000 {
		bad("login_addr_max", "want 1-100000, got %d", c.LoginAddrMax)
	}
	if c.LoginAddrMaxDelay < c.LoginAccountMaxDelay || c.LoginAddrMaxDelay > Duration(24*time.Hour) {
		bad("login_addr_max_delay", "want login_account_max_delay up to 24h, got %v", c.LoginAddrMaxDelay)
	}
	if c.LoginWindow < Duration(time.Minute) || c.LoginWindow > Duration(24*time.Hour) {
		bad("login_window", "want 1m-24h, got %v", c.LoginWindow)
	}
	// Alert engine.
	if c.AlertQueueSize < 16 || c.AlertQueueSize > 1<<20 {
		bad("alert_queue_size", "want 16-1048576, got %d", c.AlertQueueSize)
	}
	// History.
	for _, t := range []struct {
		key string
		v   Duration
	}{{"response_target_acknowledge", c.ResponseTargetAcknowledge}, {"response_target_dispatch", c.ResponseTargetDispatch}, {"response_target_resolve", c.ResponseTargetResolve}} {
		if t.v < Duration(time.Second) || t.v > Duration(30*24*time.Hour) {
			bad(t.key, "want 1s-720h, got %v", t.v)
		}
	}
	// Ingest hardening.
	if c.IngestMaxHeldBytes < 1<<20 || c.IngestMaxHeldBytes > 4<<30 {
		bad("ingest_max_held_bytes", "want 1 MiB-4 GiB, got %d", c.IngestMaxHeldBytes)
	} else if c.IngestMaxHeldBytes < c.MaxPayloadBytes {
		bad("ingest_max_held_bytes", "must hold at least one payload of max_payload_bytes (%d), got %d", c.MaxPayloadBytes, c.IngestMaxHeldBytes)
	}
	if c.DeviceStateMax < 100 || c.DeviceStateMax > 10_000_000 {
		bad("device_state_max", "want 100-10000000, got %d", c.DeviceStateMax)
	}
	if c.DeviceStateTTL < c.DeviceTouchInterval || c.DeviceStateTTL < Duration(time.Minute) {
		bad("device_state_ttl", "want at least 1m and device_touch_interval (%v), got %v", c.DeviceTouchInterval, c.DeviceStateTTL)
	}
	if c.UnitsMax < 1 || c.UnitsMax > 1_000_000 {
		bad("units_max", "want 1-1000000, got %d", c.UnitsMax)
	}
	if c.UnitExpiry < Duration(time.Minute) || c.UnitExpiry > Duration(365*24*time.Hour) {
		bad("unit_expiry", "want 1m-365 days, got %v", c.UnitExpiry)
	}
	if c.RejectsMaxAge != 0 && c.RejectsMaxAge < Duration(time.Hour) {
		bad("rejects_max_age", "want 0 (no limit) or at least 1h, got %v", c.RejectsMaxAge)
	}
	if c.ClockOffset < Duration(-time.Hour) || c.ClockOffset > Duration(time.Hour) {
		bad("clock_offset", "want -1h to 1h, got %v", c.ClockOffset)
	}
	if c.WSQueueBytes < 64<<10 || c.WSQueueBytes > 1<<30 {
		bad("ws_queue_bytes", "want 64 KiB to 1 GiB, got %d", c.WSQueueBytes)
	}
	if c.WSUpdateInterval < Duration(10*time.Millisecond) || c.WSUpdateInterval > Duration(time.Minute) {
		bad("ws_update_interval", "want 10ms-1m, got %v", c.WSUpdateInterval)
	}
	if c.WSHeartbeat < Duration(time.Second) || c.WSHeartbeat > Duration(time.Minute) {
		bad("ws_heartbeat", "want 1s-1m, got %v", c.WSHeartbeat)
	}
	if c.EventRetention < Duration(time.Minute) || c.EventRetention > Duration(365*24*time.Hour) {
		bad("event_retention", "want 1m-365 days, got %v", c.EventRetention)
	}
	if c.EventRetentionCount < 0 {
		bad("event_retention_count", "want 0 (no limit) or more, got %d", c.EventRetentionCount)
	}
	if c.RejectsMaxRows < 0 {
		bad("rejects_max_rows", "want 0 (no limit) or more, got %d", c.RejectsMaxRows)
	}
	if c.RejectsPruneInterval < Duration(time.Second) || c.RejectsPruneInterval > Duration(24*time.Hour) {
		bad("rejects_prune_interval", "want 1s-24h, got %v", c.RejectsPruneInterval)
	}
	// Dashboard.
	if t := c.DashboardTileURL; t != "" {
		if u, err := url.Parse(strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(t)); err != nil ||
			(u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			!strings.Contains(t, "{z}") || !strings.Contains(t, "{x}") || !strings.Contains(t, "{y}") {
			bad("dashboard_tile_url", "want an http(s) template with {z}, {x} and {y} and no credentials, got %q", t)
		}
	}
	if c.DashboardAckTarget < Duration(10*time.Second) || c.DashboardAckTarget > Duration(24*time.Hour) {
		bad("dashboard_ack_target", "want 10s-24h, got %v", c.DashboardAckTarget)
	}
	if c.DashboardDispatchTarget < Duration(10*time.Second) || c.DashboardDispatchTarget > Duration(24*time.Hour) {
		bad("dashboard_dispatch_target", "want 10s-24h, got %v", c.DashboardDispatchTarget)
	}
	if !oneOf(c.DashboardLocale, "vi", "en") {
		bad("dashboard_locale", "want vi or en, got %q", c.DashboardLocale)
	}
	return errors.Join(errs...)
}

// Redacted returns the configuration as JSON with secrets hidden, for
// `iocd checkconfig` and the start-up log.
func (c Config) Redacted() string {
	c.DatabaseURL = Redact(c.DatabaseURL)
	c.MQTTURL = Redact(c.MQTTURL)
	c.RedisURL = Redact(c.RedisURL)
	c.WebhookURL = Redact(c.WebhookURL)
	b, _ := json.MarshalIndent(c, "", "  ")
	return string(b)
}

// Hidden replaces what Redact hides.
const Hidden = "xxxxx"

var (
	// kvSecret finds password=... in a key=value connection string
	// (libpq's "host=db user=ioc password=secret").
	kvSecret = regexp.MustCompile(`(?i)\b([a-z_]*(?:pass|pwd|secret|token|key)[a-z_]*)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
	// secretWords: a query parameter whose name holds one of these is a
	// secret (password, sslpassword, token, access_token, api_key, sig...).
	secretWords = []string{"pass", "pwd", "secret", "token", "key", "auth", "sig", "credential", "session"}
)

// Redact returns raw, a URL or a key=value connection string, fit to print
// in logs, errors and checkconfig: the password of user:password@ and the
// value of every query parameter whose name says secret become xxxxx; for
// URLs other than database and broker ones (webhooks carry their token in
// the path or as the user) the user part and every path segment after the
// first are hidden too.
// What does not parse as a URL is hidden but for its scheme.
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	scheme, _, isURL := strings.Cut(raw, "://")
	if !isURL {
		return kvSecret.ReplaceAllString(raw, "${1}="+Hidden)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return scheme + "://" + Hidden + " (not a valid URL)"
	}
	web := pathMaySecret(u.Scheme)
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Hidden)
		} else if web {
			u.User = url.User(Hidden)
		}
	}
	if u.RawQuery != "" {
		if q, err := url.ParseQuery(u.RawQuery); err != nil {
			u.RawQuery = Hidden
		} else {
			for k := range q {
				if secretName(k) {
					q[k] = []string{Hidden}
				}
			}
			u.RawQuery = q.Encode()
		}
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Hidden, ""
	}
	if web {
		switch segs := strings.Split(strings.Trim(u.Path, "/"), "/"); {
		case len(segs) > 1:
			u.Path = "/" + segs[0] + "/" + Hidden
		case len(segs[0]) > 20:
			u.Path = "/" + Hidden
		}
		u.RawPath = ""
	}
	return u.String()
}

// pathMaySecret: only in database and broker URLs is the path known to be
// harmless (a database name, a Redis database number).
func pathMaySecret(scheme string) bool {
	return !oneOf(strings.ToLower(scheme), "postgres", "postgresql", "redis", "rediss", "tcp", "ssl", "tls", "mqtt", "mqtts")
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Scrub hides, in text such as an error message or a log line, c's
// secret-bearing URLs (each replaced by its Redact form) and the secrets
// they carry, wherever a library may have copied them.
func (c Config) Scrub(text string) string { return c.Scrubber().Replace(text) }

// Scrubber is Scrub prepared once, for a logger to apply to every line.
func (c Config) Scrubber() *strings.Replacer {
	var urls, secrets []string
	for _, raw := range []string{c.DatabaseURL, c.MQTTURL, c.RedisURL, c.WebhookURL} {
		if raw == "" {
			continue
		}
		if red := Redact(raw); red != raw {
			urls = append(urls, raw, red)
		}
		for _, s := range secretsOf(raw) {
			if len(s) < 4 || s == Hidden {
				continue
			}
			secrets = append(secrets, s, Hidden)
			if e := url.QueryEscape(s); e != s {
				secrets = append(secrets, e, Hidden)
			}
		}
	}
	// Whole URLs first: at one position the first listed pair wins.
	return strings.NewReplacer(append(urls, secrets...)...)
}

// secretsOf lists the values Redact hides in raw.
func secretsOf(raw string) []string {
	var out []string
	if !strings.Contains(raw, "://") {
		for _, m := range kvSecret.FindAllStringSubmatch(raw, -1) {
			out = append(out, strings.Trim(m[2], "'"))
		}
		return out
	}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	web := pathMaySecret(u.Scheme)
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		} else if web {
			out = append(out, u.User.Username())
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		for k, vs := range q {
			if secretName(k) {
				out = append(out, vs...)
			}
		}
	}
	if web {
		if segs := strings.Split(strings.Trim(u.Path, "/"), "/"); len(segs) > 1 {
			out = append(out, segs[1:]...)
		} else if len(segs[0]) > 20 {
			out = append(out, segs[0])
		}
	}
	return out
}

// ParsePrefix reads a trusted proxy: a CIDR (10.0.0.0/8) or one address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want a CIDR such as 10.0.0.0/8 or an address, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// isLoopback: 127.0.0.0/8, ::1 or localhost.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written as "20ms", "168h" in files and flags.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Std returns the standard library value.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration (like 20ms, 5m, 168h): %q", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %s", b)
	}
	return d.Set(s)
}
