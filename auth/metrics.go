package auth

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors returns the package's metrics for the service's registry:
// reg.MustRegister(auth.Collectors()...). They are process-wide (one set
// however many Services a process builds).
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{logins, refusals, limiterLocks, limiterEvictions, auditSuppressed, auditErrors}
}

var (
	logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_logins_total",
		Help: "Login attempts by outcome (ok, failed, locked, bad_request).",
	}, []string{"outcome"})
	refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_refused_total",
		Help: "Requests refused by the security layer, by status and reason (unauthenticated, forbidden, csrf, headers).",
	}, []string{"status", "reason"})
	limiterLocks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_login_lockouts_total",
		Help: "Times an account name or a remote address was locked out of login.",
	})
	limiterEvictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_limiter_evictions_total",
		Help: "Times the login limiter was full and forgot its least recent half.",
	})
	auditSuppressed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_audit_suppressed_total",
		Help: "Audit entries for refused requests or failed logins not written because of the flood throttle.",
	})
	auditErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_audit_write_errors_total",
		Help: "Audit entries that could not be written.",
	})
)
