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
// Concurrency: Store, Auditor, Service and Policy are safe for concurrent
// use. Service keeps two small in-memory structures under their own
// mutexes (the login limiter and the refusal-audit throttle); neither lock
// is held across I/O. Service.Run is the one background goroutine: it
// deletes expired sessions and sweeps the limiter until its context ends.
// Limiter state is per instance; see docs/security.md.
package auth
