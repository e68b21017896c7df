// Package load is iocsim's load tool: it drives the broker as fast as the
// machine allows with the simulator's own publishers and reports, in one
// run, the broker's ceiling (the same publishers into a bare counting
// subscriber on a prefix iocd does not ingest) and the sustained end-to-end
// rate of the full pipeline (the same publishers into the city prefix while
// iocd runs, read from iocd's Prometheus counters), with commit lag, backlog
// drain time, loss accounting and CPU per process.
//
// It is a benchmark, not a test: it measures and prints; it asserts nothing.
// Load.Run is sequential (phase after phase); the only goroutines it starts
// are the simulator's, the MQTT clients' and one that samples nothing but
// the broker's $SYS drop counter.
package load
