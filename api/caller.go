package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
)

// Caller is who is making a request.
type Caller struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`            // operator, dispatcher, analyst, admin
	Wards []string `json:"wards,omitempty"` // empty: every ward
	// Session is true for browser sessions (cookie), which need CSRF checks.
	Session bool `json:"-"`
}

// Scoped reports whether the caller is limited to some wards.
func (c Caller) Scoped() bool { return len(c.Wards) > 0 }

// SeesWard reports whether the caller may see or act on the ward.
func (c Caller) SeesWard(code string) bool {
	return !c.Scoped() || slices.Contains(c.Wards, code)
}

// WardFilter returns the ward codes to restrict a query to, or nil for no
// restriction. Queries use it as `($1::text[] IS NULL OR ward_code = ANY($1))`.
func (c Caller) WardFilter() []string {
	if !c.Scoped() {
		return nil
	}
	return c.Wards
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller of a request. Handlers
// registered with Handle always have one.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// ErrUnauthenticated is returned by an Authenticator when the request
// carries no valid credentials.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator identifies the caller of a request. It returns
// ErrUnauthenticated (possibly wrapped) for missing or bad credentials, and
// any other error when it could not check them (the API answers 503).
type Authenticator interface {
	Authenticate(r *http.Request) (Caller, error)
}

// Policy decides whether a caller may perform an action.
type Policy interface {
	Allow(c Caller, action string) bool
}

// OpenAccess lets everyone in as an administrator. It is the default until
// a real Authenticator is installed, and iocd logs a warning when it runs
// with it.
type OpenAccess struct{}

func (OpenAccess) Authenticate(*http.Request) (Caller, error) {
	return Caller{Name: "anonymous", Role: "admin"}, nil
}

func (OpenAccess) Allow(Caller, string) bool { return true }

// ForbidWard answers 403 and returns true when a request names a ward
// (a filter or a target) outside the caller's wards.
func ForbidWard(w http.ResponseWriter, c Caller, ward string) bool {
	if ward == "" || c.SeesWard(ward) {
		return false
	}
	Error(w, http.StatusForbidden, "forbidden", "ward "+ward+" is outside your wards")
	return true
}
