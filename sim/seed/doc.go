// Package seed fills a database with a realistic history of Hanoi for
// benchmarks and demos (iocsim seed, docs/simulator.md "Seeding"): devices
// placed in the real wards, a year (or any span) of telemetry in the city's
// daily rhythm (sim.LoadFactor), and incidents with kinds, severities,
// wards, operator response times (some past their targets), escalations,
// units, evidence and timelines, in the project's real schema.
//
// Rows go in with COPY (pgx CopyFrom). Each job (a table and a slice of
// the time span) runs one generator goroutine that builds rows in batches
// and hands them over a bounded channel to one COPY per table, so Go
// builds rows while PostgreSQL stores the previous batch; Config.Jobs jobs
// run at once, each on its own connections. The incidents' secondary
// indexes, their timeline's and evidence's foreign keys and the telemetry
// tables' GiST indexes are dropped for the load and rebuilt after it (the
// DDL to rebuild them is kept in the table seed_restore first, so a run
// that dies midway is repaired by the next one).
//
// Run needs a database without incidents or telemetry: a seed adds to
// nothing. It owns no long-lived state; it is not meant to run beside a
// live iocd on the same database.
package seed
