package auth

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are registered on the default Prometheus registry.
var (
	logins = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_logins_total",
		Help: "Login attempts by outcome (ok, failed, locked, bad_request).",
	}, []string{"outcome"})
	refusals = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_refused_total",
		Help: "Requests refused by the security layer, by status and reason (unauthenticated, forbidden, csrf, headers).",
	}, []string{"status", "reason"})
	limiterLocks = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_login_lockouts_total",
		Help: "Times an account name or a remote address was locked out of login.",
	})
	limiterEvictions = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_limiter_evictions_total",
		Help: "Times the login limiter was full and forgot its least recent half.",
	})
	auditSuppressed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ioc_audit_suppressed_total",
		Help: "Audit entries for refused requests or failed logins not written because of the flood throttle.",
	})
	auditErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ioc_audit_write_errors_total",
		Help: "Audit entries that could not be written.",
	})
)
