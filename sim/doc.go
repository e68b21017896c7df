// Package sim is the city simulator behind iocsim: it invents a plausible
// Hanoi — traffic detectors, cameras, emergency sources and responder units
// placed in the 126 wards — and publishes their telemetry over MQTT as
// CONTRACT section 1 describes, optionally with malformed messages and
// scripted incidents whose ground truth it writes down.
//
// It is split in three layers:
//
//   - device models (devices.go, rhythm.go, units.go): state that evolves
//     with simulated time; no I/O;
//   - payload generation (payload.go, bad.go, check.go): pure functions from a
//     device's reading to a topic and bytes, and a local checker of the
//     contract's rules used by the tests;
//   - the publisher (publish.go): a few MQTT connections, QoS 1, each with a
//     bounded window of unacknowledged publishes.
//
// Simulator.Run owns its goroutines: one generator (the only goroutine that
// touches device state and the random source, which keeps a seeded run
// repeatable), and per connection one publishing and one acknowledgement
// goroutine. Counters are atomics readable at any time through Stats, so the
// load tool (sim/load) can sample them while Run is going. Run returns when
// the count, the duration or the context ends the run and every publish in
// flight has been acknowledged or has failed (bounded by a drain timeout).
package sim
