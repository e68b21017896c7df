package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Route is one registered endpoint, kept for the route table test and docs.
type Route struct {
	Method  string
	Pattern string
	Action  string // permission checked by the Policy; "" for public routes
}

// Server serves the API, the websocket, metrics and the dashboard.
type Server struct {
	addr   string
	log    *slog.Logger
	mux    *http.ServeMux
	auth   Authenticator
	policy Policy
	routes []Route
	// Wrap, if set, wraps the whole handler (security headers, CSRF, ...).
	Wrap  func(http.Handler) http.Handler
	heavy heavyGate
	// Audit, if set, is told of every refused request.
	Refused func(r *http.Request, c Caller, status int, why string)
}

// MaxBodyBytes caps request bodies; larger ones get 413.
const MaxBodyBytes = 1 << 20

// New makes a server listening on addr, with open access until SetAuth.
func New(addr string, log *slog.Logger) *Server {
	return &Server{addr: addr, log: log, mux: http.NewServeMux(), auth: OpenAccess{}, policy: OpenAccess{}}
}

// SetAuth installs the authenticator and policy every route goes through.
func (s *Server) SetAuth(a Authenticator, p Policy) { s.auth, s.policy = a, p }

// Handle registers an authenticated route. pattern is a net/http pattern
// path such as "/api/v1/devices/{id}"; action names the permission.
func (s *Server) Handle(method, pattern, action string, h http.HandlerFunc) {
	if action == "" {
		panic("api: Handle needs an action; use HandlePublic for open routes")
	}
	s.routes = append(s.routes, Route{method, pattern, action})
	s.mux.Handle(method+" "+pattern, s.guard(action, h))
}

// HandlePublic registers a route that needs no credentials (health, login,
// the dashboard's static files).
func (s *Server) HandlePublic(method, pattern string, h http.Handler) {
	s.routes = append(s.routes, Route{method, pattern, ""})
	s.mux.Handle(strings.TrimSpace(method+" "+pattern), h)
}

// Routes lists the registered routes in a stable order.
func (s *Server) Routes() []Route {
	out := append([]Route(nil), s.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}

func (s *Server) guard(action string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.auth.Authenticate(r)
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			if r.Context().Err() != nil {
				return // the client has gone
			}
			s.log.Error("cannot check credentials", "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "5")
			Error(w, http.StatusServiceUnavailable, "unavailable", "cannot check credentials right now; retry shortly")
			return
		}
		if err != nil {
			if s.Refused != nil {
				s.Refused(r, Caller{}, http.StatusUnauthorized, err.Error())
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="ioc"`)
			Error(w, http.StatusUnauthorized, "unauthenticated", "sign in or send a bearer token")
			return
		}
		if !s.policy.Allow(c, action) {
			if s.Refused != nil {
				s.Refused(r, c, http.StatusForbidden, "role "+c.Role+" may not "+action)
			}
			Error(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not %s", c.Role, action))
			return
		}
		h(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

// Handler is the whole HTTP handler: recovery, body cap, then the mux.
func (s *Server) Handler() http.Handler {
	var h http.Handler = s.mux
	if s.Wrap != nil {
		h = s.Wrap(h)
	}
	return s.withLogger(s.recoverer(limitBody(h)))
}

// withLogger puts the server's logger in every request's context, where
// Fail finds it.
func (s *Server) withLogger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(withLog(r.Context(), s.log)))
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			Error(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler panic into a 500 and a log line with the
// stack, so one bad request never takes the service down.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				Error(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Run serves until ctx ends, then shuts down gracefully within 10 s.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{
		Addr:              s.addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.addr, err)
	}
	s.log.Info("http listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// NotFound answers 404 in the contract's shape.
func NotFound(w http.ResponseWriter, what string) {
	Error(w, http.StatusNotFound, "not_found", what+" not found")
}

// Internal logs err and answers 500 without leaking its text.
func Internal(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	Fail(w, r.WithContext(withLog(r.Context(), log)), err)
}
