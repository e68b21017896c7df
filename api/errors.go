package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// Problem is an error a client may see: an HTTP status, a stable code from
// the contract and a message for people. Domain packages declare their
// sentinels with NewProblem (alerts.ErrNotFound, geo.ErrVersionConflict)
// and wrap them with %w to add safe detail; Fail finds the Problem in the
// chain and writes it. Only text that is safe to show may be wrapped
// around a Problem: never an SQL or driver error.
type Problem struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int
}

func (p *Problem) Error() string { return p.Message }

// NewProblem declares a client-visible error.
func NewProblem(status int, code, message string) *Problem {
	return &Problem{Status: status, Code: code, Message: message}
}

// Problemf makes a one-off Problem with a formatted message.
func Problemf(status int, code, format string, args ...any) *Problem {
	p := &Problem{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		p.RetryAfter = 2
	}
	return p
}

// The contract's common problems. A domain sentinel wraps one of these
// when it needs its own identity (errors.Is on both works).
var (
	ErrBadParameter    = NewProblem(http.StatusBadRequest, "bad_parameter", "bad parameter")
	ErrForbidden       = NewProblem(http.StatusForbidden, "forbidden", "forbidden")
	ErrNotFound        = NewProblem(http.StatusNotFound, "not_found", "not found")
	ErrVersionConflict = NewProblem(http.StatusConflict, "version_conflict", "changed since that version; fetch it again")
	ErrTooLarge        = NewProblem(http.StatusRequestEntityTooLarge, "too_large", "request too large")
	ErrMediaType       = NewProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
	ErrInvalidState    = NewProblem(http.StatusUnprocessableEntity, "invalid_transition", "not allowed in the current state")
	ErrTooMany         = &Problem{Status: http.StatusTooManyRequests, Code: "too_many_requests", Message: "too many requests; retry shortly", RetryAfter: 2}
	ErrUnavailable     = &Problem{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "temporarily unavailable; retry shortly", RetryAfter: 5}
)

// Fail writes err as the contract's error body: a *Problem (anywhere in the
// chain) with its status and code, a *ParamError as 400 bad_parameter, an
// oversized body as 413, a statement timeout as 503; anything else is
// logged and answered 500 without its text. A request whose client has
// gone gets nothing.
func Fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		p   *Problem
		pe  *ParamError
		big *http.MaxBytesError
	)
	switch {
	case err == nil:
		panic("api.Fail with a nil error")
	case errors.As(err, &pe):
		Error(w, http.StatusBadRequest, pe.ErrorCode(), pe.Error())
	case errors.As(err, &big):
		Error(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", big.Limit))
	case errors.As(err, &p):
		if p.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
		}
		msg := err.Error()
		if msg == "" {
			msg = p.Message
		}
		Error(w, p.Status, p.Code, msg)
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		// The client went away; nobody reads an answer.
	case isQueryTimeout(err):
		logFrom(r).Warn("query timed out", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		Error(w, http.StatusServiceUnavailable, "query_timeout", "the query took too long; narrow it (time range, area) and retry")
	default:
		logFrom(r).Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		Error(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// isQueryTimeout: PostgreSQL cancelled the statement (57014), as
// statement_timeout does.
func isQueryTimeout(err error) bool {
	var sc interface{ SQLState() string }
	return errors.As(err, &sc) && sc.SQLState() == "57014"
}

type logKey struct{}

// withLog puts the server's logger in a request's context, for Fail.
func withLog(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

func logFrom(r *http.Request) *slog.Logger {
	if l, ok := r.Context().Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
