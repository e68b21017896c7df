package auth

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors returns the package's metrics for the service's registry:
// reg.MustRegister(auth.Collectors()...). They are process-wide (one set
// however many Services a process builds).
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{logins, refusals, limiterDelays, limiterEvictions, passwordChecks, hashBusy, auditSuppressed, auditErrors}
}

var (
	logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_logins_total",
		Help: "Login attempts by outcome (ok, failed, locked, busy, bad_request).",
	}, []string{"outcome"})
	refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_auth_refused_total",
		Help: "Requests refused by the security layer, by status and reason (unauthenticated, forbidden, csrf, headers).",
	}, []string{"status", "reason"})
	limiterDelays = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_login_delays_total",
		Help: "Failed sign-ins that left an account waiting before its next attempt (its free attempts used up).",
	})
	passwordChecks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_password_checks_total",
		Help: "Argon2 password verifications run (sign-ins and password changes).",
	})
	hashBusy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_auth_hash_busy_total",
		Help: "Requests answered 503 because no password-hashing slot came free within hash_wait.",
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
