// Package faults is the fault suite: it owns a small operations centre —
// its own PostgreSQL cluster (initdb on a free port), broker processes
// (Mosquitto, NATS JetStream single node or three-node cluster), Redis,
// and a TCP proxy between every iocd instance and each of them — runs
// iocd binaries under steady load from the simulator (sim), breaks one
// part at a time, and checks what the issue 14 promise says: every message
// the broker acknowledged to a device is committed or rejected exactly
// once, every emergency signal it injected opens exactly one incident, and
// the system recovers, in a measured time.
//
// Run (Suite.Run) builds iocd once, then for each Fault sets up a World
// (fresh database, broker, Redis, proxies, iocd instances), starts the
// load, injects the fault, heals it, waits for recovery and judges the
// database against the publishers' acknowledgements. Results print as a
// table (WriteTable).
//
// What it owns: child processes (killed when their World closes, and by
// Pdeathsig if the suite dies), temporary directories under
// Config.Dir, loopback ports it picked free. Nothing here is safe for
// concurrent use except the Proxy's methods and the load's counters; a
// Suite runs one World at a time.
package faults
