// Package api is the HTTP front of the operations centre: the server, its
// timeouts and size caps, the JSON error shape of CONTRACT section 3, query
// parameter parsing, keyset cursors, and the single place where every
// request is authenticated and authorised.
//
// Domain packages (ingest, geo, alerts, ...) register their handlers with
// Handle, naming the action each performs ("devices:read",
// "incidents:ack"). The server authenticates the caller once, asks the
// Policy whether the caller's role may perform the action, and only then
// calls the handler with the Caller in the request context. Handlers apply
// the caller's ward scope to what they read and write (Caller.Wards).
//
// Server is safe for concurrent use once Run has started; register routes
// before that.
package api
