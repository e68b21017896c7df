// Package streams is the websocket gateway at /ws: it keeps every
// control-room screen live. A client subscribes to layers (incidents,
// devices, units, wards) with a filter (bounding box, wards, minimum
// severity) that is always narrowed to its user's ward scope; it gets a
// snapshot of what matches, then ordered deltas. Incident events come from
// the durable, city-wide log in PostgreSQL (alerts.Events: a seq in
// commit order, an epoch naming the log's lineage), so a client that
// reconnects with since and epoch gets exactly what it missed, or a reset
// and a fresh snapshot, never a gap. Device and unit updates are latest
// values: coalesced per id, fanned out between instances by a Broker
// (in-process, or Redis pub/sub with IOC_REDIS_URL).
//
// Goroutines: Gateway.Run owns the incident pump (one subscriber of
// alerts.Events, filling gaps from the log), the heartbeat, wards and
// session-check tickers and the Broker. Each connection has one reader
// goroutine (subscribe messages, pongs) and one writer goroutine, the only
// one that writes to the socket, fed by a queue bounded in bytes. A client
// whose queue overflows is closed with 4000 slow_consumer and resumes with
// since; incident events are never dropped.
//
// Locks: Gateway.mu (the client set) is taken before client.mu (a
// client's queue and view), never the other way round; neither is held
// across I/O.
package streams
