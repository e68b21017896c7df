package auth

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
	"ioc/config"
)

// Config is the security layer's settings; zero fields take defaults.
type Config struct {
	SessionTTL time.Duration // default 12h: one control-room shift
	CookieName string        // default "ioc_session"
	Hash       HashParams    // default DefaultHashParams
	// HashConcurrency bounds simultaneous argon2 computations (default 2).
	HashConcurrency int
	// HashWait caps a request's wait for a hashing slot; past it the
	// answer is 503 with Retry-After (default DefaultHashWait).
	HashWait time.Duration
	Login    LoginLimits // zero fields take DefaultLoginLimits'
	// AllowedOrigins are extra origins (scheme://host[:port]) whose browser
	// pages may send unsafe requests; the request's own host is always
	// allowed. Needed when a proxy rewrites Host.
	AllowedOrigins []string
	// TrustedProxies are the networks of reverse proxies (CIDRs such as
	// 10.0.0.0/8, or single addresses) whose X-Forwarded-For names the
	// client. From any other peer the header is ignored, so a client
	// cannot choose its own address for the login limiter and the audit.
	TrustedProxies []string
	// Now is the clock (tests).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.CookieName == "" {
		c.CookieName = "ioc_session"
	}
	if c.Hash == (HashParams{}) {
		c.Hash = DefaultHashParams
	}
	if c.HashWait <= 0 {
		c.HashWait = DefaultHashWait
	}
	c.Login.defaults()
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the security layer of one iocd instance.
type Service struct {
	cfg      Config
	log      *slog.Logger
	Store    *Store
	Auditor  *Auditor
	limiter  *limiter
	throttle *throttle
	proxies  []netip.Prefix
	// nameKey keys the short tag that lets the audit log tell repeated
	// unknown names apart without storing them (often a password typed
	// into the name field). Random per process.
	nameKey []byte
}

// New builds the service. It does not touch the database.
func New(cfg Config, pool *pgxpool.Pool, log *slog.Logger) (*Service, error) {
	cfg.defaults()
	for _, o := range cfg.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" {
			return nil, fmt.Errorf("auth: allowed origin %q: want scheme://host[:port]", o)
		}
	}
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		pre, err := config.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("auth: trusted proxy: %w", err)
		}
		proxies = append(proxies, pre)
	}
	store := NewStore(pool, cfg.Hash, cfg.HashConcurrency)
	store.hashWait = cfg.HashWait
	key := make([]byte, 32)
	rand.Read(key)
	return &Service{
		cfg:      cfg,
		log:      log,
		Store:    store,
		Auditor:  NewAuditor(pool),
		limiter:  newLimiter(cfg.Login, cfg.Now),
		throttle: newThrottle(cfg.Now),
		proxies:  proxies,
		nameKey:  key,
	}, nil
}

// clientAddr is the address a request came from: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For hop that is
// not itself a trusted proxy (hops left of it are the client's to write).
func (s *Service) clientAddr(r *http.Request) string {
	peer := peerAddr(r)
	if len(s.proxies) == 0 {
		return peer
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil || !s.trusted(ip) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := ip.Unmap().String()
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		a, err := netip.ParseAddr(h)
		if err != nil {
			ap, err2 := netip.ParseAddrPort(h)
			if err2 != nil {
				// Garbage from beyond the last trusted hop: that hop is
				// the best we know.
				return client
			}
			a = ap.Addr()
		}
		client = a.Unmap().String()
		if !s.trusted(a) {
			return client
		}
	}
	return client
}

func (s *Service) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Install puts the service in front of srv: authenticator and policy,
// the Wrap middleware (outermost, around any Wrap already set), the
// refusal audit, and the service's own routes.
func (s *Service) Install(srv *api.Server) {
	srv.SetAuth(s, Policy{})
	prevWrap := srv.Wrap
	srv.Wrap = func(h http.Handler) http.Handler {
		if prevWrap != nil {
			h = prevWrap(h)
		}
		return s.Wrap(h)
	}
	prevRefused := srv.Refused
	srv.Refused = func(r *http.Request, c api.Caller, status int, why string) {
		if prevRefused != nil {
			prevRefused(r, c, status, why)
		}
		s.Refused(r, c, status, why)
	}
	s.Register(srv)
}

// credential returns the token a request carries and whether it came from
// the cookie.
func (s *Service) credential(r *http.Request) (token string, cookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		return strings.TrimSpace(tok), false
	}
	if c, err := r.Cookie(s.cfg.CookieName); err == nil {
		return c.Value, true
	}
	return "", false
}

// Authenticate implements api.Authenticator. An Authorization header wins
// over the cookie; a malformed or unknown credential is refused, never
// ignored in favour of the other.
func (s *Service) Authenticate(r *http.Request) (api.Caller, error) {
	token, cookie := s.credential(r)
	if token == "" {
		return api.Caller{}, api.ErrUnauthenticated
	}
	if cookie && !strings.HasPrefix(token, sessionPrefix) {
		return api.Caller{}, api.ErrUnauthenticated
	}
	c, err := s.Store.Lookup(r.Context(), token)
	if err != nil {
		// A failure to check (the database is away) is not a bad
		// credential: it goes up as itself, and the API answers 503, so an
		// operator is not told to sign in again in the middle of an incident.
		return api.Caller{}, err
	}
	if c.Wards == nil {
		c.Wards = []string{}
	}
	c.Session = cookie
	return c, nil
}

// Refused records a 401 or 403 from the API guard in the audit log,
// throttled (see throttle).
func (s *Service) Refused(r *http.Request, c api.Caller, status int, why string) {
	reason := "forbidden"
	if status == http.StatusUnauthorized {
		reason = "unauthenticated"
	}
	refusals.WithLabelValues(strconv.Itoa(status), reason).Inc()
	s.recordThrottled(r, func() Entry {
		return Entry{Actor: c.Name, Role: c.Role, Remote: RemoteAddr(r), Action: AuditRefused,
			Target: r.Method + " " + api.ClipN(r.URL.Path, 200),
			Detail: map[string]any{"status": status, "why": api.ClipN(why, 200)}}
	})
}

// recordThrottled writes the entry build makes, unless the flood throttle
// says no; build runs only if it says yes.
func (s *Service) recordThrottled(r *http.Request, build func() Entry) {
	ok, suppressed := s.throttle.allow(RemoteAddr(r))
	if !ok {
		auditSuppressed.Inc()
		return
	}
	e := build()
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if suppressed > 0 {
		d, _ := e.Detail.(map[string]any)
		if d == nil {
			d = map[string]any{}
		}
		d["suppressed"] = suppressed
		e.Detail = d
	}
	s.record(r, e)
}

// record writes e, detached from the request's cancellation so a client
// hanging up cannot drop the entry.
func (s *Service) record(r *http.Request, e Entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.Auditor.Record(ctx, e); err != nil {
		s.log.Error("audit", "action", e.Action, "err", err)
	}
}

// ContentSecurityPolicy is sent with every response. The dashboard must
// load scripts and styles from files served by iocd (no inline script, no
// eval, no CDN); map tiles and images from the same origin, data: or blob:.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Header caps, on top of the server's total MaxHeaderBytes.
const (
	MaxHeaderFields     = 100
	MaxHeaderValueBytes = 8 << 10
)

// Wrap adds security headers to every response and refuses, before any
// route runs: oversized header sets (431), unsafe requests from a foreign
// Origin (403), and unsafe cookie-authenticated requests without the
// X-Requested-With header a cross-site form cannot send (403), likewise
// a websocket handshake carrying the cookie from a foreign Origin.
func (s *Service) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), clientKey{}, s.clientAddr(r)))
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if isHTTPS(r) {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		if why := headerProblem(r); why != "" {
			refusals.WithLabelValues("431", "headers").Inc()
			api.Error(w, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", why)
			return
		}
		if why := s.csrfProblem(r); why != "" {
			refusals.WithLabelValues("403", "csrf").Inc()
			s.recordThrottled(r, func() Entry {
				return Entry{Remote: RemoteAddr(r), Action: AuditRefused,
					Target: r.Method + " " + api.ClipN(r.URL.Path, 200), Detail: map[string]any{"status": 403, "why": why}}
			})
			api.Error(w, http.StatusForbidden, "csrf", why)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isHTTPS(r *http.Request) bool {
	// X-Forwarded-Proto only ever makes the cookie stricter (Secure) and
	// adds HSTS, which a browser ignores over plain HTTP, so trusting it is
	// safe.
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func headerProblem(r *http.Request) string {
	n := 0
	for k, vs := range r.Header {
		for _, v := range vs {
			n++
			if len(v) > MaxHeaderValueBytes {
				return fmt.Sprintf("header %s over %d bytes", api.Clip(k), MaxHeaderValueBytes)
			}
		}
	}
	if n > MaxHeaderFields {
		return fmt.Sprintf("more than %d header fields", MaxHeaderFields)
	}
	return ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (s *Service) csrfProblem(r *http.Request) string {
	origin := r.Header.Get("Origin")
	_, cookie := s.credential(r)
	upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	if origin != "" && (!safeMethod(r.Method) || (upgrade && cookie)) && !s.originAllowed(r, origin) {
		return "request from another site's page refused"
	}
	if cookie && !safeMethod(r.Method) && r.Header.Get("X-Requested-With") == "" {
		return "a cookie-authenticated change needs the X-Requested-With header"
	}
	return ""
}

func (s *Service) originAllowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// Run deletes sessions that ended more than a day ago and sweeps the
// in-memory limiters, every 10 minutes, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		n, err := s.Store.DeleteOldSessions(ctx, s.cfg.Now().Add(-24*time.Hour))
		if err != nil && ctx.Err() == nil {
			s.log.Warn("session cleanup", "err", err)
		} else if n > 0 {
			s.log.Debug("session cleanup", "deleted", n)
		}
		s.limiter.sweep()
		s.throttle.sweep()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
