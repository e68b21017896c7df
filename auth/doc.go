// Package auth decides who may use the operations centre and records what
// they do.
//
// It owns the tables users, sessions, api_tokens and audit_log (migration
// db/migrations/0200_auth.sql) and provides, for the api.Server:
//
//   - the action vocabulary (ActIncidentsAck, ...) and Policy, the one table
//     that maps actions to the roles of CONTRACT section 5;
//   - Authenticator, which turns a bearer token (a session token "iocs_..."
//     or an API token "ioct_...") or the session cookie into an api.Caller;
//   - Service.Wrap: security headers, CSRF checks for cookie sessions and
//     header caps, around the whole HTTP handler;
//   - the login, logout, me, users, tokens and audit routes (Service.Register);
//   - Auditor, the append-only audit log, usable inside a caller's
//     transaction so a change and its audit entry commit together.
//
// It also holds MQTTTLSConfig, the TLS setup ingest uses to reach a broker.
//
// Sign-in limits (LoginLimits): an attempt is reserved in the limiter
// before its password is hashed, so parallel attempts cost no more checks
// than sequential ones; an account past its free failures waits a delay
// that doubles per failure up to a cap (never a long lock); an address
// past its failures loses the free attempts on accounts with failures,
// while accounts not under attack still sign in from it. Hashing runs in
// at most HashConcurrency slots, waited for at most HashWait (then
// ErrBusy, 503). The client address is the TCP peer, or X-Forwarded-For
// when the peer is one of TrustedProxies (Service.Wrap settles it once per
// request; RemoteAddr reads it).
//
// Errors: the sentinels (ErrNotFound, ErrExists, ErrBadCredentials, ...)
// are api problems and InputError is api.ParamError, so handlers answer
// everything through api.Fail and callers still test with errors.Is.
//
// Concurrency: Store, Auditor, Service and Policy are safe for concurrent
// use. Service keeps two small in-memory structures under their own
// mutexes (the login limiter and the refusal-audit throttle); neither lock
// is held across I/O (the hashing slots are a channel, taken outside the
// limiter's lock). Service.Run is the one background goroutine: it
// deletes expired sessions and sweeps the limiter until its context ends.
// Limiter state is per instance; see docs/security.md.
package auth
